"""On a CUDA machine: one training epoch, a two-generation search and an export, each on the GPU.

Skipped without CUDA. The first search-val evaluation on a GPU once raised (labels cached on the
GPU compared with predictions moved to the CPU); this runs the whole path where it can break.
"""

from __future__ import annotations

import json

import pytest
import torch

import hwnas
from hwnas.deploy import export
from hwnas.subnet_search.fitness import Fitness
from hwnas.training import TrainConfig, TrainedRun, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "run"
    report = train(
        TrainConfig(space="autoformer-digits", data="digits", epochs=1, sampling="sandwich"), out, progress=False
    )
    return out, report


def test_train_search_export_on_cuda(gpu_run, tmp_path):
    out, report = gpu_run
    assert report["epochs_run"] == 1 and report["final"]["loss"] == report["final"]["loss"]  # finite, not NaN
    run = TrainedRun(out)
    fitness = Fitness(run)
    assert fitness.device.type == "cuda"
    arch = run.space.middle()
    on_gpu = fitness.top1(arch)  # caches the labels on the GPU, then scores a second time from the cache
    assert fitness.top1(arch) == on_gpu
    images = len(run.split.search_val)
    assert abs(on_gpu - run.top1(arch)) <= 100 * 2 / images  # the CPU score, up to ties on two images

    result = hwnas.search(
        out,
        flops_g=run.space.middle().macs() / 1e9,
        population=4,
        generations=2,
        parents=2,
        out=tmp_path / "search",
        progress=False,
    )
    assert result.report["evaluations"] == 8 and result.best.macs() <= run.space.middle().macs()
    history = result.history
    assert (
        history["top1_search_val"].between(0, 100).all() and history["top1_search_val"].nunique() > 1
    )  # really scored, not constant

    supernet = run.supernet().cuda()
    model = supernet.extract(result.best)
    assert next(model.parameters()).device.type == "cuda"  # extraction stays on the supernet's device
    x = torch.randn(4, 3, 32, 32, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), supernet(x, result.best), atol=1e-5, rtol=0)

    manifest = export(out, result.best, tmp_path / "export", formats="onnx,safetensors", measure=False, progress=False)
    assert manifest["cuda"] == torch.cuda.get_device_name(0)
    assert all(c["max_abs_diff"] <= c["tolerance"] for c in manifest["checks"].values())
    loaded = hwnas.load_model(tmp_path / "export").cuda()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=0)
    assert json.loads((tmp_path / "export" / "manifest.json").read_text())["digest"] == result.best.digest
