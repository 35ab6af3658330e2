"""`hwnas show` (`hwnas.show.summarise`): every kind of output named and summarised from its own
files, bad paths refused in one line, and nothing heavy loaded.

This module trains nothing: it reads the committed latency tables and validation folders. The
`check_*` helpers below take a folder of each kind; `tests/test_pipeline.py` calls them on the
run, search, fine-tuning and export of its demo (one pipeline for the whole suite).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hwnas.errors import HwnasError
from hwnas.latency.table import LatencyTable
from hwnas.show import KINDS, FolderSummary, ShowError, summarise

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "latency_tables" / "cpu_onnxruntime_fp32_bs1_t1.csv"
FIXTURES = sorted((ROOT / "benchmarks" / "fixtures").glob("*.csv"))
VALIDATION = ROOT / "benchmarks" / "results" / "validate_resnas-digits"
VALIDATIONS = sorted(p.parent for p in (ROOT / "benchmarks" / "results").glob("**/validate.json"))


# ---- checks of one output of each kind (also called by test_pipeline.py on its demo) ---------------------
def check_summary(summary: FolderSummary, kind: str, path: Path) -> dict[str, Any]:
    """What every summary promises: its kind and path, plain JSON, text lines, plots that exist."""
    assert isinstance(summary, FolderSummary) and summary.kind == kind and kind in KINDS
    assert Path(summary.path) == Path(path)
    data = summary.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert set(data) == {"kind", "path", "holds", "figures", "plots"}
    lines = summary.lines()
    assert lines and str(path) in lines[0] and all(isinstance(line, str) and "\n" not in line for line in lines)
    assert summary.holds and all(h in lines[lines.index("holds:") + 1 + i].strip() for i, h in enumerate(summary.holds))
    for plot in summary.plots:
        assert Path(plot).is_file() and plot.endswith(".png") and plot in "\n".join(lines)
    return data


def check_run(folder: Path) -> FolderSummary:
    """A training run: its space, epochs and the last epoch's search-val top-1 of each probe subnet."""
    s = summarise(folder)
    check_summary(s, "run", folder)
    config = json.loads((folder / "config.json").read_text())
    last = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
    assert s.figures["space"].startswith(f"{config['space']}@")
    assert s.figures["epochs"] == f"{last['epoch']}/{config['epochs']}"
    assert s.figures["top1_search_val_final"] == {
        k.removeprefix("val_top1_"): v for k, v in last.items() if k.startswith("val_top1_")
    }
    assert set(s.figures["top1_search_val_final"]) >= {"largest", "middle", "smallest"}
    split = json.loads((folder / "split.json").read_text())
    assert s.figures["split"] == {k: len(split[k]) for k in ("train", "search_val", "test")}
    held = "\n".join(s.holds)
    assert "checkpoint.pt" in held and "supernet.safetensors" in held and "metrics.jsonl" in held
    assert str(folder / "learning_curve.png") in s.plots
    assert summarise(folder / "config.json").to_dict() == s.to_dict()  # a stage's file stands for its folder
    return s


def check_search(folder: Path) -> FolderSummary:
    """A finished search: its winner and figures are best.json's, its evaluations history.csv's rows."""
    s = summarise(folder)
    check_summary(s, "search", folder)
    best = json.loads((folder / "best.json").read_text())
    f = s.figures
    assert f["winner"] == best["digest"] and f["strategy"] == best["strategy"] and f["space"] == best["space"]
    assert f["top1_search_val"] == best["top1_search_val"] and f["top1_test"] == best["top1_test"]
    if best.get("predicted_latency"):
        assert f["predicted_latency_ms"] == best["predicted_latency"]["latency_ms"]
        assert f["device"] == best["predicted_latency"]["device"]
    with open(folder / "history.csv", newline="") as fh:
        assert f["evaluations"] == best["evaluations"] == sum(1 for _ in csv.DictReader(fh))
    assert "latency" in f["budget"] or "flops" in f["budget"] or "params" in f["budget"]
    assert str(folder / "pareto.png") in s.plots
    return s


def check_export(folder: Path) -> FolderSummary:
    """An export: every artifact of the manifest present with its size, accuracy and latency as recorded."""
    s = summarise(folder)
    check_summary(s, "export", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    f = s.figures
    assert f["digest"] == manifest["digest"] and f["params"] == manifest["params"]
    assert f["artifacts_bytes"] == {name: meta["bytes"] for name, meta in manifest["artifacts"].items()}
    assert f["top1_test"] == manifest["accuracy_top1"]["test"]
    assert f["top1_search_val"] == manifest["accuracy_top1"]["search_val"]
    measured = manifest["latency"]["measured"]
    if measured:
        assert f["measured_latency_ms"] == measured["latency_ms"]
    if manifest["latency"]["predicted"]:
        assert f["predicted_latency_ms"] == manifest["latency"]["predicted"]["latency_ms"]
    for name in manifest["artifacts"]:
        line = next(h for h in s.holds if h.startswith(f"{name} ("))
        assert "MISSING" not in line and "CHANGED" not in line
    return s


def check_finetune(folder: Path) -> FolderSummary:
    """A finished fine-tuning: top-1 before and after as its report says."""
    s = summarise(folder)
    check_summary(s, "finetune", folder)
    report = json.loads((folder / "finetune_report.json").read_text())
    assert s.figures["digest"] == report["digest"]
    for when in ("before", "after"):
        assert s.figures[f"top1_{when}"] == {part: v["top1"] for part, v in report[when].items()}
    epochs = report["config"]["epochs"]
    assert s.figures["epochs"] == f"{epochs}/{epochs}"
    assert str(folder / "learning_curve.png") in s.plots
    return s


def check_table(path: Path) -> FolderSummary:
    """A latency table: its rows, spaces and calibrations as `LatencyTable.load` reads them."""
    s = summarise(path)
    check_summary(s, "table", path)
    table = LatencyTable.load(path)
    assert s.figures["rows"] == len(table) == sum(s.figures["rows_by_kind"].values())
    assert [x.split(" ")[0] for x in s.figures["spaces"]] == sorted(table.calibrations)
    assert set(s.figures["calibrations"]) == set(table.calibrations)
    assert str(table.fingerprint["backend_version"]) in s.figures["setup"]
    low, high = s.figures["p50_ms_range"]
    assert 0 < low <= high
    return s


def check_validation(folder: Path) -> FolderSummary:
    """A table validation: the worst process's agreement and the floor, as validate-table reports them."""
    from hwnas.latency.agreement import worst

    s = summarise(folder)
    check_summary(s, "validation", folder)
    report = json.loads((folder / "validate.json").read_text())
    expected, floor = worst(report["calibrated"]), worst(report["floor_process_vs_process"])
    for key in ("mape_pct", "within_10pct", "kendall_tau", "max_error_pct"):
        assert s.figures[key] == pytest.approx(expected[key], nan_ok=True)
    assert s.figures["floor"] == pytest.approx({k: floor[k] for k in ("mape_pct", "within_10pct", "kendall_tau")})
    assert s.figures["subnets"] == report["n"] and s.figures["processes"] == report["processes"]
    return s


# ---- the committed outputs ---------------------------------------------------------------------------
def test_shipped_table_is_summarised_from_its_csv_or_its_sidecar(tmp_path):
    s = check_table(SHIPPED)
    assert summarise(SHIPPED.with_suffix(".json")).to_dict() == s.to_dict()
    f = s.figures
    assert f["format"] == 3 and "groups of 32" in f["protocol"] and "within 10%" in f["protocol"]
    assert {"autoformer-tiny@ca30da65", "resnas-digits@0976b20c"} <= set(f["spaces"])
    # calibrated twice for glit-digits (the earlier kernels' content kept for runs trained on it): labelled so
    meta = json.loads(SHIPPED.with_suffix(".json").read_text())
    meta["calibration"]["glit-digits@6e8b0499"] = meta["calibration"]["glit-digits@c350df15"]
    (tmp_path / SHIPPED.name).write_text(SHIPPED.read_text())
    (tmp_path / SHIPPED.with_suffix(".json").name).write_text(json.dumps(meta))
    twice = check_table(tmp_path / SHIPPED.name).figures["spaces"]
    assert "glit-digits@6e8b0499 (not the content of the shipped glit-digits)" in twice
    assert "glit-digits@6e8b0499" not in f["p90_calibrated"] and "glit-digits@c350df15" in f["p90_calibrated"]
    assert "AuthenticAMD family 25 model 17" in f["cpu"]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_format_1_table_reads_as_loaded(path):
    f = check_table(path).figures
    assert f["format"] == 1 and f["protocol"].endswith("every round kept")
    assert f["spaces"] == ["autoformer-digits@cb5d3be8", "autoformer-tiny@ca30da65"]  # bare names migrated to refs
    assert not any(k.endswith("_calibrated") for k in f)  # no tail calibration then


def test_local_calibrations_of_a_table_are_listed(tmp_path, monkeypatch):
    from hwnas.latency.local import LocalCalibrations, describe_outcome

    table = tmp_path / FIXTURES[0].name
    shutil.copy(FIXTURES[0], table)
    shutil.copy(FIXTURES[0].with_suffix(".json"), table.with_suffix(".json"))
    monkeypatch.delenv("HWNAS_CALIBRATION_DIR", raising=False)
    assert "local_calibrations" not in summarise(table).figures
    entries = [
        {
            "space": "autoformer-digits@cb5d3be8",
            "setup": {"cpu_id": "GenuineIntel family 6 model 167", "backend_version": "1.32.0"},
            "table_digest": "0" * 16,
            "calibration": {"a": 0.5, "b": 0.0, "n": 5},
            "how": how,
            "drift_pct": pct,
            "refit": refit,
            "uneven": uneven,
            "created": "2026-12-01T10:00:00+00:00",
        }
        for how, pct, refit, uneven in [
            ("spot check", -44.04, True, False),
            ("recalibration", 3.0, False, False),
            ("spot check", 0.0, True, True),
        ]
    ]
    local = LocalCalibrations(table).path
    assert local.parent == tmp_path  # beside a table in a writable folder
    local.write_text(json.dumps({"format": 1, "table": str(table), "entries": entries}))
    s = summarise(table)
    assert [line.split(": ", 1)[1] for line in s.figures["local_calibrations"]] == [
        describe_outcome(e) for e in entries
    ]
    assert "GenuineIntel family 6 model 167 (backend_version 1.32.0)" in s.figures["local_calibrations"][0]
    assert any(str(local) in h and "3 entries" in h for h in s.holds)
    local.write_text("{not json")
    assert "corrupted" in summarise(table).figures["local_calibrations"][0]


@pytest.mark.parametrize("folder", VALIDATIONS, ids=lambda p: str(p.relative_to(ROOT / "benchmarks" / "results")))
def test_committed_validations(folder):
    s = check_validation(folder)
    assert s.plots == [str(folder / "validate.png")]


def test_validation_figures_and_its_own_files_stand_for_it():
    s = check_validation(VALIDATION)
    f = s.figures
    assert (f["space"], f["device"], f["statistic"], f["subnets"]) == ("resnas-digits", "cpu", "p50", 50)
    assert f["within_10pct"] == 98.0 and f["kendall_tau"] == pytest.approx(0.9037, abs=1e-4)  # what the docs quote
    assert f["floor"]["within_10pct"] == 100.0 and f["floor"]["kendall_tau"] == pytest.approx(0.9004, abs=1e-4)
    assert "50 subnets" in "\n".join(s.holds)
    # validate.json records the table's fingerprint too: neither it nor validate.csv is taken for a table
    for name in ("validate.json", "validate.csv", "validate.png"):
        assert summarise(VALIDATION / name).to_dict() == s.to_dict()
    text = "\n".join(s.lines())
    assert "within_10pct" in text and "98.00%" in text and "kendall_tau" in text


# ---- bad paths: one line each, saying what was expected ----------------------------------------------
def one_line(path: Path, *fragments: str) -> str:
    with pytest.raises(ShowError) as caught:
        summarise(path)
    message = str(caught.value)
    assert isinstance(caught.value, HwnasError) and "\n" not in message and message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message, message
    return message


EXPECTED = [
    "a training run (config.json + checkpoint)",
    "a search (best.json)",
    "an export (manifest.json)",
    "a validation (validate.json)",
    "a latency table (.csv with its .json)",
    "a fine-tuning",
]


def test_a_path_that_is_no_hwnas_output_is_one_line(tmp_path):
    one_line(tmp_path / "missing", "does not exist", *EXPECTED)
    (tmp_path / "empty").mkdir()
    one_line(tmp_path / "empty", "is not an hwnas output folder", *EXPECTED)
    (tmp_path / "notes.txt").write_text("hello")
    one_line(tmp_path / "notes.txt", "is not an hwnas output", *EXPECTED)
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    one_line(tmp_path / "data.csv", "is not an hwnas output")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"name": "someone else's tool"}))
    (tmp_path / "other" / "split.json").write_text("{}")
    one_line(tmp_path / "other", "is not an hwnas output folder")  # a config.json that is no run's
    one_line(tmp_path / "other" / "config.json", "is not an hwnas output")


def test_a_folder_of_outputs_names_them(tmp_path):
    message = one_line(ROOT / "latency_tables", "is not an hwnas output folder")
    assert message.endswith("it holds cpu_onnxruntime_fp32_bs1_t1.csv (latency table): show one of those")
    shutil.copytree(VALIDATION, tmp_path / "validate_x")
    assert "it holds validate_x/ (latency-table validation)" in one_line(tmp_path)


def test_a_damaged_table_or_stage_file_is_one_line(tmp_path):
    table = tmp_path / "cpu_x.csv"
    table.write_text(SHIPPED.read_text().splitlines()[0] + "\n")
    with pytest.raises(ShowError, match=r"^latency table .*cpu_x.csv has no sidecar cpu_x.json"):
        summarise(table)  # the table's own message: a table CSV without its sidecar
    table.with_suffix(".json").write_text("{broken")
    with pytest.raises(ShowError, match="sidecar .*cpu_x.json is corrupted"):
        summarise(table)
    folder = tmp_path / "validate_y"
    shutil.copytree(VALIDATION, folder)
    (folder / "validate.json").write_text("[1, 2]")
    with pytest.raises(ShowError, match="validate.json holds a JSON list, not the object its stage writes"):
        summarise(folder)


# ---- consistency with the stages, and cost -----------------------------------------------------------
def test_file_names_are_the_ones_the_stages_write():
    import hwnas.show as show
    from hwnas.data.sources import IMAGE_INDEX
    from hwnas.deploy.artifacts import CONFIG as EXPORT_CONFIG
    from hwnas.deploy.artifacts import FILES
    from hwnas.deploy.exporter import MANIFEST
    from hwnas.subnet_search.runner import BEST, STATE
    from hwnas.training.checkpoint import CHECKPOINT, WEIGHTS
    from hwnas.training.finetune import FINETUNE, MODEL, REPORT
    from hwnas.training.run import CONFIG, SPACE, SPLIT
    from hwnas.training.trainer import CURVE, METRICS_CSV, METRICS_JSONL

    assert (show.CONFIG, show.SPLIT, show.SPACE, show.IMAGE_INDEX) == (CONFIG, SPLIT, SPACE, IMAGE_INDEX)
    assert (show.CHECKPOINT, show.WEIGHTS) == (CHECKPOINT, WEIGHTS)
    assert (show.METRICS_JSONL, show.METRICS_CSV, show.CURVE) == (METRICS_JSONL, METRICS_CSV, CURVE)
    assert (show.FINETUNE, show.FINETUNED_WEIGHTS, show.FINETUNE_REPORT) == (FINETUNE, MODEL, REPORT)
    assert (show.BEST, show.STATE, show.MANIFEST, show.EXPORT_CONFIG) == (BEST, STATE, MANIFEST, EXPORT_CONFIG)
    assert show.ARTIFACTS == FILES


def test_show_loads_no_torch_and_is_quick():
    script = (
        "import sys, time; t = time.perf_counter(); from hwnas.show import summarise\n"
        f"for p in [{str(SHIPPED)!r}, {str(VALIDATION)!r}]: summarise(p).lines()\n"
        "print('torch' in sys.modules, time.perf_counter() - t)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded, seconds = result.stdout.split()
    assert loaded == "False" and float(seconds) < 10  # about half a second here (pandas); torch alone takes seconds


def test_to_dict_has_no_nan():
    s = FolderSummary("validation", "x", ["a"], {"kendall_tau": math.nan, "floor": {"tau": math.inf}}, [])
    assert s.to_dict()["figures"] == {"kendall_tau": None, "floor": {"tau": None}}
    assert "kendall_tau" in "\n".join(s.lines())
