"""GLiT: the global/local space, the locality module, the supernet (sharing across G, expansions and
kernels), per-subnet BatchNorm recalibration, counts against the release, loading the release's
checkpoints by its parameter names, the two-level search, and the pipeline."""

from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

import hwnas
from hwnas.cost import count_flops
from hwnas.deploy import export
from hwnas.errors import ArchError, SpaceError
from hwnas.families.glit.model import GlobalLocalMixer, LocalBranch
from hwnas.families.glit.release_keys import from_release, to_release
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.profile import ProfileSettings, profile_space
from hwnas.latency.table import LatencyTable
from hwnas.profilers.protocol import Protocol
from hwnas.spaces import Arch, get_space
from hwnas.subnet_search import Budget
from hwnas.supernet import build_supernet
from hwnas.supernet.batchnorm import BatchNormCalibration, batchnorm_state
from hwnas.training import TrainConfig, TrainedRun, train
from hwnas.training.sampling import step_archs
from hwnas.weights import WeightsError
from tests.helpers import assert_one_line_error
from tests.helpers import hwnas as run_cli
from tests.test_search import engine

QUICK = Protocol(warmup_runs=3, warmup_s=0.01, rounds=2, round_s=0.01, group_size=3)
# The searched GLiT-Tiny of the release (`glit_models.py`, `RetrainTransformer`), in GLiT's own names.
GLIT_TINY = {"base_arch": [3, 0, 1, 3, 0, 1, 3, 1, 0, 3, 0, 3], "arch": [1, 4, 8, 4, 8, 8, 3, 6, 8, 4, 5, 8]}


def small_yaml(folder: Path) -> Path:
    """A two-block space small enough to enumerate (16 px, patch 4: 17 tokens; 16 choices per block)."""
    spec = {
        "family": "glit",
        "img_size": 16,
        "patch_size": 4,
        "in_chans": 3,
        "num_classes": 10,
        "embed_dim": 24,
        "depth": 2,
        "num_heads": 3,
        "local_kernel": [3, 7],
        "local_expansion": [1, 2],
        "attn_expansion": [0.5, 1],
        "mlp_ratio": [2, 4],
        "mixed_kernel": 5,
        "local_mlp_ratio": 2,
        "choices": {"global_heads": [0, 1, 2, 3]},
    }
    path = folder / "glit-small-test.yaml"
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture(scope="module")
def digits():
    return get_space("glit-digits")


def perturbed(net: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial biases, norms and BatchNorm statistics, so a wrong slice shows."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p), alpha=0.05)
        for name, b in net.named_buffers():
            if "running_mean" in name:
                b.normal_(0, 0.1)
            elif "running_var" in name:
                b.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def supernet(digits):
    return perturbed(build_supernet(digits))


def edge_archs(space) -> list[Arch]:
    return [
        space.uniform(0, 8),
        space.uniform(3, 8),
        space.uniform(1, 0),
        space.uniform(2, 4),
        *(space.sample(i) for i in range(6)),
    ]


# ---- the space and the counts ---------------------------------------------------------------------------
def test_searched_tiny_counts_what_the_paper_reports():
    space = get_space("glit-tiny")
    arch = space.arch(**GLIT_TINY)
    assert arch.global_heads == (3, 0, 1, 3, 0, 1, 3, 1, 0, 3, 0, 3)
    model = hwnas.build_model(arch)
    params = sum(p.numel() for p in model.parameters())
    assert params == arch.params() == 7_264_456 and abs(params / 7.2e6 - 1) < 0.02  # paper: 7.2M
    assert count_flops(model) == arch.macs() == 1_472_873_280  # fvcore, attention products and GLU's 2x conv included
    # The release's counter (`count_mixit_flops`) counts the first 1x1 conv at half its width (GLU's
    # doubling missed): 1.332 G; the paper reports 1.4 G; ours is within 6% of it.
    assert abs(arch.macs() / 1.4e9 - 1) < 0.06


def test_low_level_index_means_what_the_release_enumerates(digits):
    o = digits.spec.options
    for g, (first, second) in {
        0: (o["local_kernel"], o["local_expansion"]),
        1: (o["local_expansion"], o["mlp_ratio"]),
        3: (o["attn_expansion"], o["mlp_ratio"]),
    }.items():
        for index, (a, b) in enumerate(itertools.product(first, second)):  # the release's nested loops
            layer = digits.layer(g, index)
            if g == 0:
                assert (layer.kernel, layer.local_hidden) == (a, 48 * b) and layer.num_heads == 0
                assert layer.mlp_hidden == 48 * o["local_mlp_ratio"]
            elif g == 3:
                assert (layer.qkv_dim, layer.mlp_hidden, layer.local_hidden) == (int(48 * a), 48 * b, 0)
            else:
                assert (layer.local_hidden, layer.mlp_hidden, layer.kernel) == (32 * a, 48 * b, o["mixed_kernel"])
                assert (layer.global_dim, layer.qkv_dim, layer.num_heads) == (16, 16, 1)
    assert digits.num_archs() == 36**4


def test_bad_archs_name_the_field(digits, tmp_path):
    good = digits.sample(0).to_dict()
    cases = [
        ({"global_heads": [4, 0, 0, 0]}, "global_heads[0] = 4 is not a choice"),
        ({"low_level": [9, 0, 0, 0]}, "low_level[0] = 9 is not a choice"),
        ({"low_level": [0, 0, 0]}, "'low_level' has 3 entries"),
        ({"arch": [0, 0, 0, 0]}, "'low_level' is given twice"),
    ]
    for change, message in cases:
        with pytest.raises(ArchError, match=message.replace("[", r"\[").replace("]", r"\]")):
            Arch.from_dict({**good, **change})
    with pytest.raises(ArchError, match="arch is from space 'glit-digits', not 'autoformer-digits'"):
        Arch.from_dict(good, get_space("autoformer-digits"))
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**good, "global_heads": [1, 2, 3, 5]}))
    assert_one_line_error(run_cli("arch", str(path)), "global_heads[3] = 5", "choose from 0, 1, 2, 3")
    bad = tmp_path / "glit-bad.yaml"
    bad.write_text(small_yaml(tmp_path).read_text().replace('"local_kernel": [3, 7]', '"local_kernel": [4, 7]'))
    with pytest.raises(SpaceError, match="kernel sizes must be odd"):
        get_space(bad)


def test_analytic_counts_equal_the_static_models(digits):
    for arch in edge_archs(digits):
        model = hwnas.build_model(arch)
        assert sum(p.numel() for p in model.parameters()) == arch.params()
        assert count_flops(model) == arch.macs(), arch
    for block in digits.block_configs():  # each kind's standalone module is what it counts
        module = block.definition.module(block)
        assert sum(p.numel() for p in module.parameters()) == block.params(), block.key


def test_costs_are_not_monotone_and_the_extremes_are_exact(tmp_path):
    space = get_space(small_yaml(tmp_path))
    every = [
        space.arch(global_heads=g, low_level=i)
        for g in itertools.product(range(4), repeat=2)
        for i in itertools.product(range(4), repeat=2)
    ]
    assert len(every) == space.num_archs() == 256
    rng = random.Random(0)
    cost = {b: rng.random() for b in space.block_configs()}
    total = {a: sum(cost[b] for b in a.blocks()) for a in every}
    assert total[space.extreme_arch(cost.__getitem__)] == min(total.values())
    assert total[space.extreme_arch(cost.__getitem__, costliest=True)] == max(total.values())
    macs = {g: get_space("glit-tiny").uniform(g, 8).macs() for g in range(4)}  # the largest choice of each G
    assert not (macs[0] <= macs[1] <= macs[2] <= macs[3] or macs[0] >= macs[1] >= macs[2] >= macs[3])


# ---- the release's checkpoints -----------------------------------------------------------------------------
def release_shapes(space, base_arch, arch) -> dict[str, tuple[int, ...]]:
    """The names and shapes of the release's `RetrainTransformer.state_dict()`, written down from its
    code (bychen515/GLiT at 0981299), not from hwnas's map:

    - glit_models.py `RetrainTransformer.__init__` (lines 59-134): `patch_embed` (timm 0.3.2's
      `PatchEmbed`, its conv `proj`), `cls_token`, `pos_embed`, `blocks[i]` an `nn.ModuleList` of the
      one candidate its nested option loops pick (lines 87-127, hence `blocks.{i}.0.`), `norm`, `head`;
    - glit_models.py `Block_mix` (lines 32-51): `norm1`, `attn`, `norm2`, `mlp` (timm's `Mlp`: `fc1`,
      `fc2`); a pure-local block's MLP ratio is the model's `mlp_ratio` (4 in `glit_tiny_patch16_224`);
    - mix_attention.py `Vit_Attention` (lines 94-103), `Mix_Attention` (36-69), `Conv_Attention`
      (119-137): `qkv` Linear(dim_v, 3 * dim_v * e_v), `proj` back to dim_v; `net` = Sequential(Rearrange,
      Conv1d(dim_c, 2 * inner, 1), GLU, DepthWiseConv1d (its Conv1d as `conv`, line 30), BatchNorm1d,
      Swish, Conv1d(inner, dim_c, 1), Rearrange), inner = dim_c * e_c.
    """
    o, dim, heads = space.spec.options, space.embed_dim, space.num_heads
    kernels, e_cs, e_vs, ratios = (
        sorted(o[k]) for k in ("local_kernel", "local_expansion", "attn_expansion", "mlp_ratio")
    )
    patch, tokens = space.spec.patch_size, (space.spec.img_size // space.spec.patch_size) ** 2 + 1
    shapes = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, tokens, dim),
        "patch_embed.proj.weight": (dim, space.spec.in_chans, patch, patch),
        "patch_embed.proj.bias": (dim,),
    }
    for i, (g, low) in enumerate(zip(base_arch, arch)):
        first, second = divmod(low, 3)
        if g == 0:
            e_v, e_c, k, ratio = 1, e_cs[second], kernels[first], o["local_mlp_ratio"]
        elif g == 3:
            e_v, e_c, k, ratio = e_vs[first], 0, 0, ratios[second]
        else:
            e_v, e_c, k, ratio = 1, e_cs[first], o["mixed_kernel"], ratios[second]
        dim_v = int(dim * int(g / 3 * heads) / heads)  # Mix_Attention: v_head = int(v_head / 3 * num_heads)
        dim_c, qkv, hidden = dim - dim_v, int(dim_v * e_v), int(dim * ratio)
        inner = dim_c * e_c
        block = {"norm1.weight": (dim,), "norm1.bias": (dim,)}
        if g:
            block |= {
                "attn.qkv.weight": (3 * qkv, dim_v),
                "attn.qkv.bias": (3 * qkv,),
                "attn.proj.weight": (dim_v, qkv),
                "attn.proj.bias": (dim_v,),
            }
        if g < 3:
            block |= {
                "attn.net.1.weight": (2 * inner, dim_c, 1),
                "attn.net.1.bias": (2 * inner,),
                "attn.net.3.conv.weight": (inner, 1, k),
                "attn.net.3.conv.bias": (inner,),
                **{f"attn.net.4.{b}": (inner,) for b in ("weight", "bias", "running_mean", "running_var")},
                "attn.net.4.num_batches_tracked": (),
                "attn.net.6.weight": (dim_c, inner, 1),
                "attn.net.6.bias": (dim_c,),
            }
        block |= {
            "norm2.weight": (dim,),
            "norm2.bias": (dim,),
            "mlp.fc1.weight": (hidden, dim),
            "mlp.fc1.bias": (hidden,),
            "mlp.fc2.weight": (dim, hidden),
            "mlp.fc2.bias": (dim,),
        }
        shapes |= {f"blocks.{i}.0.{name}": shape for name, shape in block.items()}
    return shapes | {
        "norm.weight": (dim,),
        "norm.bias": (dim,),
        "head.weight": (space.spec.num_classes, dim),
        "head.bias": (space.spec.num_classes,),
    }


def release_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Random tensors in the release's layout (BatchNorm variances positive, its counter an int64)."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[name] = torch.randn(shape, generator=gen) * 0.1
    return state


def release_mixer(state: dict[str, torch.Tensor], prefix: str, x: torch.Tensor, v_heads: int) -> torch.Tensor:
    """What the release's `Mix_Attention.forward` (mix_attention.py lines 72-92) computes, as
    functional calls on its own names: attention on the first channels, `net` on the rest."""
    w = {name[len(prefix) :]: t for name, t in state.items() if name.startswith(prefix)}
    B, N, _ = x.shape
    x_v, x_c = x[..., : w["qkv.weight"].shape[1]], x[..., w["qkv.weight"].shape[1] :]
    q, k, v = F.linear(x_v, w["qkv.weight"], w["qkv.bias"]).reshape(B, N, 3, v_heads, -1).permute(2, 0, 3, 1, 4)
    attn = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1)
    x_v = F.linear((attn @ v).transpose(1, 2).reshape(B, N, -1), w["proj.weight"], w["proj.bias"])
    out, gate = F.conv1d(x_c.transpose(1, 2), w["net.1.weight"], w["net.1.bias"]).chunk(2, dim=1)
    y, taps = out * gate.sigmoid(), w["net.3.conv.weight"].shape[-1]
    y = F.conv1d(F.pad(y, (taps // 2, taps // 2)), w["net.3.conv.weight"], w["net.3.conv.bias"], groups=y.shape[1])
    bn = [w[f"net.4.{b}"] for b in ("running_mean", "running_var", "weight", "bias")]
    y = F.batch_norm(y, *bn, training=False)
    y = F.conv1d(y * y.sigmoid(), w["net.6.weight"], w["net.6.bias"]).transpose(1, 2)
    return torch.cat([x_v, y], dim=2)


def test_the_key_map_gives_the_release_layout_for_every_block_kind(digits):
    tiny = get_space("glit-tiny")
    shapes = release_shapes(tiny, **GLIT_TINY)
    # spot checks of the write-down, by hand from the release's code (192 channels, 3 heads)
    assert shapes["blocks.0.0.attn.qkv.weight"] == (288, 192)  # G = 3, e_v = 0.5
    assert shapes["blocks.1.0.attn.net.3.conv.weight"] == (384, 1, 31)  # G = 0, kernel 31, e_c = 2
    assert shapes["blocks.2.0.attn.net.1.weight"] == (1024, 128, 1)  # G = 1: 128 local channels, e_c = 4
    assert shapes["blocks.2.0.attn.proj.weight"] == (64, 64) and shapes["blocks.2.0.mlp.fc1.weight"] == (1152, 192)
    assert len(shapes) == 4 + 5 * 12 + 4 * 19 + 3 * 23 + 4  # stem; five G = 3, four G = 0, three G = 1; norm, head
    ours = hwnas.build_model(tiny.arch(**GLIT_TINY)).state_dict()
    assert {k: tuple(v.shape) for k, v in to_release(ours).items()} == shapes
    assert list(from_release(to_release(ours))) == list(ours)
    for arch in edge_archs(digits):  # G = 2 blocks too
        genes = {"base_arch": list(arch.global_heads), "arch": list(arch.low_level)}
        state = hwnas.build_model(arch).state_dict()
        assert {k: tuple(v.shape) for k, v in to_release(state).items()} == release_shapes(digits, **genes), arch


def test_a_release_checkpoint_loads_and_computes_what_the_release_computes(tmp_path):
    tiny = get_space("glit-tiny").arch(**GLIT_TINY)
    state = release_state(release_shapes(tiny.space, **GLIT_TINY))
    path = tmp_path / "glit_tiny.pth.tar"
    # as the release's main.py saves it (lines 387-394), options included
    options = argparse.Namespace(model="glit_tiny_patch16_224", lr=5e-4)
    torch.save({"model": state, "optimizer": {"state": {}}, "epoch": 299, "args": options}, path)
    model = hwnas.load_model(path, arch=tiny)
    local = model.blocks[2].attn.local
    assert torch.equal(local.pw1.weight, state["blocks.2.0.attn.net.1.weight"])
    assert torch.equal(local.dw.weight, state["blocks.2.0.attn.net.3.conv.weight"])
    assert torch.equal(local.bn.running_var, state["blocks.2.0.attn.net.4.running_var"])
    assert local.bn.num_batches_tracked.dtype == torch.int64 and int(local.bn.num_batches_tracked) == 7
    assert torch.equal(local.pw2.weight, state["blocks.2.0.attn.net.6.weight"])
    assert torch.equal(model.blocks[0].attn.qkv.weight, state["blocks.0.0.attn.qkv.weight"])
    x = torch.randn(2, 197, 192)
    with torch.no_grad():  # block 2 is G = 1: one global head on 64 channels, the locality module on 128
        assert (model.blocks[2].attn(x) - release_mixer(state, "blocks.2.0.attn.", x, v_heads=1)).abs().max() < 1e-5
        shuffled = model.blocks[2].attn(x[..., torch.randperm(192)])
        assert (shuffled - release_mixer(state, "blocks.2.0.attn.", x, v_heads=1)).abs().max() > 1e-3


def test_round_trip_through_the_release_names_keeps_the_outputs(digits):
    x = torch.randn(2, 3, 32, 32)
    for arch in (digits.uniform(2, 4), digits.sample(3)):
        ours = perturbed(hwnas.build_model(arch))
        release = to_release(ours.state_dict())
        assert not any(".local." in k for k in release) and "blocks.0.0.norm1.weight" in release
        back = hwnas.load_model(release, arch=arch)
        with torch.no_grad():
            assert torch.equal(back(x), ours(x)), arch
        assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), ours.state_dict().values()))


def test_a_release_checkpoint_of_another_arch_names_the_first_key_that_differs(tmp_path):
    tiny = get_space("glit-tiny")
    state = release_state(release_shapes(tiny, **GLIT_TINY))
    path = tmp_path / "glit_tiny.pth"
    torch.save({"model": state}, path)
    other = {"base_arch": GLIT_TINY["base_arch"], "arch": [1, 4, 7, *GLIT_TINY["arch"][3:]]}  # block 2: MLP ratio 4
    with pytest.raises(WeightsError) as error:
        hwnas.load_model(path, arch=tiny.arch(**other))
    message = str(error.value)
    assert isinstance(error.value, hwnas.HwnasError) and "\n" not in message
    assert "'blocks.2.0.mlp.fc1.weight' has shape (1152, 192) where the arch's model has (768, 192)" in message
    assert str(path) in message
    with pytest.raises(WeightsError, match=r"'blocks\.0\.0\.attn\.qkv\.weight' \(shape \(288, 192\)\) is not in"):
        hwnas.load_model(state, arch=tiny.arch(base_arch=[0, *GLIT_TINY["base_arch"][1:]], arch=GLIT_TINY["arch"]))
    ours = hwnas.build_model(tiny.arch(**GLIT_TINY)).state_dict()
    with pytest.raises(WeightsError, match=r"'blocks\.2\.mlp\.fc1\.weight' has shape \(1152, 192\) where"):
        hwnas.load_model(ours, arch=tiny.arch(**other))  # hwnas's names: the same one-line refusal
    torch.save({"model": state, "hook": LocalBranch}, path)  # a pickled class is not unpickled
    with pytest.raises(WeightsError, match="pickles hwnas.families.glit.model.LocalBranch"):
        hwnas.load_model(path, arch=tiny.arch(**GLIT_TINY))


# ---- the supernet -----------------------------------------------------------------------------------------
def test_extraction_matches_the_supernet(digits, supernet):
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        for arch in edge_archs(digits):
            model = supernet.extract(arch).eval()
            assert (model(x) - supernet(x, arch)).abs().max() <= 1e-5, arch
    kinds = {type(b.attn).__name__ for b in supernet.extract(digits.uniform(0, 0)).blocks}
    assert kinds == {"GlobalLocalMixer"}
    assert all(
        isinstance(b.attn.local, LocalBranch) and b.attn.global_dim == 0
        for b in supernet.extract(digits.uniform(0, 0)).blocks
    )
    assert not any(isinstance(b.attn, GlobalLocalMixer) for b in supernet.extract(digits.uniform(3, 0)).blocks)


def test_weights_are_shared_across_g_expansions_and_kernels(digits, supernet):
    local = supernet.extract(digits.uniform(0, 8)).blocks[0].attn.local  # kernel 45, e_c 4, all 48 channels
    small = supernet.extract(digits.uniform(0, 0)).blocks[0].attn.local  # kernel 17, e_c 1
    assert torch.equal(small.dw.weight, local.dw.weight[:48, :, 14:31])  # the centre 17 taps of 45
    assert torch.equal(small.pw1.weight[:48], local.pw1.weight[:48]) and torch.equal(
        small.pw1.weight[48:], local.pw1.weight[192:240]
    )
    mixed = supernet.extract(digits.uniform(2, 0)).blocks[0].attn  # G = 2: local branch on the last 16 channels
    assert torch.equal(mixed.local.pw1.weight[:16], local.pw1.weight[:16, 32:])
    assert torch.equal(mixed.local.pw2.weight, local.pw2.weight[32:, :16])
    full = supernet.extract(digits.uniform(3, 8)).blocks[0].attn  # G = 3, e_v = 2
    assert torch.equal(mixed.qkv.weight[:32], full.qkv.weight[:32, :32])


def test_batchnorm_is_recalibrated_per_subnet(digits):
    net = perturbed(build_supernet(digits))
    images = [torch.randn(32, 3, 32, 32) * 2 + 1 for _ in range(2)]
    calibration = BatchNormCalibration(images)
    arch, x = digits.uniform(1, 8), torch.randn(8, 3, 32, 32) * 2 + 1
    before = batchnorm_state(net)
    with torch.no_grad():
        stale = net(x, arch)
        with calibration.applied(net, arch):
            calibrated = net(x, arch)
            model = net.extract(arch).eval()
            again = BatchNormCalibration(images)
        assert all(torch.equal(before[k], v) for k, v in batchnorm_state(net).items())  # left as it was found
        assert (stale - calibrated).abs().max() > 1e-2  # the trained-across-subnets statistics fit no subnet
        assert (model(x) - calibrated).abs().max() <= 1e-5  # the extracted model carries the subnet's statistics
        with again.applied(net, arch):  # the statistics depend on the arch and images only
            assert torch.equal(net(x, arch), calibrated)
    # the sliced in-place statistics are those of the static model recalibrated on the same images
    static = net.extract(arch)
    layers = [m for m in static.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        for batch in images:
            static(batch)
    for got, want in zip(layers, (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))):
        assert torch.allclose(got.running_mean, want.running_mean, atol=1e-5)
        assert torch.allclose(got.running_var, want.running_var, rtol=1e-4)


# ---- the two-level search ----------------------------------------------------------------------------------
def test_hierarchical_search_fixes_the_low_level_then_the_distribution(tmp_path):
    space = get_space(small_yaml(tmp_path))
    evo = engine(
        space,
        Budget(params_m=0.05),
        strategy="hierarchical",
        population=6,
        generations=4,
        parents=2,
        high_level_share=0.25,
    )
    state = evo.run()
    first = [r.arch for r in state.records if r.generation < state.stage_began]
    later = [r.arch for r in state.records if r.generation >= state.stage_began]
    assert state.stage == 1 and state.stage_began == 1 and first and later  # 1 of 4 generations: the share
    assert all(set(a.low_level) == {space.middle().low_level[0]} for a in first)
    best_high = min((r for r in state.records if r.generation < state.stage_began), key=evo.rank_key).arch
    assert all(a.global_heads == best_high.global_heads for a in later)
    assert len({a.low_level for a in later}) > 1
    with pytest.raises(hwnas.HwnasError, match="`high_level_share`"):
        engine(space, Budget(params_m=0.05), strategy="hierarchical", high_level_share=1.0)


def test_a_share_of_training_draws_is_alike_across_blocks(digits):
    draws = [step_archs(digits, "uniform", 0, step, alike_share=0.25)[0] for step in range(2000)]
    alike = [a for a in draws if len(set(a.global_heads)) == 1]
    # a uniform draw is alike once in 4^4 / 4 = 64; the alike quarter on top
    assert len(alike) / len(draws) == pytest.approx(0.25 + 0.75 / 64, abs=0.03)
    assert {a.global_heads[0] for a in alike} == {0, 1, 2, 3}
    assert len({a.low_level for a in alike}) > 100  # the low-level choices still vary per block
    # without alike draws the sequence is the one runs trained before the option (their "uniform" was distinct)
    plain = [step_archs(digits, "distinct", 0, step, alike_share=0.0)[0] for step in range(50)]
    assert plain == [digits.sample_distinct(random.Random(f"0/{step}")) for step in range(50)]
    cfg = TrainConfig(space="glit-digits").with_defaults(digits)
    assert cfg.alike_share == 0.75  # GLiT's default; a run saved before the option drew none
    # GLiT's small-data budget is its own (4x the epochs, 3x the learning rate); large data gets AutoFormer's
    assert (cfg.epochs, cfg.lr) == (160, 3e-3)
    given = TrainConfig(space="glit-digits", epochs=40, lr=1e-3).with_defaults(digits)
    assert (given.epochs, given.lr, given.batch_size) == (40, 1e-3, 32)  # what is given wins
    large = TrainConfig(space="glit-digits").with_defaults(digits, train_images=1_000_000)
    assert (large.epochs, large.lr) == (500, 1e-3)
    assert TrainConfig.from_dict({"space": "glit-digits"}).alike_share == 0.0
    auto = get_space("autoformer-digits")
    plain = TrainConfig(space="autoformer-digits").with_defaults(auto)
    assert plain.alike_share == 0.0 and (plain.epochs, plain.lr) == (40, 1e-3)
    with pytest.raises(hwnas.HwnasError, match="`alike_share` needs .* autoformer-digits has none"):
        TrainConfig(space="autoformer-digits", alike_share=0.5).with_defaults(auto)
    with pytest.raises(hwnas.HwnasError, match="`alike_share` 1.5 is not a share"):
        TrainConfig(space="glit-digits", alike_share=1.5).with_defaults(digits)


# ---- the pipeline (on the two-block test space: 18 blocks profile in seconds) -----------------------------
def test_trains_profiles_searches_and_exports(tmp_path):
    path = small_yaml(tmp_path)
    space = get_space(path)
    table = tmp_path / "cpu.csv"
    profile_space(space, ProfileSettings(device="cpu", calibration_archs=2, protocol=QUICK), table, progress=False)
    loaded = LatencyTable.load(table)
    assert sorted(loaded.rows.index) == sorted(b.key for b in space.block_configs())
    assert {"glit", "encoder", "patch_embed", "head"} == set(loaded.rows["kind"])
    predictor = LatencyPredictor(loaded, space)
    archs = [space.sample(i) for i in range(20)]
    assert np.allclose(predictor.predict_many(archs), [predictor.predict(a).latency_ms for a in archs])

    run = tmp_path / "run"
    train(
        TrainConfig(space=str(path), data="synthetic", epochs=2, batch_size=16, lr=2e-3, warmup_epochs=1),
        run,
        progress=False,
    )
    trained = TrainedRun(run)
    assert trained.calibration is not None and trained.top1(space.uniform(1, 3)) > 100 / 10 * 1.5
    budget = float(np.median(predictor.predict_many(archs)))
    result = hwnas.search(
        run,
        latency_ms=budget,
        device="cpu",
        table=table,
        strategy="hierarchical",
        population=6,
        generations=2,
        parents=3,
        out=tmp_path / "search",
        progress=False,
    )
    assert result.report["predicted_latency"]["latency_ms"] <= budget
    assert result.report["top1_search_val"] == pytest.approx(trained.top1(result.best))
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
    net = trained.supernet()
    x = torch.randn(1, 3, 16, 16)  # the ONNX file has the table's batch size
    session = ort.InferenceSession(str(tmp_path / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        assert np.abs(session.run(None, {"x": x.numpy()})[0] - model(x).numpy()).max() <= 1e-4
        assert (model(x) - trained.extract(result.best, net)(x)).abs().max() <= 1e-5
    other = tmp_path / "autoformer.json"
    get_space("autoformer-digits").sample(0).to_json(other)
    assert_one_line_error(
        run_cli("eval", "--run", str(run), "--arch", str(other)),
        "arch is from space 'autoformer-digits', not 'glit-small-test'",
    )
