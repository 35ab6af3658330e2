"""`hwnas search` / `hwnas.search(...)`: from a trained run and a budget to the best subnet.

Order of work: load the run and the latency table, check the budget against the cheapest and the
costliest arch (before any evaluation), then search, saving its state after every generation so a
killed search resumes from the last finished one. The winner is scored once on the test split.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from hwnas.errors import cli_message
from hwnas.families.registry import DEFAULT_PRESET, get_family
from hwnas.io import atomic_write_json, sha256_file
from hwnas.latency.measure import measure_archs_apart, require_here
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.resolve import resolve_tables
from hwnas.latency.table import STATISTICS, LatencyTable
from hwnas.reports import SearchReport
from hwnas.spaces import Arch, SearchSpace
from hwnas.subnet_search.constraints import (
    Budget,
    BudgetError,
    Constraints,
    Costs,
    Feasibility,
    budget_summary,
    check_feasible,
    check_window,
    latency_metric,
    metric_info,
)
from hwnas.subnet_search.evolution import Evolution, EvolutionSettings, Record, SearchState
from hwnas.subnet_search.fitness import TEST, Fitness
from hwnas.subnet_search.nsga2 import NSGA2Search
from hwnas.subnet_search.operators import window_witness
from hwnas.subnet_search.report import history_frame, pareto_front, pareto_plot, write_tables
from hwnas.training.checkpoint import WEIGHTS, CheckpointError
from hwnas.training.distributed import World, join_world
from hwnas.training.evaluate import Score
from hwnas.training.run import TrainedRun

STATE, BEST = "search_state.json", "best.json"
STATE_FORMAT = 1


@dataclass
class SearchResult:
    """The winner and everything `best.json`, `history.csv` and `pareto.csv` hold."""

    best: Arch
    summary: SearchReport  # best.json, typed
    history: pd.DataFrame
    pareto: pd.DataFrame
    out: Path

    @property
    def report(self) -> dict[str, Any]:
        """best.json as a dict (the CLI's `--json` output)."""
        return self.summary.to_dict()

    @property
    def notes(self) -> list[str]:
        return list(self.summary.notes)

    def to_dict(self) -> dict[str, Any]:
        """What best.json holds (the CLI's `--json` output)."""
        return self.report


def _budget_name(budget: Budget) -> str:
    return "-".join(f"{k.split('_')[0]}{v:g}" for k, v in budget.limits().items())


def default_out(run: Path, budgets: Sequence[Budget], settings: EvolutionSettings, devices: Sequence[str]) -> Path:
    parts = [_budget_name(b) for b in budgets] or ["front"]
    preset = [settings.preset] if settings.preset != DEFAULT_PRESET else []
    return run / "search" / "-".join([settings.strategy, *preset, *parts, *devices, f"seed{settings.seed}"])


def _budgets(
    strategy: str,
    limits_ms: Sequence[float],
    devices: Sequence[str],
    flops_g: float | None,
    params_m: float | None,
    statistic: str,
) -> list[Budget]:
    """The budgets asked for. One, pairing each --latency-ms with a device; with nsga2 also several
    latency budgets on one device (one winner each from the one run), or none at all (the front)."""
    if strategy == "nsga2" and len(devices) == 1 and len(limits_ms) > 1:
        return [Budget.on([ms], devices, flops_g, params_m, statistic) for ms in sorted(set(limits_ms))]
    if limits_ms and len(limits_ms) != len(devices):
        raise BudgetError(
            f"--latency-ms is given {len(limits_ms)} times for {len(devices)} device(s) "
            f"({', '.join(devices)}): pair each --latency-ms with one --device (or --table), in order"
        )
    if strategy == "nsga2" and not limits_ms and flops_g is None and params_m is None:
        return []
    return [Budget.on(limits_ms, devices, flops_g, params_m, statistic)]


def _loosest(budgets: Sequence[Budget]) -> Budget | None:
    """One budget every budget lies within (several differ only in their first device's latency)."""
    if not budgets:
        return None
    return max(budgets, key=lambda b: b.latency_ms or 0.0)


def _load_state(out: Path, context: dict[str, Any], run: TrainedRun) -> SearchState:
    path = out / STATE
    if not path.is_file():
        return SearchState()
    try:
        saved = json.loads(path.read_text())
        state = SearchState.from_dict(saved["state"], run.space)
    except (ValueError, KeyError, TypeError) as exc:
        raise BudgetError(f"{path} is corrupted ({cli_message(exc)}); delete it to start the search over") from exc
    differs = [k for k in context if saved.get("context", {}).get(k) != context[k]]
    if differs:
        raise BudgetError(f"{out} holds a search with another {differs[0]}; use another --out or delete {out}")
    return state


def search(
    run: str | Path,
    *,
    latency_ms: float | Sequence[float] | None = None,
    device: str | Sequence[str] | None = None,
    table: str | Path | LatencyTable | Sequence[str | Path | LatencyTable] | None = None,
    flops_g: float | None = None,
    params_m: float | None = None,
    strategy: str | None = None,
    population: int | None = None,
    generations: int | None = None,
    parents: int | None = None,
    mutation_prob: float | None = None,
    resample_prob: float | None = None,
    seed: int = 0,
    high_level_share: float = 0.5,
    preset: str = DEFAULT_PRESET,
    initial: int | None = None,
    min_fraction: float | None = None,
    out: str | Path | None = None,
    measure: bool = False,
    latency_stat: str = "p50",
    drift: str = "refit",
    progress: bool = True,
    on_generation: Callable[[SearchState], None] | None = None,
) -> SearchResult:
    """Search the trained supernet in `run` for the most accurate subnet within the budget.

    Budgets: `latency_ms` (predicted from the table of `device`, or `table`; `drift` says what to do
    when the table is off on this machine), `flops_g` (GMACs) and `params_m` (millions); any
    combination, at least one. Latency budgets on several devices: `latency_ms` and `device` as
    lists, paired in order (a `table` goes to the device it was measured on); the first device is
    the primary one (the `latency_ms` column, the plots' first panel). `latency_stat` says which
    statistic of the timing distribution latency means: p50, or p90 for a tail budget (each table's
    rows and calibration of that statistic). `measure` also times the
    winner end to end with each table's backend and settings on this machine. Under `torchrun` the
    ranks share each generation's evaluations (one GPU each) and give the result one process gives;
    rank 0 writes the outputs.

    `preset` names the search settings: `default` (AutoFormer's evolution, 50 archs x 20
    generations; the same for every family) or a family's own, e.g. `paper` (the search as its
    release runs it). The settings given here that are not None override the preset's: `strategy`,
    `population`, `generations`, `parents` (default preset: a fifth of the population, at least 2),
    `mutation_prob`, `resample_prob`, `initial` (the archs of generation 0) and `min_fraction`
    (every evaluated arch within `min_fraction`..1 x each budget; a window no arch reaches is
    refused before any evaluation).

    Example:
        ```python
        # not run in the tests: needs a trained run
        import hwnas
        result = hwnas.search("runs/digits", latency_ms=0.8, device="cpu", out="runs/digits/search")
        print(result.best, result.to_dict()["top1_test"])
        result.pareto  # a DataFrame: the accuracy-latency front of every evaluated arch
        ```
    """
    world = join_world()
    try:
        began = time.perf_counter()
        if min_fraction is not None and not 0 < min_fraction <= 1:
            raise BudgetError(f"--min-fraction must be in (0, 1], got {min_fraction:g}")
        if min_fraction is not None and not _listed(latency_ms) and flops_g is None and params_m is None:
            raise BudgetError(
                f"--min-fraction {min_fraction:g} needs a budget (--latency-ms, --flops-g or --params-m): "
                "it keeps every evaluated arch within that fraction of the budget and the budget"
            )
        given = dict(
            strategy=strategy, population=population, generations=generations, parents=parents,
            mutation_prob=mutation_prob, resample_prob=resample_prob, seed=seed,
            high_level_share=high_level_share, initial=initial, min_fraction=min_fraction,
        )  # fmt: skip
        plan = _load(
            world, run, preset, given, latency_ms, device, table, flops_g, params_m, latency_stat, drift, progress
        )
        settings = plan.settings
        if measure:  # refused before the search, not after it
            if not plan.tables:
                raise BudgetError("--measure needs --device (or --table): it times the arch with the table's backend")
            for t in plan.tables:
                require_here(t, "time the winner")
        out = Path(out) if out is not None else default_out(plan.run.dir, plan.budgets, settings, plan.labels)
        out.mkdir(parents=True, exist_ok=True)
        fitness = Fitness(plan.run, device=world.device())
        evolution, state = _evolve(plan, world, fitness, out, progress, on_generation)
        if not world.is_main:  # rank 0 scores the winner on the test split and writes the outputs
            return SearchResult(
                evolution.best().arch, SearchReport(rank=world.rank), pd.DataFrame(), pd.DataFrame(), out
            )
        report = _report(plan, evolution, state, fitness, world.size, time.perf_counter() - began)
        if measure:
            measured = _measure(evolution.best().arch, plan.tables, plan.budget, plan.statistic, out, progress)
            report = replace(report, **measured)
        return _write(plan, evolution, state, report, out)
    finally:
        world.close()


@dataclass
class SearchPlan:
    """What a search works from, all checked before the first evaluation: the run, the tables and
    their predictors, the budgets (each feasible) and the one the search keeps every arch within."""

    run: TrainedRun
    settings: EvolutionSettings
    tables: list[LatencyTable]
    latency_stat: str
    predictors: dict[str, LatencyPredictor]  # by latency metric
    costs: Costs
    budgets: list[Budget]
    budget: Budget | None  # the loosest (None: nsga2 over the whole space)
    checked: dict[Budget, Feasibility]

    @property
    def space(self) -> SearchSpace:
        return self.run.space

    @property
    def labels(self) -> list[str]:
        return [t.device for t in self.tables]

    @property
    def statistic(self) -> str:
        return STATISTICS[self.latency_stat]

    @property
    def feasibility(self) -> Feasibility:
        return self.checked[self.budget] if self.budget else Feasibility(self.space.smallest(), True, {}, {})

    def context(self) -> dict[str, Any]:
        """What a saved state must have been searched with to be resumed."""
        tables_used = [
            {
                "fingerprint": p.table.fingerprint,
                "calibration": p.calibration.to_dict(),
                "rows_sha256": hashlib.sha256(p.row_ms.tobytes()).hexdigest(),
            }
            for p in self.predictors.values()
        ]
        return {
            "run": str(self.run.dir.resolve()),
            "weights_sha256": sha256_file(self.run.dir / WEIGHTS),
            "space": self.space.ref,
            "budget": self.budget.limits() if self.budget else {},
            "settings": self.settings.to_dict(),
            **({"budgets": [b.limits() for b in self.budgets]} if len(self.budgets) > 1 else {}),
            "table": tables_used[0] if tables_used else None,
            **({"more_tables": tables_used[1:]} if len(tables_used) > 1 else {}),
            **({"latency_stat": self.latency_stat} if self.latency_stat != "p50" else {}),
        }


def _load(
    world: World,
    run: str | Path,
    preset: str,
    given: dict[str, Any],
    latency_ms: float | Sequence[float] | None,
    device: str | Sequence[str] | None,
    table: str | Path | LatencyTable | Sequence[str | Path | LatencyTable] | None,
    flops_g: float | None,
    params_m: float | None,
    latency_stat: str,
    drift: str,
    progress: bool,
) -> SearchPlan:
    """Load the run, its family's search preset and the tables, and check every budget against the
    space (a budget no arch meets fails here, naming the minimum; so does a window no arch reaches)."""
    limits_ms, devices, tables = _listed(latency_ms), _listed(device), _listed(table)
    if latency_stat not in STATISTICS:
        raise BudgetError(f"unknown --latency-stat {latency_stat!r}; use {' or '.join(STATISTICS)}")
    if limits_ms and not devices and not tables:
        raise BudgetError("--latency-ms needs --device (or --table): the latency table to predict with")
    trained = TrainedRun(run)  # its family holds the preset
    settings = EvolutionSettings.from_preset(preset, get_family(trained.space.family).search_preset(preset), **given)
    if settings.strategy == "nsga2" and not devices and not tables:
        raise BudgetError(
            "--strategy nsga2 trades accuracy against latency; without --device (or --table) it "
            "would have a single objective: name the device(s) whose latency to trade"
        )
    if not (trained.dir / WEIGHTS).is_file():
        raise CheckpointError(
            f"{trained.dir} has no trained weights ({WEIGHTS}); finish `hwnas train --out {trained.dir}` first"
        )
    space = trained.space
    found = (
        world.main_first(lambda: resolve_tables(space, devices=devices, tables=tables, drift=drift, progress=progress))
        if devices or tables
        else []
    )
    budgets = _budgets(settings.strategy, limits_ms, [t.device for t in found], flops_g, params_m, latency_stat)
    predictors = {
        latency_metric(t.device, first=i == 0): LatencyPredictor(t, space, STATISTICS[latency_stat])
        for i, t in enumerate(found)
    }
    costs = Costs(space, predictors)
    # every budget asked for is checked before anything is evaluated (the loosest is the search's)
    checked = {each: check_feasible(Constraints(each, costs)) for each in budgets}
    loosest = _loosest(budgets)
    if settings.min_fraction is not None and loosest is not None:
        if len(budgets) > 1:
            raise BudgetError(
                f"a lower window (--min-fraction {settings.min_fraction:g}, given or the preset's) keeps archs near "
                "one budget; with several --latency-ms budgets the tighter ones would lie below it: give one budget"
            )
        window = Constraints(loosest, costs, settings.min_fraction)
        check_window(window, checked[loosest])
        if checked[loosest].binds and window_witness(space, window) is None:
            raise BudgetError(
                f"found no arch of {space.key} within {settings.min_fraction:g}-1 x {loosest.describe()} "
                f"(--min-fraction {settings.min_fraction:g}) from the largest arch and random ones, each pruned into "
                "the budget and grown into the window: lower --min-fraction"
            )
    return SearchPlan(trained, settings, found, latency_stat, predictors, costs, budgets, loosest, checked)


def _evolve(
    plan: SearchPlan,
    world: World,
    fitness: Fitness,
    out: Path,
    progress: bool,
    on_generation: Callable[[SearchState], None] | None,
) -> tuple[Evolution, SearchState]:
    """Search (or resume from the state saved after the last finished generation); a budget every
    arch meets is not searched: the largest arch is the answer."""
    context = plan.context()
    world.agree(
        hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()[:16],
        "the search's weights, budget and latency table (pass --drift ignore or fail under torchrun)",
    )
    state = _load_state(out, context, plan.run)
    space, settings, costs, feasibility = plan.space, plan.settings, plan.costs, plan.feasibility
    constraints = Constraints(plan.budget, costs, settings.min_fraction)

    def save(current: SearchState) -> None:
        if world.is_main:
            atomic_write_json(out / STATE, {"format": STATE_FORMAT, "context": context, "state": current.to_dict()})

    engine = NSGA2Search if settings.strategy == "nsga2" else Evolution
    if not feasibility.binds and engine is Evolution:
        assert plan.budget is not None  # a search without a budget is nsga2's
        largest = space.largest()
        state.notes = [
            f"every arch of {space.key} meets {plan.budget.describe()} (costliest: "
            + ", ".join(f"{feasibility.maximum[m]:.4g} {metric_info(m)[1]}" for m in plan.budget.limits())
            + "); returned the largest arch"
        ]
        if not state.records:
            first = fitness.score(largest)
            state.records = [Record(largest, 0, "largest", first.top1, costs.of(largest), first.loss)]
        state.done = True
        save(state)
        return Evolution(space, settings, constraints, costs, feasibility.anchor, lambda a: [], state), state
    bar = tqdm(
        total=settings.population * settings.generations if engine is NSGA2Search else settings.planned,
        initial=len(state.records),
        desc=f"search ({settings.strategy})",
        unit="arch",
        disable=not (progress and world.is_main),
        dynamic_ncols=True,
    )

    def evaluate_one(arch: Arch) -> Score:
        result = fitness.score(arch)
        bar.update(world.size)
        return result

    def after_generation(current: SearchState) -> None:
        save(current)
        if on_generation:
            on_generation(current)

    # under torchrun, the ranks share each generation's evaluations
    evolution = engine(
        space, settings, constraints, costs, feasibility.anchor, lambda archs: world.share(archs, evaluate_one), state
    )
    if not state.done:
        evolution.run(after_generation)
        save(state)
    bar.close()
    return evolution, state


def _winner(plan: SearchPlan, record: Record, within: Budget | None, fitness: Fitness) -> dict[str, Any]:
    """What best.json says of the winner within one budget."""
    predicted = {
        t.device: {"device": t.device, **p.predict(record.arch).to_dict()}
        for t, p in zip(plan.tables, plan.predictors.values())
    }
    return {
        "arch": record.arch.to_dict(),
        "digest": record.arch.digest,
        "space": plan.space.key,
        "top1_search_val": record.top1,
        "loss_search_val": record.loss,
        "top1_test": fitness.top1(record.arch, TEST),
        "predicted_latency": predicted.get(plan.labels[0]) if plan.labels else None,
        "predicted_latency_by_device": predicted,
        "flops_g": record.arch.macs() / 1e9,
        "macs": record.arch.macs(),
        "params": record.arch.params(),
        "params_m": record.arch.params() / 1e6,
        "budget": budget_summary(plan.checked[within], within) if within else {},
    }


def _report(
    plan: SearchPlan, evolution: Evolution, state: SearchState, fitness: Fitness, processes: int, seconds: float
) -> SearchReport:
    """best.json: the winner scored on the test split, the tables it was predicted with, the search."""
    tables = {
        t.device: {
            "path": t.name,
            "fingerprint": t.fingerprint,
            "calibration": t.calibration(plan.space, plan.statistic).to_dict(),
            "calibration_source": t.calibration_source(plan.space),
        }
        for t in plan.tables
    }
    return SearchReport.from_dict(
        {
            **_winner(plan, evolution.best(), plan.budget, fitness),
            "budget_binds": plan.feasibility.binds,
            "table": tables.get(plan.labels[0]) if plan.labels else None,
            "tables_by_device": tables,
            "latency_stat": plan.latency_stat,
            "strategy": plan.settings.strategy,
            "preset": plan.settings.preset,
            "min_fraction": plan.settings.min_fraction if plan.budget else None,
            "seed": plan.settings.seed,
            "settings": plan.settings.to_dict(),
            "evaluations": len(state.records),
            "generations_run": state.generation,
            "run": plan.run.dir,
            "notes": state.notes,
            "seconds": round(seconds, 1),
            "processes": processes,
            "rank": 0,
            "per_budget": _per_budget(plan, evolution, state, fitness) if len(plan.budgets) > 1 else None,
        }
    )


def _per_budget(plan: SearchPlan, evolution: Evolution, state: SearchState, fitness: Fitness) -> list[dict[str, Any]]:
    """nsga2 with several budgets: each budget's winner from the one history (its own file)."""
    entries = []
    for each in plan.budgets:
        name = f"best-{_budget_name(each)}.json"
        fits = [r for r in state.records if all(r.costs[m] <= v for m, v in each.limits().items())]
        entries.append(
            {**_winner(plan, min(fits, key=evolution.rank_key), each, fitness), "file": name}
            if fits
            else {
                "budget": budget_summary(plan.checked[each], each),
                "arch": None,
                "file": name,
                "note": "no evaluated arch meets this budget",
            }
        )
    return entries


def _write(plan: SearchPlan, evolution: Evolution, state: SearchState, report: SearchReport, out: Path) -> SearchResult:
    """best.json (and each budget's best-*.json), history.csv, pareto.csv and pareto.png."""
    outputs = [BEST, "history.csv", "pareto.csv", "pareto.png", STATE]
    for entry in report.per_budget or []:
        atomic_write_json(out / entry["file"], entry)
        outputs.append(entry["file"])
    history = history_frame(state.records)
    axes = list(plan.predictors) or [evolution.primary]
    pareto = pareto_front(history, axes)
    write_tables(history, pareto, out)
    title = f"{plan.settings.strategy} on {plan.space.key}: {len(history)} archs, " + (
        "; ".join(b.describe() for b in plan.budgets) or "no budget"
    )
    best = evolution.best().arch
    limits = [b.limits() for b in plan.budgets]
    pareto_plot(history, axes, limits, best.digest, title, out / "pareto.png", plan.labels[0] if plan.labels else None)
    report = replace(report, outputs={name: str(out / name) for name in outputs})
    atomic_write_json(out / BEST, report.to_dict())
    return SearchResult(best, report, history, pareto, out)


def _listed(value: Any) -> list[Any]:
    """None, one value, or a sequence of values (a string or path is one value) as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _measure(
    arch: Arch, tables: Sequence[LatencyTable], budget: Budget | None, statistic: str, out: Path, progress: bool
) -> dict[str, Any]:
    """The winner timed end to end here with each table's backend and settings (the honesty check),
    as the budget's statistic; the first device's figures keep their one-device names."""
    limits = budget.limits() if budget else {}
    by_device: dict[str, dict[str, float]] = {}
    for i, table in enumerate(tables):
        # in a fresh process, as validation measures: timed in the search's own process right after its
        # torch scoring, one winner took 1.17 ms where fresh processes took 0.81-0.85 ms (multi_device.py)
        (ms_all,) = measure_archs_apart(
            arch.space, table, [arch], out / "measure" / table.device, [None], progress=progress, statistic=statistic
        )
        ms = float(ms_all[0])
        by_device[table.device] = {"measured_latency_ms": ms}
        limit = limits.get(latency_metric(table.device, first=i == 0))
        if limit is not None:
            by_device[table.device]["measured_over_budget_pct"] = 100 * (ms / limit - 1)
    return {**by_device[tables[0].device], "measured_by_device": by_device}
