"""ViTAS's DeiT-style space: a fixed number of layer slots, each an encoder block (heads, MLP
ratio) or an identity, under one embed width.

Identity shifting (ViTAS): networks that differ only in where their identities sit compute the same
function once identities are moved to the end, so canonicalisation does exactly that. Such archs
share one encoding, one digest and (as the k-th active layer always uses supernet block k) one set
of weights; `sample_distinct` and `num_archs` count each of them once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hwnas.errors import ArchError
from hwnas.families.autoformer.space import AutoFormerSpace
from hwnas.spaces.space import Gene, GeneValue, Seed, SpaceSpec

if TYPE_CHECKING:
    from hwnas.spaces.arch import Arch

IDENTITY = 0  # the `num_heads` value of a skipped layer slot


class ViTASSpace(AutoFormerSpace):
    """Genes: `embed_dim`, and per slot `num_heads` (0 = identity) and `mlp_ratio`. YAML options:
    `layers` (slots) and `min_layers` (fewest non-identity layers)."""

    family = "vitas"
    high_level_genes = ()  # depth lives in the per-slot identity choice: no gene-wise high/low split
    # identity shifting maps many slot patterns to one arch: per-slot draws would favour middle
    # depths by their number of patterns, so training draws distinct archs
    default_sampling = "distinct"

    @classmethod
    def declare_genes(cls, spec: SpaceSpec) -> tuple[Gene, ...]:
        c, slots = spec.choices, int(spec.options["layers"])
        return (
            Gene("embed_dim", c["embed_dim"]),
            Gene("num_heads", (IDENTITY, *c["num_heads"]), length=slots),
            Gene("mlp_ratio", c["mlp_ratio"], length=slots),
        )

    @property
    def max_layers(self) -> int:
        return int(self.spec.options["layers"])

    @property
    def min_layers(self) -> int:
        return int(self.spec.options.get("min_layers", 1))

    def depths(self) -> list[int]:
        return list(range(self.min_layers, self.max_layers + 1))

    def layers(self, arch: Arch) -> list[tuple[int, float]]:
        return [(h, r) for h, r in zip(arch.num_heads, arch.mlp_ratio) if h != IDENTITY]

    def canonicalize(self, genes: dict[str, GeneValue]) -> dict[str, GeneValue]:
        active = [(h, r) for h, r in zip(genes["num_heads"], genes["mlp_ratio"]) if h != IDENTITY]  # type: ignore[call-overload]
        if len(active) < self.min_layers:
            raise ArchError(
                f"{self.key} arch has {len(active)} non-identity layers; it needs at least {self.min_layers}"
            )
        idle = [(IDENTITY, min(self.spec.choices["mlp_ratio"]))] * (self.max_layers - len(active))
        heads, ratios = zip(*(active + idle))
        return {**genes, "num_heads": tuple(heads), "mlp_ratio": tuple(ratios)}

    # ---- counting and drawing distinct archs -----------------------------------------------------
    def _per_layer(self) -> int:
        return len(self.spec.choices["num_heads"]) * len(self.spec.choices["mlp_ratio"])

    def num_archs(self) -> int:
        return len(self.spec.choices["embed_dim"]) * sum(self._per_layer() ** k for k in self.depths())

    def with_layers(self, embed_dim: int, layers: Sequence[tuple[int, float]]) -> Arch:
        """The arch running `layers` ((heads, ratio) each), the remaining slots identities."""
        idle = [(IDENTITY, min(self.spec.choices["mlp_ratio"]))] * (self.max_layers - len(layers))
        heads, ratios = zip(*(list(layers) + idle))
        return self.arch(embed_dim=embed_dim, num_heads=list(heads), mlp_ratio=list(ratios))

    def sample_distinct(self, seed: Seed = None) -> Arch:
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        c = self.spec.choices
        depths = self.depths()
        k = rng.choices(depths, weights=[self._per_layer() ** d for d in depths])[0]
        layers = [(rng.choice(c["num_heads"]), rng.choice(c["mlp_ratio"])) for _ in range(k)]
        return self.with_layers(rng.choice(c["embed_dim"]), layers)

    def _uniform(self, pick: Callable[[list[Any]], Any], k: int) -> Arch:
        """k active layers, every gene at `pick` of its sorted choices."""
        c = self.spec.choices
        at = lambda name: pick(sorted(c[name]))  # noqa: E731
        return self.with_layers(at("embed_dim"), [(at("num_heads"), at("mlp_ratio"))] * k)

    def largest(self) -> Arch:
        return self._uniform(lambda v: v[-1], self.max_layers)

    def smallest(self) -> Arch:
        return self._uniform(lambda v: v[0], self.min_layers)

    def middle(self) -> Arch:
        return self._uniform(lambda v: v[(len(v) - 1) // 2], (self.min_layers + self.max_layers) // 2)
