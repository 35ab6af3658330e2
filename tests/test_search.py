"""Search: exact feasibility before any evaluation, bounded constraint handling, evolution, random and
hierarchical strategies, resumable and reproducible, on a really trained toy supernet and a really
profiled toy latency table (the engine-only tests use an arch-computed objective to stay fast)."""

from __future__ import annotations

import itertools
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hwnas
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.profile import ProfileSettings, profile_space
from hwnas.latency.table import SHIPPED_DIR, Calibration, LatencyTable, TableError, find_table
from hwnas.profilers.protocol import Protocol
from hwnas.spaces import get_space
from hwnas.subnet_search import (
    Budget,
    BudgetError,
    Constraints,
    Costs,
    EvolutionSettings,
    LatencyBudget,
    SearchState,
    check_feasible,
)
from hwnas.subnet_search.evolution import Evolution
from hwnas.subnet_search.nsga2 import NSGA2Search
from hwnas.subnet_search.operators import Operators
from hwnas.subnet_search.runner import default_out
from hwnas.training import TrainConfig, TrainedRun, train
from hwnas.training.evaluate import Score
from tests.helpers import assert_one_line_error, hwnas_in_process, toy_space_yaml
from tests.helpers import hwnas as run_cli

QUICK = Protocol(warmup_runs=3, warmup_s=0.01, rounds=2, round_s=0.01, group_size=3)
SMALL = dict(population=6, generations=4, parents=3)


@pytest.fixture(scope="module")
def toy_yaml(tmp_path_factory) -> Path:
    # 2 widths x (4 + 16 + 64) layer choices = 168 archs, 12 blocks
    return toy_space_yaml(tmp_path_factory.mktemp("spaces"), "search-toy", depth=[1, 2, 3], mlp_ratio=[2.0, 3.0])


@pytest.fixture(scope="module")
def toy(toy_yaml):
    return get_space(toy_yaml)


@pytest.fixture(scope="module")
def run_dir(toy_yaml, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    train(
        TrainConfig(space=str(toy_yaml), data="synthetic", epochs=3, batch_size=16, lr=2e-3, warmup_epochs=1),
        out,
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def table(toy, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tables") / "cpu.csv"
    profile_space(toy, ProfileSettings(device="cpu", calibration_archs=3, protocol=QUICK), path, progress=False)
    return path


def latency_range(toy, table) -> tuple[float, float]:
    ms = predicted_ms(toy, table)
    return float(ms.min()), float(ms.max())


def predicted_ms(toy, table):
    return LatencyPredictor(LatencyTable.load(table), toy).predict_many(all_archs(toy))


def all_archs(space):
    c = space.spec.choices
    layers = list(itertools.product(c["num_heads"], c["mlp_ratio"]))
    return [
        space.with_layers(d, combo)
        for d in c["embed_dim"]
        for k in c["depth"]
        for combo in itertools.product(layers, repeat=k)
    ]


def engine(space, budget: Budget, fitness=lambda a: float(a.params()), **settings) -> Evolution:
    """An evolution over `space` scored by an arch-computed objective (no supernet)."""
    costs = Costs(space)
    constraints = Constraints(budget, costs)
    return Evolution(
        space,
        EvolutionSettings(**settings),
        constraints,
        costs,
        check_feasible(constraints).anchor,
        lambda archs: [Score(fitness(a), 0.0) for a in archs],
        SearchState(),
    )


# ---- feasibility and constraints ----------------------------------------------------------------------
def test_cheapest_and_costliest_arch_are_exact(toy, table):
    archs = all_archs(toy)
    assert len(archs) == toy.num_archs() == 168
    costs = Costs(toy, LatencyPredictor(LatencyTable.load(table), toy))
    every = costs.many(archs)
    for metric in costs.metrics:
        low, high = (costs.of(toy.extreme_arch(costs.block_cost(metric), costliest=c))[metric] for c in (False, True))
        assert low == pytest.approx(every[metric].min()) and high == pytest.approx(every[metric].max())


def test_vitas_cheapest_arch_is_exact(tmp_path):
    spec = {
        "family": "vitas",
        "img_size": 16,
        "patch_size": 4,
        "in_chans": 3,
        "num_classes": 10,
        "head_dim": 8,
        "layers": 3,
        "min_layers": 1,
        "choices": {"embed_dim": [8, 16], "num_heads": [1, 2], "mlp_ratio": [1.0, 2.0]},
    }
    (tmp_path / "v.yaml").write_text(json.dumps(spec))
    space = get_space(tmp_path / "v.yaml")
    rng = random.Random(0)
    archs = {space.sample_distinct(rng) for _ in range(3000)}
    assert len(archs) == space.num_archs()
    for cost in (lambda b: b.params(), lambda b: b.macs(), lambda b: -b.params() if b.kind == "encoder" else 1):
        best = min(sum(cost(b) for b in a.blocks()) for a in archs)
        assert sum(cost(b) for b in space.extreme_arch(cost).blocks()) == best


def frame_archs(space) -> set[str]:
    return {
        frame.build(picks).digest
        for frame in space.frames()
        for picks in itertools.product(*(range(len(slot)) for slot in frame.slots))
    }


def test_frames_hold_every_arch_once_with_its_blocks(toy, tmp_path):
    assert frame_archs(toy) == {a.digest for a in all_archs(toy)}
    spec = {
        "family": "vitas",
        "img_size": 16,
        "patch_size": 4,
        "in_chans": 3,
        "num_classes": 10,
        "head_dim": 8,
        "layers": 3,
        "min_layers": 1,
        "choices": {"embed_dim": [8, 16], "num_heads": [1, 2], "mlp_ratio": [1.0, 2.0]},
    }
    (tmp_path / "v.yaml").write_text(json.dumps(spec))
    vitas = get_space(tmp_path / "v.yaml")
    assert len(frame_archs(vitas)) == vitas.num_archs()
    rng = random.Random(0)
    for name in ("autoformer-tiny", "vitas-deit-tiny", "resnas-tiny", "glit-tiny"):
        space = get_space(name)
        frames = list(space.frames())
        for _ in range(30):  # what a frame says an arch runs is what the arch runs
            frame = rng.choice(frames)
            picks = [rng.randrange(len(slot)) for slot in frame.slots]
            blocks = [*frame.fixed, *(b for slot, p in zip(frame.slots, picks) for b in slot[p])]
            assert sorted(frame.build(picks).blocks()) == sorted(blocks), name


def test_repair_meets_the_budget_near_its_edge():
    space = get_space("autoformer-digits")
    budget = Budget(params_m=0.3)
    constraints = Constraints(budget, Costs(space))
    ops = Operators(space, random.Random(0), [g.name for g in space.genes])
    for seed in range(5):
        ops.rng.seed(seed)
        fixed = ops.repair(space.largest(), constraints)
        assert fixed is not None and fixed.params() <= 300_000
        # it stops once within the budget (no step of this space drops 40% of it), not at the smallest arch
        assert fixed.params() > 0.6 * 300_000 > 1.2 * space.smallest().params()
    middle = space.middle()
    assert middle.params() <= 300_000 and ops.repair(middle, constraints) == middle


def test_operators_respect_the_space_and_mixed_depths():
    space = get_space("autoformer-digits")
    rng = random.Random(0)
    ops = Operators(space, rng, [g.name for g in space.genes])
    a, b = space.largest(), space.smallest()  # depth 6 and 4
    for _ in range(50):
        child = ops.crossover(a, b)
        assert child is not None and child.depth in (4, 6) and child.embed_dim in (64, 96)
        for i, heads in enumerate(child.num_heads):
            assert heads in {p.num_heads[i] for p in (a, b) if i < p.depth}
    assert ops.mutate(a, mutation_prob=0.0, resample_prob=0.0) == a
    high = Operators(space, rng, ["embed_dim", "depth"], frozen={"num_heads": 3, "mlp_ratio": 3.0})
    for _ in range(20):
        child = high.sample(space.largest())
        assert set(child.num_heads) == {3} and set(child.mlp_ratio) == {3.0}


def test_budget_checks_before_any_evaluation():
    space = get_space("autoformer-digits")
    costs = Costs(space)
    smallest = space.smallest().params() / 1e6
    with pytest.raises(BudgetError, match=f"minimum achievable is {smallest:.4g} M params"):
        check_feasible(Constraints(Budget(params_m=smallest * 0.9), costs))
    assert check_feasible(Constraints(Budget(params_m=smallest), costs)).binds
    assert not check_feasible(Constraints(Budget(params_m=10.0), costs)).binds
    for bad, match in (
        ({}, "at least one constraint"),
        ({"params_m": 0}, "positive"),
        ({"flops_g": -1}, "positive"),
        ({"latency": (LatencyBudget(float("nan")),)}, "positive"),
        ({"latency": (LatencyBudget(1.0, "a"), LatencyBudget(1.0, "b", "p90"))}, "one statistic"),
    ):
        with pytest.raises(BudgetError, match=match):
            Budget(**bad)
    tail = Budget.on([1.0, 2.0], ["a", "b"], params_m=3.0, statistic="p90")
    assert tail.statistic == "p90" and tail.describe() == (
        "latency <= 1 ms (p90), latency <= 2 ms on b (p90), params <= 3 M params"
    )
    with pytest.raises(BudgetError, match="`latency_ms` needs `device`"):
        Constraints(Budget.on([1.0]), costs)


def test_contradicting_constraints_are_refused(toy, table, tmp_path):
    # A table where the wider embedding is the faster one: latency and params then pull apart.
    doctored = LatencyTable.load(table)
    narrow = doctored.expanded()["in_dim"] == 32
    doctored.rows.loc[narrow, "p50_ms"] *= 10
    path = doctored.save(tmp_path / "cpu.csv")
    costs = Costs(toy, LatencyPredictor(LatencyTable.load(path), toy))
    fast = costs.of(toy.extreme_arch(costs.block_cost("latency_ms")))
    light = costs.of(toy.smallest())
    budget = Budget.on([fast["latency_ms"] * 1.01], params_m=light["params_m"] * 1.01)
    with pytest.raises(
        BudgetError,
        match="no arch of search-toy meets these budgets together: `latency_ms` .* and `params_m` .*exact check",
    ):
        check_feasible(Constraints(budget, costs))


def other_device(table: Path, folder: Path, seed: int | None = None) -> Path:
    """A copy of `table` for device `cpu-b` whose encoder rows are shuffled (`seed`), or reversed in
    rank (None: the fastest encoder on cpu is the slowest on cpu-b): it ranks blocks unlike the first."""
    copy = LatencyTable.load(table)
    encoders = copy.rows["kind"] == "encoder"
    values = copy.rows.loc[encoders, "p50_ms"].to_numpy()
    if seed is None:
        order = np.argsort(values)
        values = values.copy()
        values[order] = np.sort(values)[::-1]
    else:
        values = np.random.default_rng(seed).permutation(values)
    copy.rows.loc[encoders, "p50_ms"] = values
    copy.fingerprint["device"] = "cpu-b"
    for space in list(copy.calibrations):  # the sum of rows as it is (a fit on other rows may turn it negative)
        copy.calibrations[space] = Calibration(1.0, 0.0, 1)
    return copy.save(folder / f"cpu-b-{seed}.csv")


def two_device_costs(toy, table: Path, folder: Path, seed: int | None = None) -> Costs:
    return Costs(
        toy,
        {
            "latency_ms": LatencyPredictor(LatencyTable.load(table), toy),
            "latency_ms@cpu-b": LatencyPredictor(LatencyTable.load(other_device(table, folder, seed)), toy),
        },
    )


def test_joint_feasibility_on_two_devices_agrees_with_brute_force(toy, table, tmp_path):
    archs = all_archs(toy)
    for seed in range(3):
        costs = two_device_costs(toy, table, tmp_path, seed)
        every = costs.many(archs)
        a, b, params = every["latency_ms"], every["latency_ms@cpu-b"], every["params_m"]
        for qa, qb, qp in itertools.product((0.02, 0.1, 0.3), (0.02, 0.1, 0.3), (0.05, 1.0)):
            limits = {
                "latency_ms": float(np.quantile(a, qa)),
                "latency_ms@cpu-b": float(np.quantile(b, qb)),
                "params_m": float(np.quantile(params, qp)),
            }
            exists = bool(
                ((a <= limits["latency_ms"]) & (b <= limits["latency_ms@cpu-b"]) & (params <= limits["params_m"])).any()
            )
            budget = Budget.on(
                [limits["latency_ms"], limits["latency_ms@cpu-b"]], ["cpu-a", "cpu-b"], params_m=limits["params_m"]
            )
            constraints = Constraints(budget, costs)
            if exists:
                anchor = check_feasible(constraints).anchor
                assert constraints.fits(anchor), (seed, qa, qb, qp)
            else:
                with pytest.raises(BudgetError, match="meets these budgets together.*exact check"):
                    check_feasible(constraints)


def test_cli_predict_on_two_devices(toy, toy_yaml, table, tmp_path):
    arch = toy.largest()
    arch.to_json(tmp_path / "arch.json")
    second = other_device(table, tmp_path)
    args = [
        "predict",
        "--arch",
        str(tmp_path / "arch.json"),
        "--device",
        "cpu",
        "--device",
        "cpu-b",
        "--table",
        str(table),
        "--table",
        str(second),
        "--space",
        str(toy_yaml),
    ]
    data = json.loads(hwnas_in_process(*args, "--json").stdout)
    assert [d["device"] for d in data["devices"]] == ["cpu", "cpu-b"]
    for d, path in zip(data["devices"], (table, second)):
        assert d["latency_ms"] == pytest.approx(LatencyPredictor(LatencyTable.load(path), toy).predict(arch).latency_ms)
    text = hwnas_in_process(*args).stdout
    assert "cpu ms" in text and "cpu-b ms" in text and "predicted latency" in text


def test_search_on_two_devices_meets_both_and_reports_both(run_dir, toy, table, tmp_path):
    costs = two_device_costs(toy, table, tmp_path)
    every = costs.many(all_archs(toy))
    limits = [float(np.quantile(every[m], 0.6)) for m in ("latency_ms", "latency_ms@cpu-b")]
    tables = [table, tmp_path / "cpu-b-None.csv"]
    result = hwnas.search(
        run_dir, latency_ms=limits, device=["cpu", "cpu-b"], table=tables, out=tmp_path / "s", progress=False, **SMALL
    )
    r, history = result.report, result.history
    assert set(r["predicted_latency_by_device"]) == {"cpu", "cpu-b"} and r["predicted_latency"]["device"] == "cpu"
    assert r["predicted_latency_by_device"]["cpu-b"]["latency_ms"] <= limits[1]
    assert r["predicted_latency"]["latency_ms"] <= limits[0] and set(r["tables_by_device"]) == {"cpu", "cpu-b"}
    assert (history["latency_ms"] <= limits[0]).all() and (history["latency_ms@cpu-b"] <= limits[1]).all()
    assert set(r["budget"]) == {"latency_ms", "latency_ms@cpu-b"} and (tmp_path / "s" / "pareto.png").is_file()
    pareto = pd.read_csv(tmp_path / "s" / "pareto.csv")
    for _, p in pareto.iterrows():  # nothing evaluated beats a front point in accuracy and on both devices
        assert not (
            (history["latency_ms"] <= p["latency_ms"])
            & (history["latency_ms@cpu-b"] <= p["latency_ms@cpu-b"])
            & (history["top1_search_val"] > p["top1_search_val"])
        ).any()
    # each device's cheapest arch alone: the reversed ranks make them two archs, so no arch meets both
    cheapest = [float(every[m].min()) * 1.0001 for m in ("latency_ms", "latency_ms@cpu-b")]
    assert not ((every["latency_ms"] <= cheapest[0]) & (every["latency_ms@cpu-b"] <= cheapest[1])).any()
    with pytest.raises(BudgetError, match="`latency_ms` .* and `latency_ms` \\(`device` cpu-b\\) .*exact check"):
        hwnas.search(
            run_dir,
            latency_ms=cheapest,
            device=["cpu", "cpu-b"],
            table=tables,
            out=tmp_path / "x",
            progress=False,
            **SMALL,
        )


# ---- the engine ---------------------------------------------------------------------------------------
def test_evolution_is_bounded_deduplicated_and_feasible():
    space = get_space("autoformer-digits")
    evo = engine(space, Budget(params_m=0.3), population=20, generations=6, parents=5)
    state = evo.run()
    digests = [r.arch.digest for r in state.records]
    assert len(digests) == len(set(digests)) == 120
    assert all(r.arch.params() <= 300_000 for r in state.records)
    assert {r.origin.split("+")[0] for r in state.records} == {"random", "mutation", "crossover"}
    assert evo.best().top1 == max(r.top1 for r in state.records)


def test_exhausted_space_stops_without_hanging(tmp_path):
    space = get_space(toy_space_yaml(tmp_path))  # 12 archs in all
    state = engine(space, Budget(params_m=1.0), population=5, generations=10, parents=2).run()
    assert len({r.arch.digest for r in state.records}) == len(state.records) == 12
    assert any("no new feasible arch" in n for n in state.notes) and any("not 50" in n for n in state.notes)


def test_evolution_beats_random_on_an_objective_it_can_learn():
    space = get_space("autoformer-digits")
    budget = Budget(params_m=0.35)  # objective: the most heads x MLP ratio summed over layers, within params

    def fitness(a):
        return float(sum(h * r for h, r in zip(a.num_heads, a.mlp_ratio)))

    for seed in range(3):
        evo = engine(space, budget, fitness, population=20, generations=8, parents=5, seed=seed)
        rnd = engine(space, budget, fitness, strategy="random", population=20, generations=8, parents=5, seed=seed)
        evo.run(), rnd.run()
        assert len(evo.state.records) == len(rnd.state.records)
        assert evo.best().top1 >= rnd.best().top1


def test_hierarchical_fixes_then_frees_the_per_layer_genes():
    space = get_space("autoformer-digits")
    evo = engine(space, Budget(params_m=0.5), strategy="hierarchical", population=10, generations=4, parents=3)
    state = evo.run()
    # 9 (embed, depth) pairs: the high-level stage runs out after 1 generation and hands on the rest
    assert state.stage == 1 and state.stage_began == 1 and "ran out of new archs" in state.notes[0]
    first = [r.arch for r in state.records if r.generation < state.stage_began]
    later = [r.arch for r in state.records if r.generation >= state.stage_began]
    assert len(first) == 9 and len(later) == 30
    assert all(set(a.num_heads) == {2} and set(a.mlp_ratio) == {2.0} for a in first)  # middle (lower) choices
    best_high = min((r for r in state.records if r.generation < state.stage_began), key=evo.rank_key).arch
    assert all((a.embed_dim, a.depth) == (best_high.embed_dim, best_high.depth) for a in later)
    assert any(len(set(a.num_heads)) > 1 for a in later)
    vitas = engine(
        get_space("vitas-digits"), Budget(params_m=0.4), strategy="hierarchical", population=4, generations=2, parents=2
    )
    assert "no high/low gene split" in vitas.run().notes[0]


# ---- on a trained supernet --------------------------------------------------------------------------
def test_search_writes_its_outputs_and_scores_on_search_val(run_dir, toy, table, tmp_path):
    # a budget that binds yet leaves 70% of the 168 archs: the midpoint of the range can leave too few for 24
    # distinct evaluations when the measured table is skewed (the deep archs dominate the count)
    budget = float(np.quantile(predicted_ms(toy, table), 0.7))
    result = hwnas.search(
        run_dir, latency_ms=budget, device="cpu", table=table, out=tmp_path / "s", progress=False, **SMALL
    )
    r = result.report
    assert {p.name for p in (tmp_path / "s").iterdir()} >= {
        "best.json",
        "history.csv",
        "pareto.csv",
        "pareto.png",
        "search_state.json",
    }
    assert json.loads((tmp_path / "s" / "best.json").read_text()) == json.loads(json.dumps(r))
    assert r["arch"] == result.best.to_dict() and r["evaluations"] == 24
    assert (
        r["predicted_latency"]["latency_ms"] <= budget
        and len(r["predicted_latency"]["blocks"]) == result.best.depth + 2
    )
    assert r["table"]["fingerprint"]["device"] == "cpu" and r["seed"] == 0
    history = pd.read_csv(tmp_path / "s" / "history.csv")
    assert len(history) == 24 and history["digest"].is_unique and (history["latency_ms"] <= budget).all()
    assert r["top1_search_val"] == history["top1_search_val"].max()
    run = TrainedRun(run_dir)
    net = run.supernet()
    assert r["top1_search_val"] == pytest.approx(run.top1(result.best, "search_val", net))
    assert r["top1_test"] == pytest.approx(run.top1(result.best, "test", net))
    pareto = pd.read_csv(tmp_path / "s" / "pareto.csv")
    assert pareto["latency_ms"].is_monotonic_increasing and pareto["top1_search_val"].is_monotonic_increasing
    for _, p in pareto.iterrows():  # nothing evaluated beats a front point in both
        assert not (
            (history["latency_ms"] <= p["latency_ms"]) & (history["top1_search_val"] > p["top1_search_val"])
        ).any()


def test_search_on_p90_budgets_the_tail(run_dir, toy, table, tmp_path):
    tail = LatencyPredictor(LatencyTable.load(table), toy, "p90_ms")
    budget = float(np.quantile(tail.predict_many(all_archs(toy)), 0.7))
    result = hwnas.search(
        run_dir,
        latency_ms=budget,
        device="cpu",
        table=table,
        latency_stat="p90",
        out=tmp_path / "s",
        progress=False,
        **SMALL,
    )
    r, history = result.report, result.history
    assert r["latency_stat"] == "p90" and r["predicted_latency"]["statistic"] == "p90_ms"
    assert r["predicted_latency"]["latency_ms"] == pytest.approx(tail.predict(result.best).latency_ms)
    assert r["predicted_latency"]["latency_ms"] <= budget
    archs = [hwnas.Arch.from_dict(json.loads(a), toy) for a in history["arch"]]
    assert history["latency_ms"].to_numpy() == pytest.approx(tail.predict_many(archs))
    assert (history["latency_ms"] <= budget).all()


def nsga2_engine(toy, table, calls: list, state: SearchState | None = None) -> NSGA2Search:
    """NSGA-II over the toy space against its CPU latency, scored by a quick arch-computed objective."""
    costs = Costs(toy, LatencyPredictor(LatencyTable.load(table), toy))
    constraints = Constraints(None, costs)

    def evaluate(archs):
        calls.append(len(archs))
        return [Score(float(a.params() % 997) / 10, 0.0) for a in archs]

    return NSGA2Search(
        toy,
        EvolutionSettings("nsga2", population=8, generations=5, parents=4, seed=3),
        constraints,
        costs,
        toy.smallest(),
        evaluate,
        state or SearchState(),
    )


def test_nsga2_is_pymoos_front_and_resumes_by_replay(toy, table):
    calls: list[int] = []
    straight = nsga2_engine(toy, table, calls).run()
    digests = [r.arch.digest for r in straight.records]
    assert len(digests) == len(set(digests)) == sum(calls) and 30 <= len(digests) <= 40
    assert {r.generation for r in straight.records} == set(range(5))

    saved = []

    def die_after_two(state):
        saved.append(SearchState.from_dict(json.loads(json.dumps(state.to_dict())), toy))
        if state.generation == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        nsga2_engine(toy, table, []).run(die_after_two)
    resumed_calls: list[int] = []
    kept = len(saved[-1].records)
    resumed = nsga2_engine(toy, table, resumed_calls, saved[-1]).run()
    assert [r.to_dict() for r in resumed.records] == [r.to_dict() for r in straight.records]
    assert kept == 16 and sum(resumed_calls) == len(straight.records) - kept  # the replay evaluated nothing twice


def test_nsga2_gives_one_winner_per_budget_from_one_run(run_dir, toy, table, tmp_path):
    ms = predicted_ms(toy, table)
    budgets = [float(np.quantile(ms, q)) for q in (0.3, 0.6, 0.9)]
    result = hwnas.search(
        run_dir,
        latency_ms=budgets,
        device="cpu",
        table=table,
        strategy="nsga2",
        out=tmp_path / "n",
        progress=False,
        **SMALL,
    )
    r, history = result.report, result.history
    assert (history["latency_ms"] <= max(budgets)).all() and len(r["per_budget"]) == 3
    for limit, entry in zip(budgets, r["per_budget"]):
        within = history[history["latency_ms"] <= limit]
        assert entry["predicted_latency"]["latency_ms"] <= limit
        assert entry["top1_search_val"] == within["top1_search_val"].max()
        assert json.loads((tmp_path / "n" / entry["file"]).read_text()) == json.loads(json.dumps(entry))
    assert r["digest"] == r["per_budget"][-1]["digest"]  # best.json: the loosest budget's winner
    front = hwnas.search(
        run_dir, device="cpu", table=table, strategy="nsga2", out=tmp_path / "f", progress=False, **SMALL
    )
    assert front.report["budget"] == {} and len(front.pareto) >= 2


def test_killed_search_resumes_to_the_same_result(run_dir, table, tmp_path):
    args = dict(latency_ms=1e3, device="cpu", table=table, flops_g=0.0006, progress=False, **SMALL)  # MACs bind
    straight = hwnas.search(run_dir, out=tmp_path / "a", **args)

    def die_after_two(state):
        if state.generation == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        hwnas.search(run_dir, out=tmp_path / "b", on_generation=die_after_two, **args)
    saved = json.loads((tmp_path / "b" / "search_state.json").read_text())
    assert saved["state"]["generation"] == 2 and len(saved["state"]["records"]) == 12
    resumed = hwnas.search(run_dir, out=tmp_path / "b", **args)
    pd.testing.assert_frame_equal(straight.history, resumed.history)
    assert resumed.best == straight.best
    again = hwnas.search(run_dir, out=tmp_path / "b", **args)  # finished: nothing evaluated again
    pd.testing.assert_frame_equal(again.history, straight.history)
    with pytest.raises(BudgetError, match="holds a search with another budget"):
        hwnas.search(run_dir, out=tmp_path / "b", **{**args, "flops_g": 0.0007})


def test_random_strategy_and_a_budget_every_arch_meets(run_dir, table, tmp_path):
    rnd = hwnas.search(run_dir, params_m=0.03, strategy="random", out=tmp_path / "r", progress=False, **SMALL)
    assert set(rnd.history["origin"].str.split("+").str[0]) == {"random"} and len(rnd.history) == 24
    assert rnd.report["predicted_latency"] is None and (rnd.history["params_m"] <= 0.03).all()
    loose = hwnas.search(run_dir, params_m=100.0, out=tmp_path / "l", progress=False, **SMALL)
    assert loose.best == loose.best.space.largest() and loose.report["budget_binds"] is False
    assert "returned the largest arch" in loose.notes[0] and loose.report["evaluations"] == 1


def test_cli_search_with_measure(run_dir, toy, table, tmp_path):
    low, high = latency_range(toy, table)
    result = run_cli(
        "search",
        "--run",
        str(run_dir),
        "--latency-ms",
        f"{high:.4f}",
        "--device",
        "cpu",
        "--table",
        str(table),
        "--population",
        "4",
        "--generations",
        "2",
        "--parents",
        "2",
        "--out",
        str(tmp_path / "s"),
        "--measure",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["measured_latency_ms"] > 0 and "measured_over_budget_pct" in report
    text = run_cli(
        "search",
        "--run",
        str(run_dir),
        "--latency-ms",
        f"{high:.4f}",
        "--device",
        "cpu",
        "--table",
        str(table),
        "--population",
        "4",
        "--generations",
        "2",
        "--parents",
        "2",
        "--out",
        str(tmp_path / "s"),
    )
    assert text.returncode == 0 and "top-1: search-val" in text.stdout and "pareto.png" in text.stdout


def elsewhere(table: Path, folder: Path) -> Path:
    """A copy of `table` measured on another machine's CPU (a named target this machine is not)."""
    copy = LatencyTable.load(table)
    copy.fingerprint.update(device="cpu-graviton3", cpu_model="Neoverse-V1")
    return copy.save(folder / "graviton.csv")


def without_tail(table: Path, folder: Path) -> Path:
    """A copy of `table` as tables were saved before tail statistics were calibrated."""
    copy = LatencyTable.load(table)
    copy.tail_calibrations = {}
    return copy.save(folder / "old.csv")


def test_cli_bad_input_is_one_line(run_dir, toy, table, tmp_path):
    low, _ = latency_range(toy, table)
    base = ["search", "--run", str(run_dir), "--table", str(table)]
    glit = tmp_path / "glit.json"
    get_space("glit-digits").sample(0).to_json(glit)
    cases = [
        (["eval", "--run", str(run_dir), "--arch", str(glit)], ["arch is from space 'glit-digits', not 'search-toy'"]),
        (base + ["--latency-ms", f"{low / 2:.6f}", "--device", "cpu"], ["minimum achievable is", "ms"]),
        (base + ["--latency-ms", "0", "--device", "cpu"], ["--latency-ms", "0"]),
        (base + ["--params-m", "-1"], ["--params-m"]),
        (base, ["at least one constraint"]),
        (base + ["--params-m", "1", "--strategy", "annealing"], ["--strategy", "annealing"]),
        (
            base + ["--latency-ms", "1", "--device", "a100"],
            ["measured on device 'cpu'", "which no --device names (a100)"],
        ),
        (
            base + ["--latency-ms", "1", "--device", "cpu", "--latency-ms", "2", "--device", "cpu"],
            ["device 'cpu' is given twice"],
        ),
        (
            base + ["--latency-ms", "1", "--latency-ms", "2", "--device", "cpu"],
            ["--latency-ms is given 2 times for 1 device(s) (cpu)", "pair each"],
        ),
        (
            base + ["--table", str(table), "--latency-ms", "1"],
            ["two tables for device 'cpu'", "one --table per device"],
        ),
        (
            [
                "search",
                "--run",
                str(run_dir),
                "--table",
                str(without_tail(table, tmp_path)),
                "--latency-ms",
                "1",
                "--latency-stat",
                "p90",
            ],
            ["has no p90_ms calibration for search-toy", "hwnas profile --device cpu"],
        ),
        (base + ["--latency-ms", "1", "--latency-stat", "p99"], ["--latency-stat", "p99"]),
        (
            ["search", "--run", str(run_dir), "--params-m", "1", "--strategy", "nsga2"],
            ["--strategy nsga2", "single objective", "--device"],
        ),
        (["search", "--run", str(tmp_path / "nowhere"), "--params-m", "1"], ["is not a training run", "hwnas train"]),
        (
            [
                "search",
                "--run",
                str(run_dir),
                "--latency-ms",
                "1",
                "--device",
                "cpu",
            ],  # the shipped table lacks the toy
            ["no row for block", "hwnas profile --device cpu --space"],
        ),
        (
            [
                "search",
                "--run",
                str(run_dir),
                "--table",
                str(elsewhere(table, tmp_path)),
                "--latency-ms",
                "1e3",
                "--measure",
            ],
            ["cannot time the winner", "cpu-graviton3", "run it on the cpu-graviton3 itself"],
        ),
    ]
    for args, fragments in cases:
        assert_one_line_error(hwnas_in_process(*args), *fragments)
    no_weights = tmp_path / "half"
    no_weights.mkdir()
    for name in ("config.json", "split.json"):
        (no_weights / name).write_text((run_dir / name).read_text())
    assert_one_line_error(hwnas_in_process("search", "--run", str(no_weights), "--params-m", "1"), "no trained weights")
    assert not (run_dir / "search").exists()  # refused before anything was written


def test_device_table_is_the_one_calibrated_for_the_run_space(toy, table, tmp_path, monkeypatch):
    folder = tmp_path / "tables"
    folder.mkdir()
    for src, name in ((table, "cpu_toy.csv"), (SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv", "cpu_shipped.csv")):
        shutil.copy(src, folder / name)
        shutil.copy(src.with_suffix(".json"), (folder / name).with_suffix(".json"))
    monkeypatch.setenv("HWNAS_TABLES", str(folder))
    assert find_table("cpu", toy).path == folder / "cpu_toy.csv"
    assert find_table("cpu", get_space("autoformer-digits")).path == folder / "cpu_shipped.csv"
    with pytest.raises(TableError, match="several latency tables"):
        find_table("cpu")


def test_top1_ties_go_to_the_lower_search_val_loss():
    space = get_space("autoformer-digits")
    costs = Costs(space)
    constraints = Constraints(Budget(params_m=0.2), costs)
    # every arch ties on top-1; the loss falls with the parameters, the cost rises with them
    evolution = Evolution(
        space,
        EvolutionSettings(population=8, generations=2, parents=2),
        constraints,
        costs,
        check_feasible(constraints).anchor,
        lambda archs: [Score(90.0, 1 / a.params()) for a in archs],
        SearchState(),
    )
    evolution.run()
    best = evolution.best()
    assert best.loss == min(r.loss for r in evolution.state.records)
    assert best.arch.params() == max(r.arch.params() for r in evolution.state.records)  # not the cheapest


def test_torchrun_search_on_two_processes_gives_the_one_process_result(run_dir, tmp_path):
    """gloo on CPU: the ranks share each generation's evaluations and rank 0 writes what one process would."""
    import os
    import subprocess
    import sys

    args = [
        "search",
        "--run-dir",
        str(run_dir),
        "--params-m",
        "0.03",
        "--population",
        "6",
        "--generations",
        "3",
        "--parents",
        "3",
        "--json",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "hwnas",
            *args,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(
        [sys.executable, "-m", "hwnas", *args, "--out", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two_report, one_report = json.loads(two.stdout[two.stdout.index("{") :]), json.loads(one.stdout)
    assert two_report["processes"] == 2 and one_report["processes"] == 1
    assert two_report["arch"] == one_report["arch"] and two_report["top1_test"] == one_report["top1_test"]
    histories = [pd.read_csv(tmp_path / name / "history.csv") for name in ("two", "one")]
    pd.testing.assert_frame_equal(
        histories[0].drop(columns="loss_search_val"), histories[1].drop(columns="loss_search_val")
    )
    assert np.allclose(histories[0]["loss_search_val"], histories[1]["loss_search_val"], rtol=1e-5)


def test_parents_follow_the_population_unless_given():
    assert EvolutionSettings().parents == 10  # AutoFormer's 10 of 50
    assert EvolutionSettings(population=8).parents == 2  # `--population 8` alone is no longer refused
    assert EvolutionSettings(population=8, parents=5).parents == 5
    with pytest.raises(hwnas.HwnasError, match="`parents` must be between 1 and `population`"):
        EvolutionSettings(population=8, parents=9)


def test_paper_preset_and_min_fraction_on_a_trained_run(run_dir, toy, tmp_path):
    params = sorted(a.params() / 1e6 for a in all_archs(toy))
    budget = round(params[int(0.8 * len(params))], 4)  # AutoFormer's window, 18/23..1 x it, holds many archs
    args = ["search", "--run", str(run_dir), "--params-m", f"{budget:g}", "--population", "6", "--generations", "2"]
    report = json.loads(hwnas_in_process(*args, "--preset", "paper", "--out", str(tmp_path / "p"), "--json").stdout)
    assert report["preset"] == "paper" and report["min_fraction"] == 18 / 23 and report["evaluations"] == 12
    assert report["settings"]["preset"] == "paper" and report["settings"]["min_fraction"] == 18 / 23
    history = pd.read_csv(tmp_path / "p" / "history.csv")
    assert len(history) == 12 and history["params_m"].between(18 / 23 * budget, budget).all()
    with pytest.raises(BudgetError, match="holds a search with another settings"):  # resuming checks the preset
        hwnas.search(run_dir, params_m=budget, population=6, generations=2, out=tmp_path / "p", progress=False)
    assert default_out(run_dir, [Budget(params_m=budget)], EvolutionSettings(preset="paper"), []).name == (
        f"evolution-paper-params{budget:g}-seed0"
    )
    assert_one_line_error(hwnas_in_process(*args, "--preset", "fast"), "no search preset 'fast'; use default, paper")
    assert_one_line_error(
        hwnas_in_process(*args[:4], "100", "--min-fraction", "0.5"),
        "--min-fraction 0.5",
        "costliest arch of search-toy",
    )
    assert not (run_dir / "search").exists()
