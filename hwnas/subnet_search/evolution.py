"""The search loop: evolution (AutoFormer), random search (the baseline) and hierarchical (GLiT);
NSGA-II, the fourth strategy, reuses its records and state (`hwnas.subnet_search.nsga2`).

All three run generations of `population` new archs each (generation 0 `initial` of them where a
preset says so), so they spend the same number of evaluations. Generation 0 (and every generation of
random search) draws archs at random; later evolution generations take the top `parents` archs
evaluated so far and make `mutations` children by mutation (half the population by default) and the
rest by crossover, topped up at random. Every arch is feasible before it is evaluated: a draw that
breaks the budget (or falls below its lower window, `min_fraction`) is retried a bounded number of
times, then repaired toward the budget; nothing loops unboundedly. An arch already evaluated is
never evaluated again.

Hierarchical search splits the generations: first the space's high-level genes evolve with the
per-layer ones fixed at their middle choice (for `high_level_share` of the generations, half by
default, or until those combinations are exhausted), then the per-layer ones with the best
high-level genes fixed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from hwnas.errors import HwnasError
from hwnas.families.registry import DEFAULT_PRESET, INITIAL_SAMPLINGS, SearchPreset
from hwnas.spaces import Arch, SearchSpace
from hwnas.subnet_search.constraints import Constraints, Costs
from hwnas.subnet_search.operators import Operators
from hwnas.training.evaluate import Score

STRATEGIES = ("evolution", "random", "hierarchical", "nsga2")
# Settings a preset adds; at their defaults they stay out of `to_dict()` (saved states still resume).
PRESET_FIELDS = ("preset", "initial", "mutations", "toggled", "initial_sampling", "min_fraction")


@dataclass(frozen=True)
class EvolutionSettings:
    """Defaults are AutoFormer's: 50 archs x 20 generations, top 10 parents, 25 mutations + 25
    crossovers per generation, per-layer mutation probability 0.2, depth/width resampling 0.4.
    Parents left unset follow the population: a fifth of it (AutoFormer's 10 of 50), at least 2.
    The fields after `high_level_share` come from a search preset (`SearchPreset`); at their
    defaults they are left out of `to_dict()`, so a default search records what it always did."""

    strategy: str = "evolution"
    population: int = 50
    generations: int = 20
    parents: int | None = None  # None: a fifth of the population, at least 2
    mutation_prob: float = 0.2
    resample_prob: float = 0.4
    seed: int = 0
    retries: int = 10  # draws per child before repairing the last one
    high_level_share: float = 0.5  # hierarchical: the share of generations the high-level stage gets
    preset: str = DEFAULT_PRESET
    initial: int | None = None  # archs of generation 0 (None: the population)
    mutations: int | None = None  # mutations per generation (None: half the population); the rest crossovers
    toggled: tuple[str, ...] = ()  # gene-name prefixes whose values a mutation flips
    initial_sampling: str = "uniform"
    min_fraction: float | None = None  # every evaluated arch within min_fraction..1 x the budget

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise HwnasError(f"unknown strategy {self.strategy!r}; use {', '.join(STRATEGIES)}")
        if self.population < 2 or self.generations < 1 or self.retries < 1:
            raise HwnasError("--population must be at least 2 and --generations at least 1")
        if self.parents is None:
            object.__setattr__(self, "parents", max(2, self.population // 5))
        if not 1 <= self.parents <= self.population:
            raise HwnasError(f"--parents must be between 1 and --population ({self.population}), got {self.parents}")
        if not 0 < self.high_level_share < 1:
            raise HwnasError(f"--high-level-share must be between 0 and 1 (exclusive), got {self.high_level_share}")
        for name in ("mutation_prob", "resample_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise HwnasError(f"--{name.replace('_', '-')} must be a probability in [0, 1]")
        if self.initial is not None and self.initial < 1:
            raise HwnasError(f"--initial must be at least 1, got {self.initial}")
        if self.mutations is not None and not 0 <= self.mutations <= self.population:
            raise HwnasError(f"mutations must be between 0 and --population ({self.population}), got {self.mutations}")
        if self.initial_sampling not in INITIAL_SAMPLINGS:
            raise HwnasError(f"initial sampling {self.initial_sampling!r} is not one of {', '.join(INITIAL_SAMPLINGS)}")
        if self.min_fraction is not None and not 0 < self.min_fraction <= 1:
            raise HwnasError(f"--min-fraction must be in (0, 1], got {self.min_fraction:g}")
        object.__setattr__(self, "toggled", tuple(self.toggled))

    @classmethod
    def from_preset(cls, name: str, preset: SearchPreset, **given: Any) -> EvolutionSettings:
        """The preset's settings with the fields in `given` that are not None instead. A preset's
        parents, mutations and initial pool keep their share of a population given in its place
        (ViT-ResNAS's 75 parents of 150 stay half of it), unless given too."""
        given = {k: v for k, v in given.items() if v is not None}
        population = given.get("population", preset.population)
        scale = population / preset.population

        def scaled(field_name: str) -> int | None:
            value = getattr(preset, field_name)
            if field_name in given or value is None or scale == 1:
                return given.get(field_name, value)
            least, most = {"parents": (2, population), "mutations": (0, population)}.get(field_name, (1, None))
            count = max(least, round(value * scale))
            return count if most is None else min(count, most)

        values = {
            "strategy": preset.strategy,
            "population": population,
            "generations": preset.generations,
            "parents": scaled("parents"),
            "mutation_prob": preset.mutation_prob,
            "resample_prob": preset.resample_prob,
            "retries": preset.retries,
            "preset": name,
            "initial": scaled("initial"),
            "mutations": scaled("mutations"),
            "toggled": preset.toggled,
            "initial_sampling": preset.initial_sampling,
            "min_fraction": preset.min_fraction,
        }
        return cls(**{**values, **{k: v for k, v in given.items() if k not in ("parents", "initial", "mutations")}})

    @property
    def initial_size(self) -> int:
        """Archs in generation 0."""
        return self.population if self.initial is None else self.initial

    @property
    def mutation_count(self) -> int:
        """Children by mutation per evolving generation; the rest of the population by crossover."""
        return self.population // 2 if self.mutations is None else self.mutations

    @property
    def planned(self) -> int:
        """Evaluations when every generation finds its archs."""
        return self.initial_size + self.population * (self.generations - 1)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for f in fields(self):
            if f.name in PRESET_FIELDS and out[f.name] == f.default:
                del out[f.name]
        if "toggled" in out:
            out["toggled"] = list(out["toggled"])
        return out


@dataclass
class Record:
    """One evaluated arch."""

    arch: Arch
    generation: int
    origin: str  # random, mutation or crossover (+repair when repaired into the budget); nsga2 for its children
    top1: float  # search-val, percent
    costs: dict[str, float]
    loss: float = math.inf  # search-val cross-entropy (inf in searches saved before it was kept)

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.arch.digest,
            "generation": self.generation,
            "origin": self.origin,
            "top1": self.top1,
            "loss": self.loss if math.isfinite(self.loss) else None,
            "costs": self.costs,
            "arch": self.arch.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], space: SearchSpace) -> Record:
        loss = d.get("loss")
        return cls(
            Arch.from_dict(d["arch"], space),
            int(d["generation"]),
            d["origin"],
            float(d["top1"]),
            dict(d["costs"]),
            math.inf if loss is None else float(loss),
        )


@dataclass(frozen=True)
class Stage:
    """Generations in which only `mutable` genes vary (the others are `base`'s). A stage ends after
    `generations` or once its subspace is exhausted; the last one runs the generations left."""

    name: str
    mutable: tuple[str, ...]
    generations: int
    base: Arch
    frozen: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchState:
    """Everything a resumed search needs: finished generations, the RNG after them, every record."""

    generation: int = 0  # generations finished
    stage: int = 0  # the stage running (hierarchical search has two)
    stage_began: int = 0  # the generation it began with
    rng: Any = None
    records: list[Record] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    done: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "stage": self.stage,
            "stage_began": self.stage_began,
            "rng": _jsonable(self.rng),
            "records": [r.to_dict() for r in self.records],
            "notes": self.notes,
            "done": self.done,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], space: SearchSpace) -> SearchState:
        return cls(
            int(d["generation"]),
            int(d["stage"]),
            int(d["stage_began"]),
            _tuples(d["rng"]),
            [Record.from_dict(r, space) for r in d["records"]],
            list(d["notes"]),
            bool(d["done"]),
        )


def _jsonable(state: Any) -> Any:
    return [_jsonable(s) for s in state] if isinstance(state, (tuple, list)) else state


def _tuples(state: Any) -> Any:
    return tuple(_tuples(s) for s in state) if isinstance(state, list) else state


class Evolution:
    """Runs a strategy generation by generation over `state`, calling `evaluate` on each new batch."""

    def __init__(
        self,
        space: SearchSpace,
        settings: EvolutionSettings,
        constraints: Constraints,
        costs: Costs,
        anchor: Arch,
        evaluate: Callable[[Sequence[Arch]], list[Score]],
        state: SearchState,
    ):
        self.space, self.settings, self.constraints, self.costs = space, settings, constraints, costs
        self.anchor, self.evaluate, self.state = anchor, evaluate, state
        self.rng = random.Random(settings.seed)
        if state.rng is not None:
            self.rng.setstate(state.rng)
        self.primary = "latency_ms" if "latency_ms" in costs.metrics else "flops_g"

    # ---- ranking ------------------------------------------------------------------------------
    def rank_key(self, record: Record) -> tuple[float, float, float, str]:
        """Higher top-1 first; ties go to the lower search-val loss (a continuous signal: on small
        search-val sets many candidates tie on top-1), then the cheaper arch, then the digest."""
        return (-record.top1, record.loss, record.costs[self.primary], record.arch.digest)

    def best(self) -> Record:
        return min(self.state.records, key=self.rank_key)

    # ---- stages -----------------------------------------------------------------------------------
    def stages(self) -> list[Stage]:
        s, all_genes = self.settings, tuple(g.name for g in self.space.genes)
        if s.strategy != "hierarchical":
            return [Stage(s.strategy, all_genes, s.generations, self.anchor)]
        high = tuple(g for g in self.space.high_level_genes if g in all_genes)
        low = tuple(g for g in all_genes if g not in high)
        if not high or not low or s.generations < 2:
            why = "has no high/low gene split" if not high or not low else "needs at least 2 generations"
            self._note(f"hierarchical search {why} for {self.space.key}; ran plain evolution instead")
            return [Stage("evolution", all_genes, s.generations, self.anchor)]
        first = min(s.generations - 1, max(1, round(s.generations * s.high_level_share)))
        middle = self.space.middle()
        frozen = {g.name: middle.genes[g.name][0] for g in self.space.genes if g.name in low and g.is_list}
        probe = Operators(self.space, random.Random(0), high, frozen=frozen)  # its own RNG: resumes stay exact
        base = middle if self.constraints.fits(middle) else probe.repair(middle, self.constraints)
        if base is None:
            self._note(
                "no arch meets the budget with per-layer choices at their middle; the high-level stage "
                "fixes them at the cheapest arch's instead"
            )
            frozen = {name: self.anchor.genes[name][0] for name in frozen}
            base = self.anchor
        earlier = [r for r in self.state.records if r.generation < self.state.stage_began]
        best_high = min(earlier, key=self.rank_key).arch if self.state.stage > 0 and earlier else base
        return [
            Stage("high-level", high, first, base, frozen),
            Stage("low-level", low, s.generations - first, best_high),
        ]

    def _note(self, text: str) -> None:
        if text not in self.state.notes:
            self.state.notes.append(text)

    # ---- one generation -------------------------------------------------------------------------------
    def run(self, on_generation: Callable[[SearchState], None] | None = None) -> SearchState:
        """Finish the remaining generations; `on_generation` is called after each is recorded."""
        state = self.state
        while state.generation < self.settings.generations:
            g, stages = state.generation, self.stages()
            stage, last = stages[state.stage], state.stage == len(stages) - 1
            if not last and g - state.stage_began >= stage.generations:
                self._next_stage()
                continue
            children = self.breed(stage, g)
            if not children and not last:
                self._note(
                    f"the {stage.name} stage ran out of new archs after {g - state.stage_began} generations; "
                    f"the next stage got the rest"
                )
                self._next_stage()
                continue
            if not children:
                self._note(f"stopped after {g} generations: no new feasible arch was left to evaluate")
                break
            archs = [a for a, _ in children]
            scores = self.evaluate(archs)
            costs = self.costs.many(archs)
            for i, ((arch, origin), score) in enumerate(zip(children, scores)):
                state.records.append(
                    Record(arch, g, origin, score.top1, {k: float(v[i]) for k, v in costs.items()}, score.loss)
                )
            state.generation = g + 1
            state.rng = self.rng.getstate()
            if on_generation:
                on_generation(state)
        planned = self.settings.planned
        if len(state.records) < planned:
            self._note(
                f"evaluated {len(state.records)} archs, not {planned}: generations found fewer new feasible "
                f"archs than --population (the budget leaves few archs, or a stage's subspace is small)"
            )
        state.done = True
        return state

    def _next_stage(self) -> None:
        self.state.stage += 1
        self.state.stage_began = self.state.generation

    def breed(self, stage: Stage, generation: int) -> list[tuple[Arch, str]]:
        """The new feasible, never-evaluated archs of one generation."""
        s = self.settings
        ops = Operators(self.space, self.rng, stage.mutable, s.mutation_prob, s.resample_prob, stage.frozen, s.toggled)
        base = stage.base
        seen = {r.arch.digest for r in self.state.records}
        children: list[tuple[Arch, str]] = []

        def add(make: Callable[[], Arch | None], origin: str) -> None:
            child = self._feasible(make, seen, ops)
            if child is not None:
                arch, repaired = child
                seen.add(arch.digest)
                children.append((arch, origin + ("+repair" if repaired else "")))

        evolving = s.strategy != "random" and generation > self.state.stage_began
        if evolving:
            pool = [
                r
                for r in self.state.records
                if all(
                    r.arch.genes[k] == v
                    for k, v in base.genes.items()
                    if k not in stage.mutable and k not in stage.frozen
                )
            ]
            parents = [r.arch for r in sorted(pool, key=self.rank_key)[: s.parents]]
            for _ in range(s.mutation_count):
                add(lambda: ops.mutate(self.rng.choice(parents)), "mutation")
            if len(parents) > 1:
                for _ in range(s.population - s.mutation_count):
                    add(lambda: ops.crossover(*self.rng.sample(parents, 2)), "crossover")
        size = s.initial_size if generation == 0 else s.population
        draw = (
            (lambda: ops.pruned_sample(base, self.constraints))
            if s.initial_sampling == "pruned"
            else (lambda: ops.sample(base))
        )
        misses = 0
        while len(children) < size and misses < s.retries:  # misses: the subspace is (nearly) exhausted
            before = len(children)
            add(draw, "random")
            misses += len(children) == before
        return children

    def _feasible(self, make: Callable[[], Arch | None], seen: set[str], ops: Operators) -> tuple[Arch, bool] | None:
        """A new arch within the budget (and its lower window): up to `retries` draws, then the last
        draw repaired: moved into the budget, then grown into the window."""
        last = None
        for _ in range(self.settings.retries):
            child = make()
            if child is None or child.digest in seen:
                continue
            if self.constraints.admits(child):
                return child, False
            last = child
        if last is not None:
            fixed = ops.repair(last, self.constraints)
            if fixed is not None and self.constraints.shortfall([fixed])[0] > 0:
                fixed = ops.grow(fixed, self.constraints)
            if fixed is not None and fixed.digest not in seen:
                return fixed, True
        return None
