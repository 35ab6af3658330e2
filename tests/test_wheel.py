"""A wheel install works outside the checkout: the shipped table and space YAMLs are package data,
`hwnas tables` lists the table, `hwnas predict` uses it, and local calibrations of a shipped table go
to the user cache, never into site-packages. (tests/test_pipeline.py runs its demo from this install.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from hwnas.latency.local import CALIBRATION_DIR_ENV, LocalCalibrations
from hwnas.latency.table import SHIPPED_DIR

TABLE = "cpu_onnxruntime_fp32_bs1_t1"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outside")


def test_wheel_holds_the_tables_and_spaces(installed_wheel, work):
    package = installed_wheel.site / "hwnas"
    assert (package / "latency_tables" / f"{TABLE}.csv").is_file()
    assert (package / "latency_tables" / f"{TABLE}.json").is_file()
    assert not list((package / "latency_tables").glob("*.local.json"))
    assert (package / "families" / "autoformer" / "configs" / "autoformer-digits.yaml").is_file()
    where = subprocess.run(
        [str(installed_wheel.python), "-c", "import hwnas; print(hwnas.__file__)"],
        capture_output=True,
        text=True,
        cwd=work,
        check=True,
    ).stdout
    assert Path(where.strip()).is_relative_to(installed_wheel.site), where  # the wheel's, not the checkout's


def test_installed_cli_lists_and_predicts_with_the_shipped_table(installed_wheel, work):
    listed = installed_wheel.hwnas("tables", "--json", cwd=work)
    assert listed.returncode == 0, listed.stderr
    shipped = [t for t in json.loads(listed.stdout)["tables"] if t["source"] == "shipped"]
    assert [Path(t["path"]).stem for t in shipped] == [TABLE], shipped
    assert Path(shipped[0]["path"]).resolve().is_relative_to(installed_wheel.site)

    sampled = installed_wheel.hwnas(
        "sample", "--space", "autoformer-digits", "--smallest", "--out", "arch.json", cwd=work
    )
    assert sampled.returncode == 0, sampled.stderr
    predicted = installed_wheel.hwnas(
        "predict",
        "--space",
        "autoformer-digits",
        "--device",
        "cpu",
        "--arch",
        "arch.json",
        "--drift",
        "ignore",
        "--json",
        cwd=work,
    )
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["latency_ms"] > 0


def test_installed_device_without_a_table_is_one_line(installed_wheel, work):
    installed_wheel.hwnas("sample", "--space", "autoformer-digits", "--out", "any.json", cwd=work)
    missing = installed_wheel.hwnas("predict", "--device", "jetson-orin", "--arch", "any.json", cwd=work)
    assert missing.returncode == 2 and missing.stdout == ""
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "hwnas profile --device jetson-orin" in lines[0], missing.stderr


def test_local_calibrations_of_shipped_tables_go_to_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(CALIBRATION_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shipped = LocalCalibrations(SHIPPED_DIR / f"{TABLE}.csv").path
    assert shipped.is_relative_to(tmp_path / "cache" / "hwnas" / "calibrations") and shipped.name.startswith(TABLE)
    mine = tmp_path / "tables" / "cpu_mine.csv"
    mine.parent.mkdir()
    assert LocalCalibrations(mine).path == mine.with_suffix(".local.json")  # a user's own table: beside it
