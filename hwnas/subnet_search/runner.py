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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from hwnas.io import atomic_write_json, sha256_file
from hwnas.latency.measure import measure_archs, require_here
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.resolve import resolve_table
from hwnas.latency.table import LatencyTable
from hwnas.spaces import Arch
from hwnas.subnet_search.constraints import METRICS, Budget, BudgetError, Constraints, Costs, budget_summary, check_feasible
from hwnas.subnet_search.evolution import EvolutionSettings, Evolution, Record, SearchState
from hwnas.subnet_search.fitness import TEST, Fitness
from hwnas.subnet_search.report import history_frame, pareto_front, pareto_plot, write_tables
from hwnas.train.checkpoint import WEIGHTS, CheckpointError
from hwnas.train.distributed import join_world
from hwnas.train.evaluate import Score, TrainedRun

STATE, BEST = "search_state.json", "best.json"
STATE_FORMAT = 1


@dataclass
class SearchResult:
    """The winner and everything `best.json`, `history.csv` and `pareto.csv` hold."""

    best: Arch
    report: dict[str, Any]  # the content of best.json
    history: pd.DataFrame
    pareto: pd.DataFrame
    out: Path

    @property
    def notes(self) -> list[str]:
        return list(self.report["notes"])


def default_out(run: Path, budget: Budget, settings: EvolutionSettings, device: str | None) -> Path:
    parts = [f"{k.split('_')[0]}{v:g}" for k, v in budget.limits().items()]
    return run / "search" / "-".join([settings.strategy, *parts, *([device] if device else []), f"seed{settings.seed}"])


def _load_state(out: Path, context: dict[str, Any], run: TrainedRun) -> SearchState:
    path = out / STATE
    if not path.is_file():
        return SearchState()
    try:
        saved = json.loads(path.read_text())
        state = SearchState.from_dict(saved["state"], run.space)
    except (ValueError, KeyError, TypeError) as exc:
        raise BudgetError(f"{path} is corrupted ({exc}); delete it to start the search over") from exc
    differs = [k for k in context if saved.get("context", {}).get(k) != context[k]]
    if differs:
        raise BudgetError(f"{out} holds a search with another {differs[0]}; use another --out or delete {out}")
    return state


def search(run: str | Path, *, latency_ms: float | None = None, device: str | None = None,
           table: str | Path | LatencyTable | None = None, flops_g: float | None = None, params_m: float | None = None,
           strategy: str = "evolution", population: int = 50, generations: int = 20, parents: int = 10,
           mutation_prob: float = 0.2, resample_prob: float = 0.4, seed: int = 0, high_level_share: float = 0.5,
           out: str | Path | None = None,
           measure: bool = False, drift: str = "refit", progress: bool = True,
           on_generation: Callable[[SearchState], None] | None = None) -> SearchResult:
    """Search the trained supernet in `run` for the most accurate subnet within the budget.

    Budgets: `latency_ms` (predicted from the table of `device`, or `table`; `drift` says what to do
    when the table is off on this machine), `flops_g` (GMACs) and `params_m` (millions); any
    combination, at least one. `measure` also times the winner end to end with the table's backend
    and settings on this machine. Under `torchrun` the ranks share each generation's evaluations
    (one GPU each) and give the result one process gives; rank 0 writes the outputs."""
    world = join_world()
    try:
        began = time.perf_counter()
        settings = EvolutionSettings(strategy, population, generations, parents, mutation_prob, resample_prob, seed,
                                     high_level_share=high_level_share)
        budget = Budget(latency_ms, flops_g, params_m)
        if latency_ms is not None and device is None and table is None:
            raise BudgetError("--latency-ms needs --device (or --table): the latency table to predict with")
        trained = TrainedRun(run)
        weights = trained.dir / WEIGHTS
        if not weights.is_file():
            raise CheckpointError(f"{trained.dir} has no trained weights ({WEIGHTS}); finish `hwnas train --out {trained.dir}` first")
        space = trained.space
        found = world.main_first(lambda: resolve_table(space, device=device, table=table, drift=drift, progress=progress)) \
            if device or table is not None else None
        if measure:  # refused before the search, not after it
            if found is None:
                raise BudgetError("--measure needs --device (or --table): it times the arch with the table's backend")
            require_here(found, "time the winner")
        predictor = LatencyPredictor(found, space) if found else None
        costs = Costs(space, predictor)
        constraints = Constraints(budget, costs)
        feasibility = check_feasible(constraints)  # before anything is evaluated

        label = found.device if found else None
        out = Path(out) if out is not None else default_out(trained.dir, budget, settings, label)
        out.mkdir(parents=True, exist_ok=True)
        context = {"run": str(trained.dir.resolve()), "weights_sha256": sha256_file(weights), "space": space.ref,
                   "budget": budget.limits(), "settings": settings.to_dict(),
                   "table": None if predictor is None else {
                       "fingerprint": found.fingerprint, "calibration": predictor.calibration.to_dict(),  # type: ignore[union-attr]
                       "rows_sha256": hashlib.sha256(predictor.row_ms.tobytes()).hexdigest()}}
        world.agree(hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()[:16],
                    "the search's weights, budget and latency table (pass --drift ignore or fail under torchrun)")
        state = _load_state(out, context, trained)
        fitness = Fitness(trained, device=world.device())

        def save(current: SearchState) -> None:
            if world.is_main:
                atomic_write_json(out / STATE, {"format": STATE_FORMAT, "context": context, "state": current.to_dict()})

        if not feasibility.binds:
            largest = space.largest()
            state.notes = [f"every arch of {space.key} meets {budget.describe()} (costliest: " + ", ".join(
                f"{feasibility.maximum[m]:.4g} {METRICS[m][1]}" for m in budget.limits()) + "); returned the largest arch"]
            if not state.records:
                first = fitness.score(largest)
                state.records = [Record(largest, 0, "largest", first.top1, costs.of(largest), first.loss)]
            state.done = True
            save(state)
            evolution = Evolution(space, settings, constraints, costs, feasibility.anchor, lambda a: [], state)
        else:
            total = settings.population * settings.generations
            bar = tqdm(total=total, initial=len(state.records), desc=f"search ({settings.strategy})", unit="arch",
                       disable=not (progress and world.is_main), dynamic_ncols=True)

            def evaluate_one(arch: Arch) -> Score:
                result = fitness.score(arch)
                bar.update(world.size)
                return result

            def evaluate(archs: Sequence[Arch]) -> list[Score]:  # under torchrun, shared by the ranks
                return world.share(archs, evaluate_one)

            def after_generation(current: SearchState) -> None:
                save(current)
                if on_generation:
                    on_generation(current)

            evolution = Evolution(space, settings, constraints, costs, feasibility.anchor, evaluate, state)
            if not state.done:
                evolution.run(after_generation)
                save(state)
            bar.close()

        best = evolution.best()
        if not world.is_main:  # rank 0 scores the winner on the test split and writes the outputs
            return SearchResult(best.arch, {"rank": world.rank}, pd.DataFrame(), pd.DataFrame(), out)
        report = {
            "arch": best.arch.to_dict(), "digest": best.arch.digest, "space": space.key,
            "top1_search_val": best.top1, "loss_search_val": best.loss, "top1_test": fitness.top1(best.arch, TEST),
            "predicted_latency": None if predictor is None else {"device": label, **predictor.predict(best.arch).to_dict()},
            "flops_g": best.arch.macs() / 1e9, "macs": best.arch.macs(), "params": best.arch.params(),
            "params_m": best.arch.params() / 1e6,
            "budget": budget_summary(feasibility, budget), "budget_binds": feasibility.binds,
            "table": None if found is None else {"path": found.name, "fingerprint": found.fingerprint,
                                                 "calibration": found.calibration(space).to_dict(),
                                                 "calibration_source": found.calibration_source(space)},
            "strategy": settings.strategy, "seed": settings.seed, "settings": settings.to_dict(),
            "evaluations": len(state.records), "generations_run": state.generation, "run": str(trained.dir),
            "notes": state.notes, "seconds": round(time.perf_counter() - began, 1), "processes": world.size, "rank": 0,
        }
        if measure:
            report.update(_measure(best.arch, found, budget, out, progress))  # type: ignore[arg-type]
        history = history_frame(state.records)
        cost = evolution.primary
        pareto = pareto_front(history, cost)
        write_tables(history, pareto, out)
        title = f"{settings.strategy} on {space.key}: {len(history)} archs, {budget.describe()}"
        pareto_plot(history, pareto, cost, budget.limits().get(cost), best.arch.digest, title, out / "pareto.png")
        report["outputs"] = {name: str(out / name) for name in (BEST, "history.csv", "pareto.csv", "pareto.png", STATE)}
        atomic_write_json(out / BEST, report)
        return SearchResult(best.arch, report, history, pareto, out)
    finally:
        world.close()


def _measure(arch: Arch, table: LatencyTable, budget: Budget, out: Path, progress: bool) -> dict[str, Any]:
    """The winner timed end to end here with the table's backend and settings (the honesty check)."""
    ms = float(measure_archs(arch.space, table, [arch], out / "measure", progress=progress)[0])
    result: dict[str, Any] = {"measured_latency_ms": ms}
    if budget.latency_ms is not None:
        result["measured_over_budget_pct"] = 100 * (ms / budget.latency_ms - 1)
    return result
