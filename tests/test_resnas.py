"""ViT-ResNAS: the multi-stage space, residual spatial reduction, the supernet (sliced and masked),
extraction, counts against the released code, multi-architectural training, and the pipeline."""

from __future__ import annotations

import copy
import itertools
import json
import os
import random
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import hwnas
import hwnas.families.resnas.supernet as resnas_supernet
from hwnas.cost import count_flops
from hwnas.deploy import export
from hwnas.errors import ArchError, HwnasError, SpaceError
from hwnas.families.resnas.model import ResNASNet, SpatialReduction
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.profile import ProfileSettings, profile_space
from hwnas.latency.table import LatencyTable
from hwnas.profilers.protocol import Protocol
from hwnas.spaces import get_space
from hwnas.supernet import build_supernet
from hwnas.training import TrainConfig, TrainedRun, train
from hwnas.training.checkpoint import WEIGHTS
from hwnas.training.sampling import step_archs
from tests.helpers import assert_one_line_error, hwnas_in_process, train_killed_after_first_epoch
from tests.helpers import hwnas as run_cli

QUICK = Protocol(warmup_runs=3, warmup_s=0.01, rounds=2, round_s=0.01, group_size=3)


def small_yaml(folder: Path, **extra) -> Path:
    """A two-stage space small enough to enumerate (16 px, patch 4: 4x4 then 2x2 tokens)."""
    spec = {
        "family": "resnas",
        "img_size": 16,
        "patch_size": 4,
        "in_chans": 3,
        "num_classes": 10,
        "blocks": [2, 1],
        "skippable": [1],
        "head_dim": [8, 8],
        "stem": "patch",
        "choices": {
            "embed_dim_1": [16, 24],
            "attn_dim_1": [8, 16],
            "mlp_hidden_1": [16],
            "embed_dim_2": [16, 32],
            "attn_dim_2": [16],
            "mlp_hidden_2": [32, 48],
        },
        **extra,
    }
    path = folder / "resnas-small-test.yaml"
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture(scope="module")
def digits():
    return get_space("resnas-digits")


@pytest.fixture(scope="module")
def supernet(digits):
    torch.manual_seed(0)
    net = build_supernet(digits).eval()
    with torch.no_grad():  # non-trivial biases and norms, so a wrong slice shows
        for p in net.parameters():
            p.add_(torch.randn_like(p), alpha=0.05)
    return net


# ---- the space ----------------------------------------------------------------------------------------
def test_shipped_spaces_follow_the_released_configs():
    tiny, small = get_space("resnas-tiny"), get_space("resnas-small")
    assert [tiny.tokens(s) for s in range(3)] == [257, 65, 17]  # 16x16, 8x8, 4x4 grids + the class token
    assert tiny.choices("attn_dim", 1) == (288, 384, 480, 576) and tiny.head_dim(1) == 48
    assert [tiny.slots(s) for s in range(3)] == [6, 6, 6] and tiny.skippable(0) == [1, 3, 5]
    assert [small.slots(s) for s in range(3)] == [7, 7, 7] and small.choices("embed_dim", 2)[-1] == 1280
    assert tiny.smallest().macs() < tiny.largest().macs() and tiny.num_archs() > 10**13


def test_num_archs_counts_distinct_networks(tmp_path):
    space = get_space(small_yaml(tmp_path))
    values = [g.choices if not g.is_list else list(itertools.product(g.choices, repeat=g.length)) for g in space.genes]
    distinct = set()
    for combo in itertools.product(*values):
        try:
            distinct.add(space.arch(**{g.name: v for g, v in zip(space.genes, combo)}).digest)
        except ArchError:  # a shrinking width
            continue
    # widths (16,16), (16,32), (24,32); stage 1: slot 0 one of 2 attention widths, slot 1 skipped or one of 2;
    # stage 2: one slot, 2 MLP widths
    assert len(distinct) == space.num_archs() == 3 * (2 * (1 + 2)) * 2
    drawn = {space.sample_distinct(i).digest for i in range(400)}
    assert drawn == distinct


def test_bad_archs_and_spaces_name_the_field(digits, tmp_path):
    arch = digits.largest()
    with pytest.raises(ArchError, match=r"stage widths shrink \(embed_dim_2 = 56 < embed_dim_1 = 64\)"):
        arch.replace(embed_dim_2=56)
    with pytest.raises(ArchError, match=r"field 'attn_dim_2' has 4 entries but the space has 3"):
        arch.replace(attn_dim_2=[48, 48, 48, 48])
    with pytest.raises(ArchError, match=r"slot 0 of stage 1 cannot be skipped; skippable slots: 1"):
        digits.with_stages([(48, [None, (32, 96)]), (96, [(48, 128)] * 3), (96, [(64, 192)] * 2)])
    bad = small_yaml(
        tmp_path,
        choices={
            "embed_dim_1": [16],
            "attn_dim_1": [12],
            "mlp_hidden_1": [16],
            "embed_dim_2": [16],
            "attn_dim_2": [16],
            "mlp_hidden_2": [32],
        },
    )
    with pytest.raises(SpaceError, match="attn_dim_1 = 12 is not a multiple of the stage's head_dim 8"):
        get_space(bad)
    arch_file = tmp_path / "shrinks.json"
    arch_file.write_text(json.dumps({**arch.to_dict(), "embed_dim_2": 56}))
    assert_one_line_error(run_cli("arch", str(arch_file)), "embed_dim_2 = 56 < embed_dim_1 = 64")


def test_skipped_slots_have_one_encoding(digits):
    a = digits.with_stages([(48, [(32, 96), None]), (96, [(48, 128)] * 3), (96, [(64, 192)] * 2)])
    b = a.replace(attn_dim_1=[32, 48], mlp_hidden_1=[96, 128])  # the skipped slot's widths change nothing
    assert a == b and a.digest == b.digest and len(a.blocks()) == 1 + 1 + 1 + 3 + 1 + 2 + 1


# ---- model, supernet, extraction --------------------------------------------------------------------
def test_reduction_halves_the_grid_and_keeps_the_residual():
    red = SpatialReduction(8, 12, grid=4)
    for p in (red.conv.weight, red.conv.bias, red.pos_embed, red.token.weight, red.token.bias):
        torch.nn.init.zeros_(p)  # main path off: what is left is the residual path
    x = torch.randn(2, 17, 8)
    y = red(x)
    assert y.shape == (2, 5, 12)
    pooled = F.avg_pool2d(x[:, 1:].transpose(1, 2).reshape(2, 8, 4, 4), 2).flatten(2).transpose(1, 2)
    assert torch.allclose(y[:, 1:, :8], pooled) and torch.equal(y[:, 0, :8], x[:, 0]) and not y[..., 8:].any()


def test_extraction_matches_the_supernet(digits, supernet):
    x = torch.randn(3, 3, 32, 32)
    for i in range(8):
        arch = digits.sample(i)
        model = supernet.extract(arch).eval()
        assert isinstance(model, ResNASNet) and sum(p.numel() for p in model.parameters()) == arch.params()
        with torch.no_grad():
            assert (model(x) - supernet(x, arch)).abs().max() <= 1e-5, arch
    fresh = hwnas.build_model(digits.largest())
    assert fresh.state_dict().keys() == supernet.extract(digits.largest()).state_dict().keys()


def test_conv_stem_extracts_with_its_batchnorm(tmp_path):
    space = get_space(small_yaml(tmp_path, stem="conv", stem_channels=4))
    torch.manual_seed(0)
    net = build_supernet(space)
    net.train()(torch.randn(4, 3, 16, 16), space.largest())  # BatchNorm running statistics move
    net.eval()
    x = torch.randn(2, 3, 16, 16)
    for arch in (space.smallest(), space.largest()):
        with torch.no_grad():
            assert (net.extract(arch).eval()(x) - net(x, arch)).abs().max() <= 1e-5
    assert count_flops(hwnas.build_model(space.largest())) == space.largest().macs()


def test_searched_tiny_counts_what_the_released_code_counts():
    """The released searched ViT-ResNAS-Tiny (`scripts/vit-sr-nas/searched_net/tiny.sh`): widths 176/352/704,
    5/6/5 blocks. The released MAC estimator (`network_utils/compute_flop_mac.py`, `ComputationEstimator(
    distill=False, input_resolution=224, patch_size=14)`) gives 1,782,630,272 MACs for its `network_def`;
    the paper reports ~1.8 G ("slightly higher MACs than DeiT-Ti"). Its parameters counted from the released
    modules, without the training-only patch-mixup head: 40.79 M."""
    tiny = get_space("resnas-tiny")
    arch = tiny.with_stages(
        [
            (176, [(96, 704), (96, 576), (96, 640), (128, 576), (128, 704), None]),
            (352, [(480, 1408), (384, 1408), (384, 1280), (384, 1408), (480, 1280), (480, 1024)]),
            (704, [(640, 2560), (640, 1792), (640, 2816), (512, 2816), (512, 2560), None]),
        ]
    )
    assert arch.macs() == 1_782_630_272
    assert abs(arch.params() / 40.79e6 - 1) < 0.02
    model = hwnas.build_model(arch)
    assert sum(p.numel() for p in model.parameters()) == arch.params() and count_flops(model) == arch.macs()


# ---- multi-architectural sampling ---------------------------------------------------------------------
def test_masked_forward_and_gradients_equal_separate_subnets(digits, supernet, monkeypatch):
    archs = [digits.sample(10 + i) for i in range(4)]
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    seen = []
    real = resnas_supernet._masked_block

    def recording(block, h, masks, slot):
        out = real(block, h, masks, slot)
        seen.append((out, masks.embed))
        return out

    monkeypatch.setattr(resnas_supernet, "_masked_block", recording)
    supernet.zero_grad()
    F.cross_entropy(supernet.forward_multi(x, archs), y, reduction="sum").backward()
    masked = {n: p.grad.clone() for n, p in supernet.named_parameters() if p.grad is not None}
    assert seen and all(not (out * (1 - mask)).any() for out, mask in seen)  # outside a width: exactly zero
    supernet.zero_grad()
    logits = [supernet(x[2 * j : 2 * j + 2], a) for j, a in enumerate(archs)]
    sum(F.cross_entropy(out, y[2 * j : 2 * j + 2], reduction="sum") for j, out in enumerate(logits)).backward()
    separate = {n: p.grad.clone() for n, p in supernet.named_parameters() if p.grad is not None}
    with torch.no_grad():
        assert (supernet.forward_multi(x, archs) - torch.cat(logits)).abs().max() <= 1e-5
    for name in masked.keys() | separate.keys():
        a, b = masked.get(name, torch.zeros(())), separate.get(name, torch.zeros(()))
        assert (a - b).abs().max() <= 1e-5, name
    supernet.zero_grad()


def test_multi_refuses_uneven_batches_and_families_without_masks(toy_yaml, tmp_path):
    with pytest.raises(HwnasError, match="`batch_size` 30 is not a multiple of `archs_per_batch` 4"):
        TrainConfig(space="resnas-digits", sampling="multi", archs_per_batch=4, batch_size=30).with_defaults(
            get_space("resnas-digits")
        )
    with pytest.raises(HwnasError, match="`sampling` multi needs per-example channel masks, which the autoformer"):
        TrainConfig(space=str(toy_yaml), sampling="multi").with_defaults(get_space(toy_yaml))
    assert_one_line_error(
        run_cli(
            "train",
            "--space",
            "resnas-digits",
            "--sampling",
            "multi",
            "--archs-per-batch",
            "3",
            "--batch-size",
            "32",
            "--out",
            str(tmp_path / "unused"),
        ),
        "not a multiple of --archs-per-batch 3",
    )
    assert not (tmp_path / "unused").exists()  # bad input leaves no folder behind


# ---- warm-up of choices and rewiring (the release's `set_epoch`) ---------------------------------------
def test_rewiring_permutes_weights_and_moments_but_keeps_the_largest(digits, supernet):
    net = copy.deepcopy(supernet)
    optimizer = torch.optim.AdamW(net.parameters())
    x = torch.randn(4, 3, 32, 32)
    F.cross_entropy(net.forward_multi(x, [digits.largest(), digits.smallest()]), torch.arange(4)).backward()
    optimizer.step()
    mlp = net.stages[1][0].mlp
    order = torch.sort(resnas_supernet.hidden_importance(mlp), descending=True).indices
    assert not torch.equal(order, torch.arange(len(order)))  # the test needs a non-trivial order
    old_weight, old_moment = mlp.fc1.weight.clone(), optimizer.state[mlp.fc1.weight]["exp_avg"].clone()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        largest, smallest = net(x, digits.largest()), net(x, digits.smallest())
        net.rewire(optimizer)
        assert torch.allclose(net(x, digits.largest()), largest, atol=1e-5)  # the same function
        assert torch.allclose(net.forward_multi(x, [digits.largest()] * 2), largest, atol=1e-5)
        assert not torch.allclose(net(x, digits.smallest()), smallest, atol=1e-3)  # other leading channels
    moved = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert moved == {
        f"stages.{s}.{j}.{name}"
        for s, stage in enumerate(net.stages)
        for j in range(len(stage))
        for name in (
            "attn.qkv.weight",
            "attn.qkv.bias",
            "attn.proj.weight",
            "mlp.fc1.weight",
            "mlp.fc1.bias",
            "mlp.fc2.weight",
        )
    }
    assert torch.equal(mlp.fc1.weight, old_weight[order])  # most important unit first
    assert torch.equal(optimizer.state[mlp.fc1.weight]["exp_avg"], old_moment[order])  # its moments with it
    assert (resnas_supernet.hidden_importance(mlp).diff() <= 0).all()


def test_warmup_draws_the_largest_first_then_adds_the_others(digits):
    net = resnas_supernet.ResNASSupernet(digits)
    epochs, largest = 40, digits.largest()
    first = net.on_epoch(0, epochs)
    for sampling in ("uniform", "distinct", "multi", "sandwich"):
        for step in range(10):
            assert set(step_archs(first, sampling, 0, step, archs_per_batch=4)) == {largest}, sampling
    # a dimension of K choices draws from its 1 + floor(epoch (K - 1) / 10) largest: skipping (the
    # release's [keep, keep, skip, skip]) from epoch 7, the widths (K = 2) from epoch 10, all of it
    assert digits.warmup_draws(6, epochs).sample(random.Random(0)) == largest
    late = [digits.warmup_draws(7, epochs).sample(random.Random(i)) for i in range(30)]
    assert any(a.skip_2 == (1,) for a in late) and all(a.embed_dim_1 == 64 for a in late)
    assert all(a.space is digits for a in late) and digits.warmup_draws(7, epochs).smallest().skip_1 == (1,)
    assert digits.warmup_draws(10, epochs) is digits and net.on_epoch(10, epochs) is digits
    assert len({digits.warmup_draws(10, epochs).sample(random.Random(i)) for i in range(30)}) > 20


def test_warmup_is_on_for_resnas_recorded_and_refused_elsewhere(digits, toy_yaml):
    config = TrainConfig(space="resnas-digits").with_defaults(digits)
    assert config.warmup_choices is True and "warm-up of choices" in config.describe()
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    off = TrainConfig(space="resnas-digits", warmup_choices=False).with_defaults(digits)
    assert off.warmup_choices is False and TrainConfig.from_dict(off.to_dict()) == off
    # a run saved before the setting had no warm-up, whatever its family
    saved = {k: v for k, v in config.to_dict().items() if k != "warmup_choices"}
    assert TrainConfig.from_dict({**saved, "format": 2}).warmup_choices is False
    assert TrainConfig(space=str(toy_yaml)).with_defaults(get_space(toy_yaml)).warmup_choices is False
    with pytest.raises(HwnasError, match="no warm-up of choices"):
        TrainConfig(space=str(toy_yaml), warmup_choices=True).with_defaults(get_space(toy_yaml))


# ---- the pipeline (on the two-stage test space: 15 blocks profile in seconds) ---------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return small_yaml(tmp_path_factory.mktemp("resnas-space"))


@pytest.fixture(scope="module")
def table(small, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("resnas-table") / "cpu.csv"
    profile_space(
        get_space(small), ProfileSettings(device="cpu", calibration_archs=2, protocol=QUICK), path, progress=False
    )
    return path


def test_profile_predict_and_exact_feasibility(small, table):
    space = get_space(small)
    loaded = LatencyTable.load(table)
    assert sorted(loaded.rows.index) == sorted(b.key for b in space.block_configs())
    assert {"reduction", "encoder", "patch_embed", "head"} == set(loaded.rows["kind"])
    predictor = LatencyPredictor(loaded, space)
    archs = [space.sample(i) for i in range(30)]
    fast = predictor.predict_many(archs)
    slow = [predictor.predict(a).latency_ms for a in archs]
    assert np.allclose(fast, slow)
    cheapest = space.extreme_arch(lambda b: loaded.rows.loc[b.key, "p50_ms"])
    assert predictor.predict(cheapest).latency_ms <= min(fast) + 1e-9


def test_multi_trains_resumes_searches_and_exports(small, table, tmp_path, monkeypatch):
    space = get_space(small)
    run = tmp_path / "run"
    config = TrainConfig(
        space=str(small), data="synthetic", epochs=2, batch_size=16, sampling="multi", archs_per_batch=4
    )
    report = train(config, run, progress=False)
    assert report["final"]["epoch"] == 2 and report["config"]["archs_per_batch"] == 4
    trained = TrainedRun(run)
    assert trained.top1(space.largest()) > 100 / 10 * 1.5  # above chance: the masked pass trained it
    # killed after its first epoch and resumed: the same weights as the straight run
    train_killed_after_first_epoch(config, tmp_path / "killed", monkeypatch)
    assert train(config, tmp_path / "killed", resume=True, progress=False)["epochs_run"] == 1
    straight, resumed = load_file(str(run / WEIGHTS)), load_file(str(tmp_path / "killed" / WEIGHTS))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    predictor = LatencyPredictor(LatencyTable.load(table), space)
    budget = float(np.median(predictor.predict_many([space.sample(i) for i in range(20)])))
    result = hwnas.search(
        run,
        latency_ms=budget,
        device="cpu",
        table=table,
        population=6,
        generations=2,
        parents=3,
        out=tmp_path / "search",
        progress=False,
    )
    assert result.report["predicted_latency"]["latency_ms"] <= budget
    manifest = export(
        run,
        tmp_path / "search" / "best.json",
        tmp_path / "export",
        formats="onnx,pt2,safetensors",
        table=table,
        progress=False,
    )
    assert manifest["params"] == result.best.params()
    model = hwnas.load_model(tmp_path / "export")
    assert isinstance(model, ResNASNet)
    x = torch.randn(1, 3, 16, 16)  # the ONNX file has the table's batch size
    session = ort.InferenceSession(str(tmp_path / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        assert np.abs(session.run(None, {"x": x.numpy()})[0] - model(x).numpy()).max() <= 1e-4
        assert (model(x) - trained.supernet()(x, result.best)).abs().max() <= 1e-5


def test_demo_runs_on_a_resnas_space(small, table, tmp_path):
    env = {**os.environ, "HWNAS_TABLES": str(table.parent)}  # the table profiled above covers the space
    result = run_cli(
        "demo",
        "--space",
        str(small),
        "--out",
        "demo_out",
        "--epochs",
        "1",
        "--population",
        "4",
        "--generations",
        "2",
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    names = [r["name"] for r in report["rows"]]
    assert report["space"] == "resnas-small-test" and names == [
        "searched, inherited",
        "searched, fine-tuned",
        "hand-designed uniform",
    ]
    assert report["rows"][1]["measured_ms"] > 0 and report["rows"][1]["predicted_ms"] <= report["budget_ms"]
    assert_one_line_error(
        run_cli("demo", "--space", "resnas-tiny", "--out", "x", cwd=tmp_path),
        "has 1000; pick a digits space",
        "resnas-digits",
    )


def test_warmup_rewires_resumes_exactly_and_turns_off(small, tmp_path, monkeypatch):
    calls: list[bool] = []
    rewire = resnas_supernet.ResNASSupernet.rewire

    def recording(self, optimizer=None):
        calls.append(optimizer is not None)
        return rewire(self, optimizer)

    monkeypatch.setattr(resnas_supernet.ResNASSupernet, "rewire", recording)
    config = TrainConfig(space=str(small), data="synthetic", epochs=4, batch_size=64)
    train(config, tmp_path / "run", progress=False)
    assert calls == [True, True]  # epochs 0 and 1: up to the end of the warm-up (4 / 4), with the moments
    assert json.loads((tmp_path / "run" / "config.json").read_text())["warmup_choices"] is True
    # killed after its first epoch and resumed: the resumed epoch rewires the loaded weights and moments
    train_killed_after_first_epoch(config, tmp_path / "killed", monkeypatch)
    train(config, tmp_path / "killed", resume=True, progress=False)
    assert len(calls) == 4  # epoch 0 before the kill, epoch 1 after the resume
    straight, resumed = load_file(str(tmp_path / "run" / WEIGHTS)), load_file(str(tmp_path / "killed" / WEIGHTS))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    calls.clear()
    printed = hwnas_in_process(
        "train", "--space", str(small), "--data", "synthetic", "--epochs", "1", "--batch-size", "64",
        "--no-warmup-choices", "--out", str(tmp_path / "off"), "--json",
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    assert not calls and json.loads((tmp_path / "off" / "config.json").read_text())["warmup_choices"] is False
