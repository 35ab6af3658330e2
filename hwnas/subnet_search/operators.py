"""Variation on genes, generic over families: random draws, mutation, crossover and repair.

Every operator touches only the `mutable` genes (all of them, or one level of a hierarchical
search); the others keep their value, and per-layer genes that must grow with a depth change take
`frozen` values where given. A result that breaks the space's rules (ViTAS's minimum of active
layers) comes back as None; one that breaks the budget is the caller's to retry or repair.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import numpy as np

from hwnas.errors import ArchError
from hwnas.spaces import Arch, SearchSpace
from hwnas.spaces.space import Choice, Gene, GeneValue
from hwnas.subnet_search.constraints import Constraints


class Operators:
    """AutoFormer's variation: each scalar gene (embed width, depth) is redrawn with
    `resample_prob`, each per-layer value with `mutation_prob`; crossover picks every value from
    either parent, and parents may differ in depth (a layer only one parent has comes from it).
    Genes named by a `toggled` prefix (ViT-ResNAS's skip flags) are flipped to another choice by a
    mutation instead of redrawn, as ViT-ResNAS's evolution does."""

    def __init__(
        self,
        space: SearchSpace,
        rng: random.Random,
        mutable: Collection[str],
        mutation_prob: float = 0.2,
        resample_prob: float = 0.4,
        frozen: Mapping[str, Choice] | None = None,
        toggled: Collection[str] = (),
    ):
        self.space, self.rng = space, rng
        self.mutable = set(mutable)
        self.mutation_prob, self.resample_prob = mutation_prob, resample_prob
        self.frozen = dict(frozen or {})
        self.by_name = {g.name: g for g in space.genes}
        self.sized_by = {g.name: [o for o in space.genes if o.length == g.name] for g in space.genes}
        self.toggled = {g.name for g in space.genes if any(g.name.startswith(p) for p in toggled)}

    def _arch(self, genes: dict[str, Any]) -> Arch | None:
        try:
            return self.space.arch(**genes)
        except ArchError:
            return None

    def _fill(self, gene: Gene) -> Choice:
        return self.frozen[gene.name] if gene.name in self.frozen else self.rng.choice(gene.choices)

    def _resize(self, genes: dict[str, Any], sizing: Gene, value: Choice) -> None:
        """Set a sizing gene (depth): dependent lists are truncated, or grown with fresh values."""
        genes[sizing.name] = value
        for gene in self.sized_by[sizing.name]:
            values = list(genes[gene.name])[: int(value)]
            genes[gene.name] = values + [self._fill(gene) for _ in range(int(value) - len(values))]

    # ---- variation --------------------------------------------------------------------------------
    def _flip(self, gene: Gene, value: Choice) -> Choice:
        others = [c for c in gene.choices if c != value]
        return self.rng.choice(others) if others else value

    def sample(self, base: Arch) -> Arch | None:
        """Every mutable gene redrawn uniformly: AutoFormer's per-gene sampler within `mutable`."""
        return self.mutate(base, mutation_prob=1.0, resample_prob=1.0, toggle=False)

    def mutate(
        self,
        parent: Arch,
        mutation_prob: float | None = None,
        resample_prob: float | None = None,
        toggle: bool = True,
    ) -> Arch | None:
        """Each scalar gene redrawn with `resample_prob`, each per-layer value with `mutation_prob`
        (a toggled gene's value flipped instead, unless `toggle` is False: a uniform draw)."""
        p_layer = self.mutation_prob if mutation_prob is None else mutation_prob
        p_scalar = self.resample_prob if resample_prob is None else resample_prob
        genes: dict[str, Any] = parent.genes
        for gene in self.space.genes:
            if gene.name not in self.mutable:
                continue
            flip = toggle and gene.name in self.toggled
            if not gene.is_list:
                if self.rng.random() < p_scalar:
                    value = self._flip(gene, genes[gene.name]) if flip else self.rng.choice(gene.choices)
                    if self.sized_by[gene.name]:
                        self._resize(genes, gene, value)
                    else:
                        genes[gene.name] = value
                continue
            if flip:
                genes[gene.name] = [self._flip(gene, v) if self.rng.random() < p_layer else v for v in genes[gene.name]]
                continue
            genes[gene.name] = [
                self.rng.choice(gene.choices) if self.rng.random() < p_layer else v for v in genes[gene.name]
            ]
        return self._arch(genes)

    def _prunable(self) -> list[Gene]:
        """The per-layer genes pruning steps down: mutable, not toggled, not frozen."""
        return [
            g
            for g in self.space.genes
            if g.is_list and g.name in self.mutable and g.name not in self.toggled and g.name not in self.frozen
        ]

    @staticmethod
    def _ordered(gene: Gene) -> list[Choice]:
        """A gene's choices from the smallest (as declared where they do not compare)."""
        try:
            return sorted(gene.choices)  # type: ignore[type-var]
        except TypeError:
            return list(gene.choices)

    def pruned_sample(self, base: Arch, constraints: Constraints) -> Arch | None:
        """ViT-ResNAS's initial draw (`gen_random_network_def`): the single values (widths, depth)
        and the toggled flags drawn uniformly, every other per-layer value at its largest choice,
        then pruned into the budget (`prune`)."""
        drawn = self.sample(base)
        if drawn is None:
            return None
        genes: dict[str, Any] = drawn.genes
        for gene in self._prunable():
            genes[gene.name] = [self._ordered(gene)[-1]] * len(genes[gene.name])
        top = self._arch(genes)
        return None if top is None else self.prune(top, constraints)

    def prune(self, arch: Arch, constraints: Constraints) -> Arch | None:
        """ViT-ResNAS's pruning (`reduce_constraint`): one random per-layer value at a time stepped
        down to the next smaller choice until the arch is within the budget. Every step lowers a
        value, so it ends; once no per-layer value can step down, `repair` takes over (it may move
        the single values and flags too, as the release does after 100 steps)."""
        order = {g.name: self._ordered(g) for g in self._prunable()}
        while not constraints.fits(arch):
            genes: dict[str, Any] = arch.genes
            steps = [
                (name, i) for name, ranked in order.items() for i, v in enumerate(genes[name]) if ranked.index(v) > 0
            ]
            self.rng.shuffle(steps)
            for name, i in steps:
                values = list(genes[name])
                values[i] = order[name][order[name].index(values[i]) - 1]
                child = self._arch({**genes, name: values})
                if child is not None and child != arch:
                    arch = child
                    break
            else:
                return self.repair(arch, constraints)
        return arch

    def crossover(self, a: Arch, b: Arch) -> Arch | None:
        genes: dict[str, Any] = a.genes
        for gene in self.space.genes:
            if gene.name not in self.mutable:
                continue
            if not gene.is_list:
                genes[gene.name] = self.rng.choice((a.genes[gene.name], b.genes[gene.name]))
                continue
            n = len(genes[gene.name]) if not isinstance(gene.length, str) else int(genes[gene.length])
            sources = (a.genes[gene.name], b.genes[gene.name])
            genes[gene.name] = [self.rng.choice([s[i] for s in sources if i < len(s)]) for i in range(n)]
        for gene in self.space.genes:  # a non-mutable list sized by a crossed-over depth
            if isinstance(gene.length, str) and len(genes[gene.name]) != int(genes[gene.length]):
                self._resize(genes, self.by_name[gene.length], genes[gene.length])
        return self._arch(genes)

    # ---- repair ---------------------------------------------------------------------------------------
    def neighbours(self, arch: Arch) -> Iterator[Arch]:
        """Archs that differ in one mutable value: any other choice of a scalar gene (a smaller
        depth drops the last layers, a larger one adds fresh layers) or of one layer's value."""
        current = arch.genes
        for gene in self.space.genes:
            if gene.name not in self.mutable:
                continue
            values: list[GeneValue] = list(current[gene.name]) if gene.is_list else [current[gene.name]]  # type: ignore[arg-type]
            for i, value in enumerate(values):
                for other in gene.choices:
                    if other == value:
                        continue
                    genes: dict[str, Any] = dict(current)
                    if gene.is_list:
                        genes[gene.name] = [*values[:i], other, *values[i + 1 :]]
                    elif self.sized_by[gene.name]:
                        self._resize(genes, gene, other)
                    else:
                        genes[gene.name] = other
                    child = self._arch(genes)
                    if child is not None:
                        yield child

    def repair(self, arch: Arch, constraints: Constraints) -> Arch | None:
        """Walk into the budget one value at a time, ranking every single-value move by the cost it
        saves (the budget-weighted sum of the constrained costs, from the block costs), so a
        family whose costs are not monotone in its choices is repaired as well as one whose are.
        While no move reaches the budget, a step takes one of the moves that save the most; once
        some do, it takes one of those that save the least, and so ends at the budget's edge rather
        than at the cheapest arch. Every step lowers the cost: it ends, or returns None when stuck."""
        load = constraints.load([arch])[0]
        while constraints.violation([arch])[0] > 0:
            moves = list(self.neighbours(arch))
            if not moves:
                return None
            saved = load - constraints.load(moves)
            feasible = np.flatnonzero((constraints.violation(moves) == 0) & (saved > 0))
            if feasible.size:
                pool = feasible[np.argsort(saved[feasible], kind="stable")]  # least saving first
            else:
                improving = np.flatnonzero(saved > 0)
                if improving.size == 0:
                    return None
                pool = improving[np.argsort(-saved[improving], kind="stable")]  # most saving first
            top = pool[: max(1, len(pool) // 4)]
            pick = int(top[self.rng.randrange(len(top))])
            arch, load = moves[pick], float(load - saved[pick])
        return arch

    def grow(self, arch: Arch, constraints: Constraints) -> Arch | None:
        """Walk up into the budget's lower window (`min_fraction`), the mirror of `repair`: each
        step is a single-value move that stays within the budget and lowers the shortfall; while
        no move reaches the window, one of those that lower it most, then one of those inside that
        add the least. Every step lowers the shortfall, so it ends; None when stuck below."""
        short = float(constraints.shortfall([arch])[0])
        while short > 0:
            moves = list(self.neighbours(arch))
            if not moves:
                return None
            after = constraints.shortfall(moves)
            better = np.flatnonzero((constraints.violation(moves) == 0) & (after < short))
            if better.size == 0:
                return None
            inside = better[after[better] == 0]
            if inside.size:
                pool = inside[np.argsort(constraints.load([moves[i] for i in inside]), kind="stable")]
            else:
                pool = better[np.argsort(after[better], kind="stable")]
            top = pool[: max(1, len(pool) // 4)]
            pick = int(top[self.rng.randrange(len(top))])
            arch, short = moves[pick], float(after[pick])
        return arch


def window_witness(space: SearchSpace, constraints: Constraints, tries: int = 20) -> Arch | None:
    """An arch within the budget and its lower window, or None when `tries` walks found none: the
    largest arch and random ones pruned down to the budget, then grown into the window."""
    ops = Operators(space, random.Random(0), [g.name for g in space.genes])
    start: Arch | None = space.largest()
    for _ in range(tries):
        arch = None if start is None else ops.prune(start, constraints)
        if arch is not None and constraints.shortfall([arch])[0] > 0:
            arch = ops.grow(arch, constraints)
        if arch is not None and constraints.admits(arch):
            return arch
        start = ops.sample(space.largest())
    return None
