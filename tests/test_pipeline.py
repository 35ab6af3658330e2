"""End to end: a short `hwnas demo` (train, table, search, fine-tune, export) whose every artifact loads and
agrees with PyTorch, a rerun that reuses its stages, and export's refusals."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import timm
import torch

import hwnas
import hwnas.deploy.exporter as exporter_mod
from hwnas.deploy import ExportError, export
from hwnas.deploy.artifacts import tensorrt_unavailable
from hwnas.deploy.exporter import latency_gate
from hwnas.latency.table import SHIPPED_DIR, Calibration, LatencyTable
from hwnas.profilers.protocol import Protocol
from hwnas.spaces import get_space
from tests.helpers import assert_one_line_error, hwnas_in_process
from tests.helpers import hwnas as run_cli

README = Path(__file__).resolve().parents[1] / "README.md"
SHORT = ["--epochs", "1", "--population", "4", "--generations", "2"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, installed_wheel) -> tuple[Path, dict]:
    """A short demo run by a wheel install of hwnas, from a folder outside the checkout."""
    home = tmp_path_factory.mktemp("user")
    result = installed_wheel.hwnas("demo", "--out", "demo_out", *SHORT, "--json", cwd=home)
    assert result.returncode == 0, result.stderr
    assert not list(installed_wheel.site.rglob("*.local.json")), "a local calibration went into site-packages"
    return home, json.loads(result.stdout)


def inputs(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(7))


def test_demo_runs_every_stage_and_reports(demo):
    home, report = demo
    low, high = report["space_latency_ms"]
    assert low < report["budget_ms"] < high
    inherited, searched, reference = report["rows"]
    assert searched["predicted_ms"] <= report["budget_ms"] and reference["predicted_ms"] >= searched["predicted_ms"]
    assert searched["measured_ms"] > 0 and inherited["arch"] == searched["arch"]
    for row in report["rows"]:  # test top-1 with its 95% interval on the test split
        low, high = row["test_top1_95ci"]
        assert 0 <= low <= row["test_top1"] <= high <= 100 and high - low > 2  # 359 images: a few points wide
    assert "test" in report["comparison"] and report["test_images"] == 359
    for path in [*report["artifacts"].values(), *report["plots"].values(), report["search"], report["results"]]:
        assert (home / path).is_file(), path
    manifest = json.loads((home / report["artifacts"]["manifest.json"]).read_text())
    for name, meta in manifest["artifacts"].items():
        assert hashlib.sha256((home / "demo_out/export" / name).read_bytes()).hexdigest() == meta["sha256"]
    assert manifest["latency"]["predicted"]["fingerprint"]["backend"] == "onnxruntime"
    measured = manifest["latency"]["measured"]  # model.onnx itself, timed as the table was measured
    assert measured["file"] == "model.onnx" and measured["comparable"] and measured["latency_ms"] > 0
    assert measured["vs_predicted_pct"] == pytest.approx(100 * (measured["latency_ms"] / searched["predicted_ms"] - 1))
    assert {k: measured["setup"][k] for k in ("backend", "precision", "batch_size", "threads")} == {
        "backend": "onnxruntime",
        "precision": "fp32",
        "batch_size": 1,
        "threads": 1,
    }
    assert Protocol.from_dict(measured["setup"]["protocol"]) == Protocol.from_dict(
        manifest["latency"]["predicted"]["fingerprint"]["protocol"]
    )
    assert report["calibration"]["used"] == manifest["latency"]["predicted"]["calibration"]
    # the export ships the fine-tuned winner, scored by the fine-tuning and by the export on the same images
    assert manifest["weights"] == "fine-tuned"
    assert manifest["accuracy_top1"] == pytest.approx(
        {"search_val": searched["search_val_top1"], "test": searched["test_top1"]}
    )
    assert "tensorrt" in manifest["skipped"] or "tensorrt" in manifest["checks"]


def test_every_artifact_loads_and_agrees_with_pytorch(demo):
    home, _ = demo
    folder = home / "demo_out/export"
    manifest = json.loads((folder / "manifest.json").read_text())
    model = hwnas.load_model(folder)
    x = inputs()
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"x": x[:1].numpy()})[0] - expected[:1]).max() <= 1e-4
    check = manifest["checks"]["onnx"]
    assert check["metadata_entries"] == 0 and str(home) not in (folder / "model.onnx").read_bytes().decode("latin-1")
    assert manifest["params"] <= check["stored_weights"] <= 1.01 * manifest["params"]  # the subnet only
    np.save(folder / "x.npy", x[:1].numpy())
    np.save(folder / "y.npy", expected[:1])
    script = (
        "import sys; sys.modules['hwnas'] = None\n"  # torch.export.load must not need hwnas
        "import numpy as np, torch\n"
        f"m = torch.export.load({str(folder / 'model.pt2')!r}).module()\n"
        f"y = m(torch.from_numpy(np.load({str(folder / 'x.npy')!r}))).detach().numpy()\n"
        f"print(float(np.abs(y - np.load({str(folder / 'y.npy')!r})).max()))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=folder)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) <= 1e-5


def test_plain_deit_arch_rebuilds_with_timm(demo, tmp_path):
    home, _ = demo
    space = get_space("autoformer-digits")
    arch = space.with_layers(96, [(3, 2.0)] * 4)  # 3 heads x 32 = the embed width: a plain ViT
    export(home / "demo_out/run", arch, tmp_path / "deit", formats="safetensors", measure=False, progress=False)
    config = json.loads((tmp_path / "deit" / "config.json").read_text())
    model = timm.create_model(config["timm"]["model_name"], pretrained=False, **config["timm"]["kwargs"])
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(tmp_path / "deit" / "model.safetensors")), strict=True)
    with torch.no_grad():
        assert torch.equal(model.eval()(inputs()), hwnas.load_model(tmp_path / "deit")(inputs()))


def test_rerun_reuses_finished_stages(demo, installed_wheel):
    home, first = demo
    history = (home / "demo_out/search/history.csv").read_text()
    result = installed_wheel.hwnas("demo", "--out", "demo_out", *SHORT, "--json", cwd=home)
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout)
    assert again["stages"]["train"].startswith("reused") and again["rows"] == first["rows"]
    assert (home / "demo_out/search/history.csv").read_text() == history


def test_readme_python_api_block_runs(demo, monkeypatch):
    home, _ = demo
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    monkeypatch.chdir(home)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    run, result, report = namespace["run"], namespace["result"], namespace["report"]
    assert run.epochs_run == 0 and run.run == Path("demo_out/run")  # resumed a finished run: nothing to train
    assert result.to_dict()["predicted_latency"]["latency_ms"] <= 1.5 * namespace["fastest"]
    assert report.digest == result.best.digest == report.to_dict()["digest"]
    assert json.loads((home / "demo_out/export-api/manifest.json").read_text())["digest"] == report.digest
    assert isinstance(namespace["model"], torch.nn.Module)


def test_export_refusals_are_one_line(demo, tmp_path):
    home, report = demo
    run, best = str(home / "demo_out/run"), str(home / report["search"])
    tiny = tmp_path / "tiny.json"
    tiny.write_text(get_space("autoformer-tiny").smallest().to_json())
    blocker = tmp_path / "file"
    blocker.write_text("")
    base = ["export", "--run", run, "--no-measure"]
    cases = [
        (base + ["--arch", str(tiny), "--out", str(tmp_path / "a")], ["from space 'autoformer-tiny'"]),
        (base + ["--arch", best, "--out", str(blocker / "sub")], ["cannot write to", "writable --out"]),
        (
            base + ["--arch", best, "--out", str(tmp_path / "b"), "--formats", "onnx,tflite"],
            ["unknown format 'tflite'"],
        ),
        (["export", "--run", str(tmp_path), "--arch", best, "--out", str(tmp_path / "c")], ["is not a training run"]),
        (
            base + ["--arch", best, "--out", str(tmp_path / "e"), "--max-latency-error", "10"],
            ["--max-latency-error needs the model timed here", "--no-measure"],
        ),
        (
            [
                "export",
                "--run",
                run,
                "--arch",
                best,
                "--out",
                str(tmp_path / "f"),
                "--max-latency-error",
                "10",
                "--batch-size",
                "2",
            ],
            ["--max-latency-error compares with", "export with --batch-size 1 --precision fp32"],
        ),
    ]
    if tensorrt_unavailable():
        cases.append(
            (
                base + ["--arch", best, "--out", str(tmp_path / "d"), "--formats", "onnx,tensorrt"],
                ["tensorrt was requested but", "drop it from --formats"],
            )
        )
    for args, fragments in cases:
        assert_one_line_error(hwnas_in_process(*args), *fragments)


def test_latency_gate_exits_1_and_keeps_the_artifacts_when_measured_is_over_the_prediction(demo, tmp_path):
    home, report = demo
    table = LatencyTable.load(SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv")  # the table the demo used
    space = get_space("autoformer-digits")
    c = table.calibration(space)
    table.set_calibration(space, Calibration(c.a / 10, c.b / 10, c.n))  # predicts 10x too fast
    table.save(tmp_path / "optimistic.csv")
    base = [
        "export",
        "--run",
        str(home / "demo_out/run"),
        "--arch",
        str(home / report["search"]),
        "--formats",
        "onnx",
        "--table",
        str(tmp_path / "optimistic.csv"),
        "--drift",
        "ignore",
        "--json",
    ]
    failed = run_cli(*base, "--out", str(tmp_path / "over"), "--max-latency-error", "10")
    assert failed.returncode == 1, failed.stderr
    gate = json.loads(failed.stdout)["gate"]
    assert (
        not gate["passed"] and gate["measured_vs_predicted_pct"] > 100 and "more than the 10% allowed" in gate["reason"]
    )
    assert (tmp_path / "over/model.onnx").is_file()
    assert json.loads((tmp_path / "over/manifest.json").read_text())["gate"] == gate
    assert latency_gate({"latency_ms": 1.05, "vs_predicted_pct": 5.0}, 10)["passed"]  # faster or within: passes
    assert latency_gate({"latency_ms": 0.5, "vs_predicted_pct": -50.0}, 10)["passed"]


@pytest.mark.skipif(bool(tensorrt_unavailable()), reason="needs tensorrt and a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_runs_and_agrees_with_pytorch(demo, tmp_path, precision):
    home, report = demo
    manifest = export(
        home / "demo_out/run",
        home / report["search"],
        tmp_path / precision,
        formats="onnx,tensorrt",
        precision=precision,
        measure=False,
        progress=False,
    )
    check = manifest["checks"]["tensorrt"]
    assert 0 <= check["max_abs_diff"] <= check["tolerance"] and check["io_tensors"] == 2


def test_failed_export_leaves_earlier_artifacts_intact(demo, tmp_path, monkeypatch):
    home, report = demo
    run, best = home / "demo_out/run", home / report["search"]
    out = tmp_path / "out"
    export(run, best, out, formats="onnx", measure=False, progress=False)
    before = (out / "model.onnx").read_bytes()

    def broken(*args, **kwargs):
        raise ExportError("model.pt2 differs from PyTorch")

    monkeypatch.setattr(exporter_mod, "check_pt2", broken)
    with pytest.raises(ExportError):
        export(run, best, out, formats="onnx,pt2", measure=False, progress=False)
    assert (out / "model.onnx").read_bytes() == before and not (out / "model.pt2").exists()
    assert not list(out.glob(".export-*"))


def test_fp16_export_runs_in_half_precision(demo, tmp_path):
    home, report = demo
    manifest = export(
        home / "demo_out/run",
        home / report["search"],
        tmp_path / "half",
        formats="onnx,pt2",
        precision="fp16",
        measure=False,
        progress=False,
    )
    assert manifest["precision"] == "fp16" and set(manifest["checks"]) == {"onnx", "pt2"}
    assert all(0 < c["max_abs_diff"] <= 2e-2 for c in manifest["checks"].values())  # half, not silently fp32
    session = ort.InferenceSession(str(tmp_path / "half" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float16)"


def test_export_times_what_it_wrote_at_its_precision_and_batch(demo, tmp_path):
    home, report = demo
    manifest = export(
        home / "demo_out/run",
        home / report["search"],
        tmp_path / "half",
        formats="onnx",
        precision="fp16",
        batch_size=2,
        progress=False,
    )
    measured = manifest["latency"]["measured"]
    assert measured["file"] == "model.onnx" and measured["latency_ms"] > 0
    assert (measured["setup"]["precision"], measured["setup"]["batch_size"]) == ("fp16", 2)
    assert not measured["comparable"] and measured["vs_predicted_pct"] is None
    assert "predicts batch 1 in fp32; this export runs batch 2 in fp16" in measured["note"]


def test_export_on_a_machine_that_cannot_run_the_table_skips_timing_at_once(demo, tmp_path, monkeypatch):
    home, report = demo
    table = LatencyTable.load(SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv")  # the table the demo used
    table.fingerprint.update(device="cpu-graviton3", cpu_model="Neoverse-V1")
    table.save(tmp_path / "graviton.csv")

    def never(*args, **kwargs):
        raise AssertionError("a setup this machine cannot run must not be timed")

    monkeypatch.setattr(exporter_mod, "measure_model", never)
    manifest = export(
        home / "demo_out/run",
        home / report["search"],
        tmp_path / "out",
        formats="onnx",
        device="cpu-graviton3",
        table=tmp_path / "graviton.csv",
        progress=False,
    )
    latency = manifest["latency"]
    assert latency["predicted"]["device"] == "cpu-graviton3" and latency["measured"] is None
    assert "cannot run the setup" in latency["not_measured"] and "Neoverse-V1" in latency["not_measured"]


def test_show_summarises_every_demo_folder(demo):
    from tests.test_show import check_export, check_finetune, check_run, check_search

    home, _ = demo
    check_run(home / "demo_out/run")
    check_search(home / "demo_out/search")
    check_finetune(home / "demo_out/finetune")
    check_export(home / "demo_out/export")
    shown = hwnas_in_process("show", str(home / "demo_out/search"), "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["kind"] == "search"
    assert_one_line_error(
        hwnas_in_process("show", str(home / "demo_out")), "is not an hwnas output folder", "run/ (training run)"
    )
