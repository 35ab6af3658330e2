"""NSGA-II (pymoo's): the whole accuracy-latency front in one run.

Objectives: search-val top-1 (maximised) against predicted latency on every device searched. pymoo does the non-dominated sorting, crowding distance and
tournament selection; our operators (`Operators`) draw, cross and mutate archs of the space, every
child within the search's budget (the loosest requested: each budget's winner is then picked from
the one history) and never one evaluated before.

Resuming: pymoo's state is not saved (it would have to be unpickled). The run is replayed instead:
pymoo's generator is seeded, our operators draw from it, and every arch the saved records hold is
answered from them, so the replay proposes exactly the archs the first run did and evaluates only
the generations it had not finished.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.config import Config
from pymoo.core.crossover import Crossover
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling

from hwnas.spaces import Arch
from hwnas.subnet_search.evolution import Evolution, Record, SearchState
from hwnas.subnet_search.operators import Operators

# pymoo prints a notice to stdout where its compiled modules are missing, which would break `--json`
# output; it changes speed only, never results
Config.warnings["not_compiled"] = False


class NSGA2Search(Evolution):
    """`Evolution`'s records, state and ranking, with pymoo's NSGA-II choosing whom to breed."""

    def objectives(self) -> list[str]:
        """The costs minimised beside the error: latency on each device."""
        return list(self.costs.predictors)

    def run(self, on_generation: Callable[[SearchState], None] | None = None) -> SearchState:
        s, state = self.settings, self.state
        recorded = {r.arch.digest: r for r in state.records}  # a resume answers these from the records
        seen: set[str] = set()
        generation = 0
        metrics = self.objectives()

        def score(archs: Sequence[Arch]) -> np.ndarray:
            new = [a for a in archs if a.digest not in recorded]
            if new:
                costs = self.costs.many(new)
                for i, (arch, result) in enumerate(zip(new, self.evaluate(new))):
                    record = Record(
                        arch,
                        generation,
                        "random" if generation == 0 else "nsga2",
                        result.top1,
                        {k: float(v[i]) for k, v in costs.items()},
                        result.loss,
                    )
                    recorded[arch.digest] = record
                    state.records.append(record)
            seen.update(a.digest for a in archs)
            rows = [recorded[a.digest] for a in archs]
            return np.array([[-r.top1, *(r.costs[m] for m in metrics)] for r in rows])

        genes = tuple(g.name for g in self.space.genes)

        def operators(random_state: np.random.Generator) -> Operators:
            rng = random.Random(int(random_state.integers(2**62)))
            return Operators(self.space, rng, genes, s.mutation_prob, s.resample_prob, toggled=s.toggled)

        def feasible(
            make: Callable[[Operators], Arch | None], random_state: np.random.Generator, taken: set[str]
        ) -> Arch | None:
            ops = operators(random_state)
            child = self._feasible(lambda: make(ops), seen | taken, ops)
            return None if child is None else child[0]

        algorithm = NSGA2(
            pop_size=s.population,
            sampling=_Sampling(feasible, self.anchor),
            crossover=_Crossover(feasible),
            mutation=_Mutation(feasible),
            eliminate_duplicates=_Duplicates(seen),
        )
        algorithm.setup(_ArchProblem(1 + len(metrics), score), termination=("n_gen", s.generations), seed=s.seed)
        while algorithm.has_next():  # pymoo stops early when mating finds no new arch
            algorithm.next()
            generation += 1
            if generation > state.generation:
                state.generation = generation
                if on_generation:
                    on_generation(state)
        planned = s.population * s.generations
        if len(state.records) < planned:
            self._note(
                f"evaluated {len(state.records)} archs, not {planned}: NSGA-II proposed archs it had "
                f"evaluated before (answered without evaluating) or found too few new feasible ones"
            )
        state.done = True
        return state


# ---- pymoo's interface: an arch is one object variable -----------------------------------------------
Make = Callable[[Callable[[Operators], Arch | None], np.random.Generator, set[str]], Arch | None]


class _ArchProblem(Problem):
    def __init__(self, n_obj: int, score: Callable[[Sequence[Arch]], np.ndarray]):
        super().__init__(n_var=1, n_obj=n_obj, vtype=object)
        self.score = score

    def _evaluate(self, x: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        out["F"] = self.score([row[0] for row in x])


class _Sampling(Sampling):
    def __init__(self, feasible: Make, anchor: Arch):
        super().__init__()
        self.feasible, self.anchor = feasible, anchor

    def _do(self, problem: Problem, n_samples: int, *args: Any, random_state: Any = None, **kwargs: Any) -> np.ndarray:
        drawn: list[Arch] = []
        for _ in range(n_samples):
            arch = self.feasible(lambda ops: ops.sample(self.anchor), random_state, {a.digest for a in drawn})
            if arch is not None:
                drawn.append(arch)
        out = np.empty((len(drawn), 1), dtype=object)
        out[:, 0] = drawn
        return out


class _Crossover(Crossover):
    def __init__(self, feasible: Make):
        super().__init__(n_parents=2, n_offsprings=2, prob=1.0)  # every pair crossed (pymoo's default: 0.9)
        self.feasible = feasible

    def _do(self, problem: Problem, x: np.ndarray, *args: Any, random_state: Any = None, **kwargs: Any) -> np.ndarray:
        out = np.empty((2, x.shape[1], 1), dtype=object)
        for k in range(x.shape[1]):
            a, b = x[0, k, 0], x[1, k, 0]
            for j, parent in enumerate((a, b)):  # a failed cross gives the parent back: a duplicate pymoo drops
                out[j, k, 0] = self.feasible(lambda ops: ops.crossover(a, b), random_state, set()) or parent  # noqa: B023  (called here)
        return out


class _Mutation(Mutation):
    def __init__(self, feasible: Make):
        super().__init__(prob=1.0)
        self.feasible = feasible

    def _do(self, problem: Problem, x: np.ndarray, *args: Any, random_state: Any = None, **kwargs: Any) -> np.ndarray:
        out = np.empty_like(x)
        for i, (arch,) in enumerate(x):
            out[i, 0] = self.feasible(lambda ops: ops.mutate(arch), random_state, set()) or arch  # noqa: B023  (called here)
        return out


class _Duplicates(DuplicateElimination):
    """Archs equal by digest, or evaluated before (in `seen`), are duplicates."""

    def __init__(self, seen: set[str]):
        super().__init__()
        self.seen = seen

    def _do(self, pop: Any, other: Any, is_duplicate: np.ndarray) -> np.ndarray:
        digests = [x[0].digest for x in pop.get("X")]
        if other is None:
            first: set[str] = set()
            for i, d in enumerate(digests):
                is_duplicate[i] |= d in first or d in self.seen
                first.add(d)
        else:
            others = {x[0].digest for x in other.get("X")}
            is_duplicate |= np.array([d in others for d in digests], dtype=bool)
        return is_duplicate
