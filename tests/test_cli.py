"""The CLI conventions: --help everywhere, --json gives one object, bad input exits 2 in one line."""

from __future__ import annotations

import json

import pytest

from tests.helpers import assert_one_line_error, hwnas, hwnas_in_process


def test_spaces_lists_the_shipped_spaces():
    result = hwnas("spaces")
    assert result.returncode == 0
    for name in (
        "autoformer-tiny",
        "autoformer-small",
        "autoformer-base",
        "autoformer-digits",
        "vitas-deit-tiny",
        "resnas-tiny",
        "resnas-small",
        "resnas-digits",
        "glit-tiny",
        "glit-small",
        "glit-digits",
    ):
        assert name in result.stdout
    data = json.loads(hwnas("spaces", "--json").stdout)
    tiny = next(s for s in data["spaces"] if s["name"] == "autoformer-tiny")
    assert tiny["num_archs"] == 3 * sum(4**d for d in (12, 13, 14))
    assert tiny["num_block_configs"] == 18 and 5.0 < tiny["params_m"][0] < tiny["params_m"][1] < 11.0


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["spaces"],
        ["sample"],
        ["arch"],
        ["demo"],
        ["profile"],
        ["import-table"],
        ["predict"],
        ["validate-table"],
        ["train"],
        ["eval"],
        ["search"],
        ["export"],
    ],
)
def test_help_describes_every_option(command):
    result = hwnas(*command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout
    options = [ln.strip() for ln in result.stdout.splitlines() if ln.strip().startswith("--")]
    assert options, result.stdout
    for line in options:  # every option line carries a description after its name
        assert len(line.split("  ", 1)) == 2 and line.split("  ", 1)[1].strip(), line


def test_sample_then_arch(tmp_path):
    out = tmp_path / "arch.json"
    result = hwnas("sample", "--space", "autoformer-tiny", "--seed", "3", "--out", str(out))
    assert result.returncode == 0
    assert json.loads(result.stdout) == json.loads(out.read_text())
    summary = json.loads(hwnas("arch", str(out), "--json").stdout)
    assert summary["arch"]["space"] == "autoformer-tiny" and summary["params"] > 5e6
    assert sum(b["macs"] for b in summary["blocks"]) == summary["macs"]
    largest = json.loads(hwnas("sample", "--space", "autoformer-tiny", "--largest").stdout)
    assert largest["depth"] == 14 and set(largest["num_heads"]) == {4}


def test_bad_arch_json_is_one_line_naming_the_field(tmp_path):
    arch = json.loads(hwnas("sample", "--space", "autoformer-digits", "--seed", "0").stdout)
    arch["num_heads"][1] = 7
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(arch))
    assert_one_line_error(
        hwnas("arch", str(path)), "hwnas: error:", "num_heads[1] = 7 is not a choice", "choose from 2, 3"
    )
    arch["num_heads"] = arch["num_heads"][:-1]
    path.write_text(json.dumps(arch))
    assert_one_line_error(hwnas("arch", str(path)), "'num_heads' has", "give one per layer")
    path.write_text("not json")
    assert_one_line_error(hwnas("arch", str(path)), "is not valid JSON")
    assert_one_line_error(hwnas("arch", str(tmp_path / "missing.json")), "does not exist")


def test_usage_errors_exit_2_in_one_line():
    assert_one_line_error(hwnas("spaces", "--frobnicate"), "No such option", "hwnas spaces --help")
    assert_one_line_error(hwnas("sample"), "Missing option '--space'")
    assert_one_line_error(hwnas("sample", "--space", "nope"), "unknown search space 'nope'")
    assert_one_line_error(
        hwnas("sample", "--space", "autoformer-tiny", "--largest", "--smallest"), "exclude each other"
    )
    assert_one_line_error(hwnas("nosuchcommand"), "No such command")
    assert_one_line_error(hwnas("demo", "--budget-ms", "0"), "--budget-ms")


def test_debug_shows_traceback():
    result = hwnas("--debug", "sample", "--space", "nope")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_an_error_names_the_flag_on_the_command_line_and_the_keyword_in_python(tmp_path):
    """The same refusal: the CLI names `--budget-min`, a Python caller `budget_min`; a quoted command
    stays a command in both."""
    import hwnas
    from hwnas.errors import HwnasError

    out = str(tmp_path / "t.csv")
    result = hwnas_in_process(
        "profile", "--device", "cpu", "--space", "autoformer-digits", "--budget-min", "-1", "--out", out
    )
    assert_one_line_error(result, "hwnas: error: --budget-min must be a positive number of minutes, got -1")
    with pytest.raises(HwnasError) as info:
        hwnas.profile("autoformer-digits", "cpu", budget_min=-1.0, out=out, progress=False)
    assert str(info.value) == "`budget_min` must be a positive number of minutes, got -1.0"
    assert result.stderr.strip() == f"hwnas: error: {info.value.cli_message()}"
    command = HwnasError("no row; profile it with `hwnas profile --device cpu --space s` or pass --table T")
    assert str(command) == "no row; profile it with `hwnas profile --device cpu --space s` or pass `table` T"
