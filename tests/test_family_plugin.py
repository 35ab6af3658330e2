"""A family is a plug-in: one defined entirely in this module (its YAML, block kinds, static model,
elastic block and supernet) goes through profile, predict, train, search and export with no line
of hwnas changed, and its extraction matches its supernet.

The toy family is a tiny token-MLP network: a conv stem, `depth` residual MLP blocks each with its
own hidden width, and a mean-pool head. Its latency table is doctored to be non-monotone in the
hidden width, which the search operators must not assume away.
"""

from __future__ import annotations

import itertools
import json
import random
from math import isqrt
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import Tensor, nn

import hwnas
from hwnas.deploy import export
from hwnas.families.registry import Family, register_family
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.profile import ProfileSettings, profile_space
from hwnas.latency.resolve import resolve_table
from hwnas.latency.table import LatencyTable
from hwnas.layers.elastic import ElasticLayer, ElasticLayerNorm, ElasticLinear, leading, prefixed
from hwnas.profilers.protocol import Protocol
from hwnas.spaces import Arch, BlockConfig, BlockKind, Gene, SearchSpace, SpaceSpec, get_space, register_kind
from hwnas.subnet_search import Budget, Constraints, Costs
from hwnas.subnet_search.operators import Operators
from hwnas.supernet import LayerChoice, Supernet, build_supernet
from hwnas.training import TrainConfig, TrainedRun, train

FAMILY = "toy-mlp"
YAML = {
    "family": FAMILY,
    "img_size": 8,
    "patch_size": 4,
    "in_chans": 3,
    "num_classes": 10,
    "dim": 16,
    "choices": {"depth": [1, 2], "hidden": [8, 16, 24]},
}


# ---- the space --------------------------------------------------------------------------------------
class ToyMlpSpace(SearchSpace):
    """Genes: `depth`, and per block its MLP `hidden` width; the token width `dim` is fixed (an option)."""

    family = FAMILY

    @classmethod
    def declare_genes(cls, spec: SpaceSpec) -> tuple[Gene, ...]:
        return Gene("depth", spec.choices["depth"]), Gene("hidden", spec.choices["hidden"], length="depth")

    @property
    def dim(self) -> int:
        return int(self.spec.options["dim"])

    @property
    def tokens(self) -> int:
        return (self.spec.img_size // self.spec.patch_size) ** 2

    def stem(self) -> BlockConfig:
        s = self.spec
        return BlockConfig.of(
            "toy_stem", tokens=self.tokens, dim=self.dim, patch_size=s.patch_size, in_chans=s.in_chans
        )

    def mlp(self, hidden: int) -> BlockConfig:
        return BlockConfig.of("toy_mlp", tokens=self.tokens, dim=self.dim, hidden=hidden)

    def head(self) -> BlockConfig:
        return BlockConfig.of("toy_head", tokens=self.tokens, dim=self.dim, num_classes=self.spec.num_classes)

    def arch_blocks(self, arch: Arch) -> list[BlockConfig]:
        return [self.stem(), *(self.mlp(h) for h in arch.hidden), self.head()]

    def block_configs(self) -> list[BlockConfig]:
        return sorted({self.stem(), self.head(), *(self.mlp(h) for h in self.spec.choices["hidden"])})


# ---- static layers and model (what tables time and exports hold) ---------------------------------------
class ToyStem(nn.Module):
    def __init__(self, in_chans: int, dim: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class ToyMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(x))))


class ToyHead(nn.Module):
    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.mean(1))


class ToyNet(nn.Module):
    def __init__(self, stem: ToyStem, blocks: list[ToyMlp], head: ToyHead):
        super().__init__()
        self.stem, self.blocks, self.head = stem, nn.ModuleList(blocks), head

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def build_toy(arch: Arch) -> ToyNet:
    space: ToyMlpSpace = arch.space  # type: ignore[assignment]
    s = space.spec
    return ToyNet(
        ToyStem(s.in_chans, space.dim, s.patch_size),
        [ToyMlp(space.dim, h) for h in arch.hidden],
        ToyHead(space.dim, s.num_classes),
    )


# ---- block kinds -------------------------------------------------------------------------------------
class ToyStemKind(BlockKind):
    name, fields = "toy_stem", ("tokens", "dim", "patch_size", "in_chans")

    def params(self, cfg: BlockConfig) -> int:
        return cfg.dim * cfg.in_chans * cfg.patch_size**2 + cfg.dim

    def macs(self, cfg: BlockConfig) -> int:
        return cfg.tokens * cfg.dim * cfg.in_chans * cfg.patch_size**2

    def input_shape(self, cfg: BlockConfig, batch_size: int) -> tuple[int, ...]:
        side = cfg.patch_size * isqrt(cfg.tokens)  # no class token in this family
        return (batch_size, cfg.in_chans, side, side)

    def module(self, cfg: BlockConfig) -> nn.Module:
        return ToyStem(cfg.in_chans, cfg.dim, cfg.patch_size)


class ToyMlpKind(BlockKind):
    name, fields = "toy_mlp", ("tokens", "dim", "hidden")

    def params(self, cfg: BlockConfig) -> int:
        return 2 * cfg.dim + 2 * cfg.dim * cfg.hidden + cfg.hidden + cfg.dim

    def macs(self, cfg: BlockConfig) -> int:
        return 2 * cfg.tokens * cfg.dim * cfg.hidden

    def input_shape(self, cfg: BlockConfig, batch_size: int) -> tuple[int, ...]:
        return (batch_size, cfg.tokens, cfg.dim)

    def module(self, cfg: BlockConfig) -> nn.Module:
        return ToyMlp(cfg.dim, cfg.hidden)


class ToyHeadKind(BlockKind):
    name, fields = "toy_head", ("tokens", "dim", "num_classes")

    def params(self, cfg: BlockConfig) -> int:
        return cfg.dim * cfg.num_classes + cfg.num_classes

    def macs(self, cfg: BlockConfig) -> int:
        return cfg.dim * cfg.num_classes

    def input_shape(self, cfg: BlockConfig, batch_size: int) -> tuple[int, ...]:
        return (batch_size, cfg.tokens, cfg.dim)

    def module(self, cfg: BlockConfig) -> nn.Module:
        return ToyHead(cfg.dim, cfg.num_classes)


# ---- the supernet ------------------------------------------------------------------------------------
class ElasticToyMlp(ElasticLayer):
    """The residual MLP at its widest; hidden width h uses the leading h units."""

    def __init__(self, dim: int, max_hidden: int):
        super().__init__()
        self.norm, self.fc1, self.fc2 = (
            ElasticLayerNorm(dim),
            ElasticLinear(dim, max_hidden),
            ElasticLinear(max_hidden, dim),
        )

    def forward(self, x: Tensor, hidden: int) -> Tensor:
        d = leading(x.shape[-1])
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(x, d), d, leading(hidden))), leading(hidden), d)

    def active_state(self, hidden: int) -> dict[str, Tensor]:
        d = leading(self.fc1.in_features)
        return {
            **prefixed("norm", self.norm.active_state(d)),
            **prefixed("fc1", self.fc1.active_state(d, leading(hidden))),
            **prefixed("fc2", self.fc2.active_state(leading(hidden), d)),
        }

    def static_layer(self, hidden: int) -> ToyMlp:
        return ToyMlp(self.fc1.in_features, hidden)


class ToySupernet(Supernet):
    def __init__(self, space: ToyMlpSpace, drop_path_rate: float = 0.0, weight_sharing: str = "prefix"):
        super().__init__(space)
        s, c = space.spec, space.spec.choices
        self.stem = ToyStem(s.in_chans, space.dim, s.patch_size)
        self.blocks = nn.ModuleList(ElasticToyMlp(space.dim, max(c["hidden"])) for _ in range(max(c["depth"])))
        self.head = ToyHead(space.dim, s.num_classes)

    def layer_choices(self, arch: Arch) -> dict[str, LayerChoice]:
        self.check_arch(arch)
        blocks = {f"blocks.{i}": LayerChoice((hidden,)) for i, hidden in enumerate(arch.hidden)}
        return {"stem": LayerChoice(), **blocks, "head": LayerChoice()}

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        for path, layer in self.layer_choices(arch).items():
            x = self.get_submodule(path)(x, *layer.choice)
        return x


for kind in (ToyStemKind(), ToyMlpKind(), ToyHeadKind()):
    register_kind(kind)
register_family(Family(name=FAMILY, space=ToyMlpSpace, supernet=ToySupernet, model=build_toy))


# ---- the pipeline -------------------------------------------------------------------------------------
QUICK = Protocol(warmup_runs=3, warmup_s=0.01, rounds=2, round_s=0.01, group_size=3)


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> ToyMlpSpace:
    path = tmp_path_factory.mktemp("plugin") / "toy-mlp.yaml"
    path.write_text(json.dumps(YAML))
    return get_space(path)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def table(space, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plugin-table") / "cpu.csv"
    profile_space(space, ProfileSettings(device="cpu", calibration_archs=3, protocol=QUICK), path, progress=False)
    return path


def test_extraction_and_the_static_model_match_the_supernet(space):
    torch.manual_seed(0)
    net = build_supernet(space).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p), alpha=0.1)
    x = torch.randn(3, 3, 8, 8)
    archs = list(itertools.islice({space.sample(i) for i in range(40)}, 8))
    for arch in archs:
        model = net.extract(arch).eval()
        assert isinstance(model, ToyNet) and sum(p.numel() for p in model.parameters()) == arch.params()
        with torch.no_grad():
            assert (model(x) - net(x, arch)).abs().max() <= 1e-5, arch
    fresh = hwnas.build_model(space.largest())  # no supernet in memory
    assert type(fresh) is ToyNet and fresh.state_dict().keys() == net.extract(space.largest()).state_dict().keys()


def test_profile_and_predict(space, table):
    loaded = LatencyTable.load(table)
    assert sorted(loaded.rows.index) == sorted(b.key for b in space.block_configs()) and loaded.covers(space)
    assert set(loaded.rows["kind"]) == {"toy_stem", "toy_mlp", "toy_head"}
    found = resolve_table(space, device="cpu", table=table, progress=False)
    prediction = LatencyPredictor(found, space).predict(space.largest())
    assert prediction.latency_ms > 0 and [k for k, _ in prediction.blocks] == [b.key for b in space.largest().blocks()]


def test_train_search_and_export(space, table, tmp_path):
    yaml_path = tmp_path / "toy-mlp.yaml"
    yaml_path.write_text(json.dumps(YAML))
    run = tmp_path / "run"
    report = train(TrainConfig(space=str(yaml_path), data="synthetic", epochs=2, batch_size=16), run, progress=False)
    assert report["final"]["epoch"] == 2
    trained = TrainedRun(run)
    assert trained.space == space and isinstance(trained.supernet(), ToySupernet)
    predictor = LatencyPredictor(LatencyTable.load(table), space)
    budget = float(np.median(predictor.predict_many([space.sample(i) for i in range(20)])))
    result = hwnas.search(
        run,
        latency_ms=budget,
        device="cpu",
        table=table,
        population=4,
        generations=2,
        parents=2,
        out=tmp_path / "search",
        progress=False,
    )
    assert (
        result.report["predicted_latency"]["latency_ms"] <= budget and result.report["evaluations"] >= 2
    )  # of 12 archs
    manifest = export(
        run,
        tmp_path / "search" / "best.json",
        tmp_path / "export",
        formats="onnx,safetensors",
        table=table,
        progress=False,
    )
    assert manifest["latency"]["measured"]["latency_ms"] > 0 and manifest["params"] == result.best.params()
    # no table covers this family's space: the written model.onnx is still timed here, with nothing to compare
    untabled = export(run, result.best, tmp_path / "untabled", formats="onnx", progress=False)
    timed = untabled["latency"]["measured"]
    assert untabled["latency"]["predicted"] is None and untabled["latency"]["not_measured"] is None
    assert timed["latency_ms"] > 0 and timed["file"] == "model.onnx" and not timed["comparable"]
    assert timed["setup"]["backend"] == "onnxruntime" and "no latency table" in timed["note"]
    with pytest.raises(hwnas.HwnasError, match="no latency table covers this space"):  # a gate needs a prediction
        export(run, result.best, tmp_path / "gated", formats="onnx", max_latency_error=10, progress=False)
    model = hwnas.load_model(tmp_path / "export")
    x = torch.randn(1, 3, 8, 8)
    session = ort.InferenceSession(str(tmp_path / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        assert np.abs(session.run(None, {"x": x.numpy()})[0] - model(x).numpy()).max() <= 1e-4
        assert (model(x) - trained.supernet()(x, result.best)).abs().max() <= 1e-5


# ---- search operators on a cost that is not monotone in the choices -----------------------------------
def non_monotone(block: BlockConfig) -> float:
    """Hidden 16 is the cheapest MLP, 8 the costliest: smaller is not cheaper."""
    return {8: 3.0, 16: 1.0, 24: 2.0}[block.hidden] if block.kind == "toy_mlp" else 0.5


def test_extreme_arch_is_exact_when_costs_are_not_monotone(space):
    every = [space.arch(depth=d, hidden=list(h)) for d in (1, 2) for h in itertools.product((8, 16, 24), repeat=d)]
    assert len(every) == space.num_archs()
    cost = {a: sum(non_monotone(b) for b in a.blocks()) for a in every}
    assert cost[space.extreme_arch(non_monotone)] == min(cost.values())
    assert cost[space.extreme_arch(non_monotone, costliest=True)] == max(cost.values())
    assert space.extreme_arch(non_monotone).hidden == (16,)
    assert space.extreme_arch(non_monotone, costliest=True).hidden == (8, 8)  # the smallest width, not the largest


def test_repair_takes_the_moves_that_save_cost(space, table):
    predictor = LatencyPredictor(LatencyTable.load(table), space)
    # doctor the rows: the narrowest MLP is by far the slowest
    predictor.row_ms = np.array(
        [{8: 3.0, 16: 1.0, 24: 2.0}[b.hidden] if b.kind == "toy_mlp" else 0.5 for b in predictor.blocks]
    )
    predictor.calibration = type(predictor.calibration)(1.0, 0.0, 1)
    constraints = Constraints(Budget.on([3.5]), Costs(space, predictor))
    ops = Operators(space, random.Random(0), ["depth", "hidden"])
    start = space.arch(depth=2, hidden=[8, 8])  # 7 ms: smaller choices (none below 8) cannot help
    for seed in range(5):
        ops.rng.seed(seed)
        fixed = ops.repair(start, constraints)
        assert fixed is not None and constraints.fits(fixed)
        assert predictor.predict(fixed).latency_ms >= 2.5  # ends at the budget's edge, not at the cheapest (2.0)
