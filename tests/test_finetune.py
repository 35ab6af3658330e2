"""Fine-tuning the searched subnet: it trains alone from its inherited weights (or from scratch),
checkpoints and resumes exactly, reports before and after, and export ships its weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import hwnas
import hwnas.training.finetune as finetune_module
from hwnas.deploy import export
from hwnas.errors import ArchError
from hwnas.spaces import get_space
from hwnas.training import TrainConfig, TrainedRun, train
from hwnas.training.finetune import FinetuneConfig, finetune
from tests.helpers import assert_one_line_error, killed_after_first_checkpoint, toy_space_yaml
from tests.helpers import hwnas as run_cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ft")
    yaml_path = toy_space_yaml(folder, "finetune-toy")
    out = folder / "run"
    train(
        TrainConfig(space=str(yaml_path), data="synthetic", epochs=2, batch_size=16, lr=2e-3, warmup_epochs=1),
        out,
        progress=False,
    )
    return out


def settings(run_dir: Path, **kw) -> FinetuneConfig:
    run = TrainedRun(run_dir)
    return FinetuneConfig(run=str(run_dir), arch=run.space.smallest().to_dict(), **{"epochs": 3, **kw})


def test_finetuning_starts_from_the_inherited_weights_and_trains_on(run_dir, tmp_path):
    run = TrainedRun(run_dir)
    report = finetune(settings(run_dir), tmp_path / "ft", progress=False)
    smallest = run.space.smallest()
    # it starts where the supernet left the subnet: the same search-val score as inherited
    assert report["before"]["search_val"]["top1"] == pytest.approx(run.top1(smallest))
    assert report["config"]["lr"] == pytest.approx(run.config.lr / 4) and report["epochs_run"] == 3
    metrics = pd.read_csv(tmp_path / "ft" / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2, 3] and metrics["loss"].iloc[-1] < metrics["loss"].iloc[0]
    assert report["after"]["search_val"]["top1"] >= report["before"]["search_val"]["top1"] - 5
    assert (tmp_path / "ft" / "learning_curve.png").is_file()
    weights = load_file(str(tmp_path / "ft" / "model.safetensors"))
    inherited = run.extract(smallest).state_dict()
    assert weights.keys() == inherited.keys() and any(not torch.equal(weights[k], inherited[k]) for k in weights)
    # export ships the fine-tuned weights, and says so
    manifest = export(
        tmp_path / "ft", smallest, tmp_path / "export", formats="safetensors", measure=False, progress=False
    )
    assert manifest["weights"] == "fine-tuned"
    assert manifest["accuracy_top1"]["test"] == pytest.approx(report["after"]["test"]["top1"])
    exported = hwnas.load_model(tmp_path / "export").state_dict()
    assert all(torch.equal(exported[k], weights[k]) for k in weights)
    with pytest.raises(ArchError, match="fine-tuned arch .*, not"):
        export(
            tmp_path / "ft",
            run.space.largest(),
            tmp_path / "export2",
            formats="safetensors",
            measure=False,
            progress=False,
        )


def test_killed_finetuning_resumes_exactly(run_dir, tmp_path, monkeypatch):
    straight = finetune(settings(run_dir, distill=True), tmp_path / "a", progress=False)
    killed_after_first_checkpoint(
        finetune_module, lambda: finetune(settings(run_dir, distill=True), tmp_path / "b", progress=False), monkeypatch
    )
    resumed = finetune(settings(run_dir, distill=True), tmp_path / "b", resume=True, progress=False)
    assert resumed["epochs_run"] == 2 and resumed["before"] == straight["before"]
    a, b = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(hwnas.HwnasError, match=r"other settings than the fine-tuning's: distill=False \(run: True\)"):
        finetune(settings(run_dir), tmp_path / "b", resume=True, progress=False)


def test_from_scratch_starts_from_a_fresh_initialisation(run_dir, tmp_path):
    run = TrainedRun(run_dir)
    report = finetune(settings(run_dir, from_scratch=True, epochs=1), tmp_path / "scratch", progress=False)
    assert report["config"]["lr"] == run.config.lr  # the supernet's own budget, but for the epochs given
    assert report["before"]["search_val"]["top1"] != pytest.approx(run.top1(run.space.smallest()))


def test_cli_finetune_under_torchrun_and_bad_input(run_dir, tmp_path):
    """Two processes with gloo: data-parallel, one writer, one report."""
    arch = tmp_path / "arch.json"
    TrainedRun(run_dir).space.smallest().to_json(arch)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "hwnas",
        "finetune",
        "--run-dir",
        str(run_dir),
        "--arch",
        str(arch),
        "--out",
        str(tmp_path / "ft"),
        "--epochs",
        "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # gloo on CPU, also on a GPU machine
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("search-val top-1:") == 1 and "after 2 epochs" in result.stdout  # rank 0 reports
    report = json.loads((tmp_path / "ft" / finetune_module.REPORT).read_text())
    assert report["processes"] == 2 and report["epochs_run"] == 2
    assert list(pd.read_csv(tmp_path / "ft" / "metrics.csv")["epoch"]) == [1, 2]
    # it trained: the fine-tuned weights differ from the inherited ones and score what the report says
    finetuned = finetune_module.FinetunedRun(tmp_path / "ft")
    assert finetuned.top1(finetuned.arch) == pytest.approx(report["after"]["search_val"]["top1"])
    tuned, inherited = (
        finetuned.extract(finetuned.arch).state_dict(),
        TrainedRun(run_dir).extract(finetuned.arch).state_dict(),
    )
    assert any(not torch.equal(tuned[k], inherited[k]) for k in tuned)
    # a resume on another number of processes would change the global batch and the schedule: refused
    with pytest.raises(hwnas.HwnasError, match=r"written by 2 process\(es\) and this resume runs 1"):
        finetune(settings(run_dir, epochs=2), tmp_path / "ft", resume=True, progress=False)
    other = tmp_path / "other.json"
    get_space("autoformer-digits").smallest().to_json(other)
    assert_one_line_error(
        run_cli("finetune", "--run", str(run_dir), "--arch", str(other), "--out", str(tmp_path / "x")),
        "autoformer-digits",
    )
    assert_one_line_error(
        run_cli("finetune", "--run", str(run_dir), "--arch", str(arch), "--out", str(tmp_path / "ft"), "--epochs", "1"),
        "already holds a fine-tuning; pass --resume",
    )
