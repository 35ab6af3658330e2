"""The generic part of a search space: genes, validation, sampling and counting.

A space is declarative data (a YAML file: its choices and its input/output shape) plus one class
per macro-family that says how an architecture turns into blocks. Everything that only depends on
the genes (validating, sampling, extremes, counting architectures) lives here, once for all families.
"""

from __future__ import annotations

import itertools
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hwnas.errors import ArchError
from hwnas.spaces.blocks import BlockConfig

if TYPE_CHECKING:
    from hwnas.spaces.arch import Arch

Choice = int | float
GeneValue = Choice | tuple[Choice, ...]
Seed = int | random.Random | None

# Parameters of a space instance that a user may override (`get_space(name, img_size=384)`).
SHAPE_FIELDS = ("img_size", "patch_size", "in_chans", "num_classes")


@dataclass(frozen=True)
class Gene:
    """One searchable dimension. `length` is None for a single value, an int for a fixed number of
    values (one per stage, say), or the name of the gene whose value gives the count (`"depth"`)."""

    name: str
    choices: tuple[Choice, ...]
    length: int | str | None = None

    @property
    def is_list(self) -> bool:
        return self.length is not None


@dataclass(frozen=True)
class SpaceSpec:
    """A space's declaration as read from its YAML file (plus any user overrides)."""

    name: str
    family: str
    description: str
    img_size: int
    patch_size: int
    in_chans: int
    num_classes: int
    choices: Mapping[str, tuple[Choice, ...]]
    options: Mapping[str, Any] = field(default_factory=dict)  # family-specific, e.g. head_dim
    overrides: Mapping[str, int] = field(default_factory=dict)  # which shape fields the user changed


class SearchSpace(ABC):
    """A family of ViT architectures. Subclasses declare their genes and how an arch maps to blocks."""

    family: str = ""

    def __init__(self, spec: SpaceSpec):
        self.spec = spec
        self.genes: tuple[Gene, ...] = self.declare_genes(spec)
        self._genes_by_name = {g.name: g for g in self.genes}

    # ---- what a family provides -------------------------------------------------------------
    @classmethod
    @abstractmethod
    def declare_genes(cls, spec: SpaceSpec) -> tuple[Gene, ...]:
        """The genes in canonical order; genes that give a length come before the genes they size."""

    @abstractmethod
    def arch_blocks(self, arch: Arch) -> list[BlockConfig]:
        """The blocks the arch runs, in order, fixed parts included."""

    @abstractmethod
    def block_configs(self) -> list[BlockConfig]:
        """Every distinct block configuration any arch of this space can produce, sorted."""

    def block_indexer(self, index: Mapping[BlockConfig, int]) -> Callable[[Arch], list[int]]:
        """A function giving an arch's blocks as positions in `index` (a latency table's rows).

        Latency prediction calls it once per arch, so families override it with a lookup keyed by
        genes that skips building `BlockConfig`s; this default is correct but slower."""
        return lambda arch: [index[b] for b in self.arch_blocks(arch)]

    def canonicalize(self, genes: dict[str, GeneValue]) -> dict[str, GeneValue]:
        """Map encodings that compute the same function to one (identity shifting). Default: as is."""
        return genes

    # Genes a hierarchical search (GLiT) evolves first, with the other ("low-level") genes fixed.
    # Empty: the space has no such split and hierarchical search falls back to plain evolution.
    high_level_genes: tuple[str, ...] = ()

    def extreme_arch(self, block_cost: Callable[[BlockConfig], float], costliest: bool = False) -> Arch:
        """The arch with the lowest (or highest) sum of `block_cost` over its blocks.

        Search uses it to find the minimum achievable latency, FLOPs or params before evaluating
        anything. This default is `smallest()` / `largest()`, exact only when every cost grows with
        every gene; families whose blocks are chosen independently override it with an exact search."""
        return self.largest() if costliest else self.smallest()

    # ---- identity --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def key(self) -> str:
        """The name, plus any shape overrides: two spaces with equal keys build equal networks."""
        if not self.spec.overrides:
            return self.name
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.spec.overrides.items()))
        return f"{self.name}[{extra}]"

    @property
    def num_patches(self) -> int:
        return (self.spec.img_size // self.spec.patch_size) ** 2

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    # ---- building and checking archs -----------------------------------------------------------
    def arch(self, **genes: Any) -> Arch:
        """Build and validate an arch of this space: `space.arch(embed_dim=192, depth=12, ...)`."""
        from hwnas.spaces.arch import Arch

        return Arch(self, genes)

    def validate(self, genes: Mapping[str, Any]) -> dict[str, GeneValue]:
        """Check genes against the space and return them normalised (tuples, exact choice values)."""
        if not isinstance(genes, Mapping):
            raise ArchError(f"{self.key} arch: expected a mapping of fields, got {type(genes).__name__}")
        unknown = [k for k in genes if k not in self._genes_by_name]
        if unknown:
            raise ArchError(
                f"{self.key} arch: unknown field {unknown[0]!r}; "
                f"this space's fields are {', '.join(self._genes_by_name)}"
            )
        missing = [g.name for g in self.genes if g.name not in genes]
        if missing:
            gene = self._genes_by_name[missing[0]]
            how = "a list, one per layer, of" if gene.is_list else "one of"
            raise ArchError(f"{self.key} arch: missing field {gene.name!r}; give {how} {self._choices_text(gene.name)}")
        out: dict[str, GeneValue] = {}
        for gene in self.genes:
            value = genes[gene.name]
            if not gene.is_list:
                out[gene.name] = self._check_choice(gene, gene.name, value)
                continue
            n = self._length(gene, out)
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ArchError(f"{self.key} arch: field {gene.name!r} must be a list of {n} values, got {value!r}")
            if len(value) != n:
                why = f"{gene.length} is {n}" if isinstance(gene.length, str) else f"the space has {n}"
                raise ArchError(
                    f"{self.key} arch: field {gene.name!r} has {len(value)} entries but {why}; give one per layer"
                )
            out[gene.name] = tuple(self._check_choice(gene, f"{gene.name}[{i}]", v) for i, v in enumerate(value))
        return self.canonicalize(out)

    def _check_choice(self, gene: Gene, where: str, value: Any) -> Choice:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            for choice in gene.choices:
                if math.isclose(value, choice, rel_tol=0, abs_tol=1e-9):
                    return choice
        raise ArchError(f"{self.key} arch: field {where} = {value!r} is not a choice; choose from {self._choices_text(gene.name)}")

    def _choices_text(self, name: str) -> str:
        return ", ".join(str(c) for c in self._genes_by_name[name].choices)

    def _length(self, gene: Gene, resolved: Mapping[str, GeneValue]) -> int:
        if gene.length is None:
            return 1
        if isinstance(gene.length, int):
            return gene.length
        return int(resolved[gene.length])  # type: ignore[arg-type]

    # ---- sampling and extremes -----------------------------------------------------------------
    def sample(self, seed: Seed = None) -> Arch:
        """A random arch: every gene (and every layer's value) drawn uniformly from its choices.

        With depth as a gene this is AutoFormer's sampler (depth first, then each layer), which is
        uniform per gene, not uniform over the (depth-weighted) set of distinct archs."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        return self._build(lambda gene: rng.choice(gene.choices))

    def largest(self) -> Arch:
        """The arch with every gene at its largest choice (the supernet's own size)."""
        return self._build(lambda gene: max(gene.choices))

    def smallest(self) -> Arch:
        """The arch with every gene at its smallest choice."""
        return self._build(lambda gene: min(gene.choices))

    def _build(self, pick: Any) -> Arch:
        genes: dict[str, GeneValue] = {}
        for gene in self.genes:
            if gene.is_list:
                genes[gene.name] = tuple(pick(gene) for _ in range(self._length(gene, genes)))
            else:
                genes[gene.name] = pick(gene)
        return self.arch(**genes)

    # ---- size ----------------------------------------------------------------------------------
    def _sizings(self) -> list[tuple[dict[str, GeneValue], int]]:
        """Each combination of the genes that size others (depth), with its number of archs."""
        sizing = [g for g in self.genes if any(o.length == g.name for o in self.genes)]
        out = []
        for combo in itertools.product(*(g.choices for g in sizing)):
            resolved: dict[str, GeneValue] = {g.name: v for g, v in zip(sizing, combo)}
            count = 1
            for gene in self.genes:
                if gene.name not in resolved:
                    count *= len(gene.choices) ** self._length(gene, resolved)
            out.append((resolved, count))
        return out

    def num_archs(self) -> int:
        """Number of distinct architectures (exact; canonicalising families override this)."""
        return sum(count for _, count in self._sizings())

    def sample_distinct(self, seed: Seed = None) -> Arch:
        """A random arch drawn uniformly over distinct archs: the sizing genes (depth) are drawn in
        proportion to how many archs each value has, then every other gene uniformly."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        sizings = self._sizings()
        resolved, _ = rng.choices(sizings, weights=[count for _, count in sizings])[0]
        return self._build(lambda gene: resolved[gene.name] if gene.name in resolved else rng.choice(gene.choices))

    def middle(self) -> Arch:
        """The arch with every gene at its middle choice (the lower one of an even count)."""
        return self._build(lambda gene: sorted(gene.choices)[(len(gene.choices) - 1) // 2])

    def describe(self) -> dict[str, Any]:
        """What `hwnas spaces` shows: shape, choices, size and the cost range."""
        small, large = self.smallest(), self.largest()
        return {
            "name": self.key,
            "family": self.family,
            "description": self.spec.description,
            "img_size": self.spec.img_size,
            "patch_size": self.spec.patch_size,
            "in_chans": self.spec.in_chans,
            "num_classes": self.spec.num_classes,
            "choices": {name: list(choices) for name, choices in self.spec.choices.items()},
            "num_archs": self.num_archs(),
            "num_block_configs": len(self.block_configs()),
            "params_m": [small.params() / 1e6, large.params() / 1e6],
            "gmacs": [small.macs() / 1e9, large.macs() / 1e9],
        }
