"""The Python API: one function per stage at the top level, typed reports, and the CLI on top of it."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest

import hwnas
import hwnas.api
import hwnas.reports
from hwnas.latency.table import TableError
from tests.helpers import hwnas_in_process

STAGES = ["train", "finetune", "profile", "predict", "search", "export", "load_model"]


@pytest.mark.parametrize("name", STAGES)
def test_each_stage_is_a_documented_top_level_function(name):
    import hwnas.deploy  # noqa: F401  (importing the subpackages must not shadow the functions)
    import hwnas.training  # noqa: F401

    function = getattr(hwnas, name)
    assert inspect.isfunction(function) and function is getattr(hwnas.api, name)
    assert function.__doc__ and len(function.__doc__.strip()) > 40
    assert name in hwnas.__all__


def test_report_classes_are_documented_dataclasses_that_round_trip():
    for name in hwnas.reports.__all__:
        cls = getattr(hwnas.reports, name)
        assert cls.__doc__, name
        if dataclasses.is_dataclass(cls):
            assert hasattr(cls, "to_dict") and hasattr(cls, "from_dict")
    report = hwnas.TrainReport(
        run=hwnas.api.Path("runs/x"),
        space="autoformer-digits",
        config={"epochs": 2},
        epochs_run=2,
        processes=1,
        rank=0,
        final={"loss": 1.0, "val_top1_largest": 90.0},
        metrics=hwnas.api.Path("runs/x/metrics.csv"),
        plot=hwnas.api.Path("runs/x/curve.png"),
    )
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d and d["run"] == "runs/x"
    back = hwnas.TrainReport.from_dict({**d, "unknown": 1})
    assert back == report and isinstance(back.run, hwnas.api.Path) and back.search_val_top1 == {"largest": 90.0}
    assert hwnas.FinetuneReport.from_dict({"out": "ft", "rank": 1, "processes": 2, "run": None}).run is None


def test_predict_returns_a_typed_report_equal_to_the_cli_json():
    arch = hwnas.get_space("autoformer-digits").smallest()
    report = hwnas.predict(arch, "cpu", drift="ignore")
    assert isinstance(report, hwnas.PredictReport) and report.devices[0].device == "cpu"
    assert report.latency_ms == pytest.approx(report.devices[0].latency_ms) and report.latency_ms > 0
    assert sum(b["latency_ms"] for b in report.devices[0].blocks) == pytest.approx(report.devices[0].sum_ms)
    assert report.devices[0].setup.startswith("cpu (")


def test_cli_prints_what_the_api_returns(tmp_path):
    arch_file = tmp_path / "arch.json"
    hwnas.get_space("autoformer-digits").smallest().to_json(arch_file)
    printed = hwnas_in_process("predict", "--device", "cpu", "--arch", str(arch_file), "--drift", "ignore", "--json")
    assert printed.returncode == 0, printed.stderr
    expected = hwnas.predict(arch_file, "cpu", drift="ignore").to_dict()
    assert json.loads(printed.stdout) == json.loads(json.dumps(expected))


def test_predict_refusals_name_the_fix():
    arch = hwnas.get_space("autoformer-digits").smallest()
    with pytest.raises(TableError, match="`device` LABEL"):
        hwnas.predict(arch)
    with pytest.raises(TableError, match="p50 or p90"):
        hwnas.predict(arch, "cpu", latency_stat="p99")


def test_cli_help_groups_commands_by_stage():
    printed = hwnas_in_process("--help")
    assert printed.returncode == 0
    text = printed.stdout
    order = [text.index(f"\n{section}:\n") for section in ("Spaces", "Training", "Latency", "Search", "Export")]
    assert order == sorted(order)
    commands = [
        line.split()[0] for line in text.splitlines() if line.startswith("  ") and not line.strip().startswith("-")
    ]
    assert set(commands) >= {"train", "profile", "search", "export", "show"}
    assert all(len(line) <= 80 for line in text.splitlines()), "a summary does not fit an 80-column terminal"


def test_profile_report_prints_a_bundle_or_a_measurement():
    bundle = hwnas.ProfileReport(
        space="s",
        device="jetson",
        backend="tensorrt",
        bundle=hwnas.api.Path("b"),
        next=["python profilers/trt_profile.py b", "hwnas import-table b"],
    )
    assert bundle.to_dict() == {
        "bundle": "b",
        "space": "s",
        "device": "jetson",
        "backend": "tensorrt",
        "next": bundle.next,
    }
    done = hwnas.ProfileReport(
        space="s",
        device="cpu",
        backend="onnxruntime",
        table=hwnas.api.Path("t.csv"),
        blocks_in_space=3,
        up_to_date=True,
        seconds=0.1,
    )
    assert set(done.to_dict()) == {
        "space",
        "device",
        "backend",
        "table",
        "blocks_in_space",
        "blocks_measured",
        "calibration_subnets",
        "calibrated_statistics",
        "up_to_date",
        "seconds",
    }
