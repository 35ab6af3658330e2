"""The generic part of a search space: genes, validation, sampling and counting.

A space is declarative data (a YAML file: its choices and its input/output shape) plus one class
per macro-family that says how an architecture turns into blocks. Everything that only depends on
the genes (validating, sampling, extremes, counting architectures) lives here, once for all families.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from hwnas.errors import ArchError, SpaceError
from hwnas.spaces.blocks import BlockConfig

if TYPE_CHECKING:
    from hwnas.spaces.arch import Arch

Choice = int | float
GeneValue = Choice | tuple[Choice, ...]
Seed = int | random.Random | None

# Parameters of a space instance that a user may override (`get_space(name, img_size=384)`).
SHAPE_FIELDS = ("img_size", "patch_size", "in_chans", "num_classes")
SAMPLE_TRIES = 1000  # draws `sample` makes before a family's rules refusing every one is an error
SPREAD_TRIES = 32  # draws `sample_spread` makes from the values left before drawing from all choices


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

    def to_dict(self) -> dict[str, Any]:
        """The whole declaration as plain data: runs, exports and measuring jobs carry it, so the
        space is rebuilt from it without its YAML file."""
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            **{k: getattr(self, k) for k in SHAPE_FIELDS},
            "choices": {k: list(v) for k, v in self.choices.items()},
            "options": dict(self.options),
            "overrides": dict(self.overrides),
        }

    def content(self) -> dict[str, Any]:
        """What makes two spaces the same: family, shape, choices and options (not the name)."""
        d = self.to_dict()
        return {k: d[k] for k in ("family", *SHAPE_FIELDS, "choices", "options")}


@dataclass(frozen=True)
class Frame:
    """Archs that share their fixed blocks and differ in independent slots, each slot running one of
    its options (the blocks that option adds; none for a skipped slot). `build` turns one option
    index per slot into the arch. Every arch of a space lies in one of its frames, so a question
    about sums of block costs (is there an arch within several budgets at once?) is answered
    exactly frame by frame, slot by slot (`hwnas.subnet_search.feasibility`)."""

    fixed: tuple[BlockConfig, ...]
    slots: tuple[tuple[tuple[BlockConfig, ...], ...], ...]
    build: Callable[[Sequence[int]], Arch]


def spec_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """The first field in which two space declarations (`SpaceSpec.to_dict()`) differ in content,
    as 'field: a vs b' (None when they are the same space)."""
    for key in ("family", *SHAPE_FIELDS, "choices", "options"):
        x, y = a.get(key), b.get(key)
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            for sub in sorted(set(x) | set(y)):
                if _canon(x.get(sub)) != _canon(y.get(sub)):
                    return f"{key}.{sub}: {x.get(sub, 'absent')} vs {y.get(sub, 'absent')}"
        elif _canon(x) != _canon(y):
            return f"{key}: {x} vs {y}"
    return None


def _canon(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = sorted(value)
    return json.dumps(value, sort_keys=True, default=str)


class SearchSpace(ABC):
    """A family of ViT architectures. Subclasses declare their genes and how an arch maps to blocks."""

    family: str = ""
    # How training draws random subnets by default: `uniform` per gene, depth first (AutoFormer's
    # sampler, `sample`), or `distinct`, uniform over distinct archs (`sample_distinct`).
    default_sampling: str = "uniform"

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

    def frames(self) -> Iterator[Frame]:
        """The space as frames of independent slots (see `Frame`): what makes a search's check of
        budgets on several costs at once exact. A family that does not give them gets a check of
        a few cheapest archs only, and says so."""
        raise NotImplementedError(f"the {self.family} family does not describe its space as frames")

    def uniform_archs(self) -> list[Arch]:
        """Hand-designed baselines (every layer alike) that searched subnets are compared with;
        empty for a family that has none."""
        return []

    # Genes a hierarchical search (GLiT) evolves first, with the other ("low-level") genes fixed.
    # Empty: the space has no such split and hierarchical search falls back to plain evolution.
    high_level_genes: tuple[str, ...] = ()

    def extreme_arch(self, block_cost: Callable[[BlockConfig], float], costliest: bool = False) -> Arch:
        """The arch with the lowest (or highest) sum of `block_cost` over its blocks.

        Search uses it to find the minimum achievable latency, FLOPs or params before evaluating
        anything, so it must not assume that a smaller choice costs less (a latency table need not
        be monotone). This default is exact for spaces whose every layer slot (the i-th value of
        the per-layer genes of one length) decides its own blocks given the scalar genes: for each
        combination of scalar genes it picks each slot's cheapest (costliest) values with the
        others held, and returns the best combination. Work: scalar combinations x slots x values
        per slot archs costed. A family whose rules couple slots overrides it."""
        pick = max if costliest else min
        scalars = [g for g in self.genes if not g.is_list]
        slot_groups: dict[Any, list[Gene]] = {}
        for gene in self.genes:
            if gene.is_list:
                slot_groups.setdefault(gene.length, []).append(gene)

        def cost(arch: Arch) -> float:
            return sum(block_cost(b) for b in self.arch_blocks(arch))

        best: tuple[float, Arch] | None = None
        for combo in itertools.product(*(g.choices for g in scalars)):
            resolved: dict[str, GeneValue] = dict(zip((g.name for g in scalars), combo))
            genes: dict[str, Any] = dict(resolved)
            for gene in self.genes:
                if gene.is_list:
                    genes[gene.name] = [gene.choices[0]] * self._length(gene, resolved)
            for group in slot_groups.values():
                for i in range(len(genes[group[0].name])):
                    options = []
                    for values in itertools.product(*(g.choices for g in group)):
                        trial = {
                            **genes,
                            **{g.name: [*genes[g.name][:i], v, *genes[g.name][i + 1 :]] for g, v in zip(group, values)},
                        }
                        try:
                            options.append((cost(self.arch(**trial)), trial))
                        except ArchError:
                            continue
                    if options:
                        genes = pick(options, key=lambda o: o[0])[1]
            try:
                arch = self.arch(**genes)
            except ArchError:
                continue
            total = cost(arch)
            if best is None or (total > best[0] if costliest else total < best[0]):
                best = (total, arch)
        if best is None:
            raise ArchError(f"{self.key}: no arch could be built while looking for the extreme arch")
        return best[1]

    # ---- identity --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def key(self) -> str:
        """The name, plus any shape overrides: what messages and file names call the space."""
        if not self.spec.overrides:
            return self.name
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.spec.overrides.items()))
        return f"{self.name}[{extra}]"

    @cached_property
    def digest(self) -> str:
        """A hash (16 hex digits) of the space's content: its identity. Two YAML files that share a
        name but not their choices are different spaces; the same content under two names is one."""
        text = json.dumps(self.spec.content(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def ref(self) -> str:
        """`key@digest`: how tables, calibrations, checkpoints and searches record the space."""
        return f"{self.key}@{self.digest[:8]}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

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
        raise ArchError(
            f"{self.key} arch: field {where} = {value!r} is not a choice; choose from {self._choices_text(gene.name)}"
        )

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
        uniform per gene, not uniform over the (depth-weighted) set of distinct archs. A draw the
        family's rules refuse (too few active layers, shrinking stage widths) is drawn again."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        return self._redraw_refused(lambda: self._build(lambda gene: rng.choice(gene.choices)))

    def _drawable(self, gene: Gene) -> Sequence[Choice]:
        """The values a training draw may give `gene`: all its choices (a warm-up restricts them)."""
        return gene.choices

    def _drawn_arch(self, **genes: GeneValue) -> Arch:
        """The arch a training draw of these genes gives (a warm-up's draws are the full space's)."""
        return self.arch(**genes)

    def sample_spread(self, count: int, seed: Seed = None) -> list[Arch]:
        """`count` archs drawn one after the other, each as `sample` draws one but from the values
        the archs before it left: at every gene (every layer's value) they take distinct values while
        `count` is at most the number of choices, and otherwise each value `count // n` or
        `count // n + 1` times (a value returns once all have been taken). Independent draws would
        train a width twice in a step while another waits (ViT-ResNAS gives one GPU's subnets
        distinct widths the same way). The first arch is a plain `sample`; an arch the family's
        rules refuse `SPREAD_TRIES` times from the values left (shrinking stage widths, say) is
        drawn from all choices instead."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        left: dict[tuple[str, int], list[Choice]] = {}  # each (gene, layer)'s values not taken in this round

        def draw(spread: bool) -> tuple[Arch, dict[tuple[str, int], Choice]]:
            genes: dict[str, GeneValue] = {}
            drawn: dict[tuple[str, int], Choice] = {}
            for gene in self.genes:
                values = []
                for i in range(self._length(gene, genes)):
                    drawn[gene.name, i] = rng.choice(
                        (left.get((gene.name, i)) if spread else None) or self._drawable(gene)
                    )
                    values.append(drawn[gene.name, i])
                genes[gene.name] = tuple(values) if gene.is_list else values[0]
            return self._drawn_arch(**genes), drawn

        def accepted(spread: bool, tries: int) -> tuple[Arch, dict[tuple[str, int], Choice]]:
            for _ in range(tries - 1):
                try:
                    return draw(spread)
                except ArchError:
                    continue
            return draw(spread)  # its refusal says why

        archs = []
        for _ in range(count):
            try:
                arch, drawn = accepted(True, SPREAD_TRIES)
            except ArchError:
                arch, drawn = accepted(False, SAMPLE_TRIES)
            for (name, i), value in drawn.items():  # taken: out of its round (one drawn from all may be out already)
                pool = list(left.get((name, i)) or self._drawable(self._genes_by_name[name]))
                if value in pool:
                    pool.remove(value)
                left[name, i] = pool
            archs.append(arch)
        return archs

    @staticmethod
    def _redraw_refused(draw: Callable[[], Arch]) -> Arch:
        """`draw()` again while the family's rules refuse its arch (`SAMPLE_TRIES` at most; the last
        try's refusal says why)."""
        for _ in range(SAMPLE_TRIES - 1):
            try:
                return draw()
            except ArchError:
                continue
        return draw()

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

    def per_block_high_level_genes(self) -> tuple[Gene, ...]:
        """The high-level genes that take a value per block (GLiT's G); `sample_alike` unifies them."""
        return tuple(g for g in self.genes if g.name in self.high_level_genes and g.is_list)

    def sample_alike(self, seed: Seed = None) -> Arch:
        """A random arch whose per-block high-level genes take one value in every block (GLiT: one
        G throughout), the other genes drawn uniformly per block. Uniform draws reach such a chain
        once in choices^depth; training draws them on purpose (`TrainConfig.alike_share`)."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        alike = self.per_block_high_level_genes()
        if not alike:
            raise SpaceError(f"{self.key} has no per-block high-level genes to draw alike")

        def draw() -> Arch:  # refused when a low-level value has no meaning for the drawn high-level one
            values = {g.name: rng.choice(g.choices) for g in alike}
            return self._build(lambda gene: values[gene.name] if gene.name in values else rng.choice(gene.choices))

        return self._redraw_refused(draw)

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
