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
    either parent, and parents may differ in depth (a layer only one parent has comes from it)."""

    def __init__(
        self,
        space: SearchSpace,
        rng: random.Random,
        mutable: Collection[str],
        mutation_prob: float = 0.2,
        resample_prob: float = 0.4,
        frozen: Mapping[str, Choice] | None = None,
    ):
        self.space, self.rng = space, rng
        self.mutable = set(mutable)
        self.mutation_prob, self.resample_prob = mutation_prob, resample_prob
        self.frozen = dict(frozen or {})
        self.by_name = {g.name: g for g in space.genes}
        self.sized_by = {g.name: [o for o in space.genes if o.length == g.name] for g in space.genes}

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
    def sample(self, base: Arch) -> Arch | None:
        """Every mutable gene redrawn uniformly: AutoFormer's per-gene sampler within `mutable`."""
        return self.mutate(base, mutation_prob=1.0, resample_prob=1.0)

    def mutate(
        self, parent: Arch, mutation_prob: float | None = None, resample_prob: float | None = None
    ) -> Arch | None:
        p_layer = self.mutation_prob if mutation_prob is None else mutation_prob
        p_scalar = self.resample_prob if resample_prob is None else resample_prob
        genes: dict[str, Any] = parent.genes
        for gene in self.space.genes:
            if gene.name not in self.mutable:
                continue
            if not gene.is_list:
                if self.rng.random() < p_scalar:
                    value = self.rng.choice(gene.choices)
                    if self.sized_by[gene.name]:
                        self._resize(genes, gene, value)
                    else:
                        genes[gene.name] = value
                continue
            genes[gene.name] = [
                self.rng.choice(gene.choices) if self.rng.random() < p_layer else v for v in genes[gene.name]
            ]
        return self._arch(genes)

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
