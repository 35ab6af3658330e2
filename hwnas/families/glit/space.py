"""GLiT's global/local space (Chen et al., ICCV 2021; bychen515/GLiT, `glit_models.py`).

A single-stage ViT of fixed width and depth whose every block splits its channels between global
self-attention heads and a convolutional locality module (`model.py`). Per block two genes:

- `global_heads` (GLiT's `base_arch`): G, how many of the 3 head units are global attention; the
  first C*G/3 channels go to attention, the last C*(3-G)/3 to the locality module;
- `low_level` (GLiT's `arch`): an index whose meaning depends on G, row-major over two option lists
  as the release enumerates them: G = 0 (kernel, local expansion e_c); G = 3 (attention expansion
  e_v, MLP ratio); G = 1, 2 (local expansion e_c, MLP ratio) with the mixed kernel and e_v = 1.
  A pure-local block's MLP ratio is the space's `local_mlp_ratio` (the release's model default).

Arch files may use GLiT's own names (`base_arch`, `arch`). Costs are not monotone in G (a local
branch with a 45-tap kernel and e_c = 4 outweighs an attention head on few tokens), so nothing here
assumes an order; the generic `extreme_arch` is exact because each block decides its own cost.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwnas.errors import ArchError, SpaceError
from hwnas.spaces.blocks import BlockConfig
from hwnas.spaces.space import Frame, Gene, GeneValue, SearchSpace, Seed, SpaceSpec

if TYPE_CHECKING:
    from hwnas.spaces.arch import Arch

UNITS = 3  # head units per block (GLiT: G global + (3 - G) local)
GLIT_NAMES = {"base_arch": "global_heads", "arch": "low_level"}  # GLiT's names for our genes


@dataclass(frozen=True)
class Layer:
    """What one block runs, in channels: attention on the first `global_dim` channels (`num_heads`
    heads, `qkv_dim` wide), the locality module on the rest (`local_hidden` wide, `kernel` taps)."""

    global_dim: int
    num_heads: int
    qkv_dim: int
    local_hidden: int
    kernel: int
    mlp_hidden: int

    @property
    def head_dim(self) -> int:
        return self.qkv_dim // self.num_heads if self.num_heads else 0


class GLiTSpace(SearchSpace):
    """YAML options: `embed_dim`, `depth`, `num_heads` (a multiple of 3: heads per unit x 3), the
    option lists `local_kernel`, `local_expansion`, `attn_expansion`, `mlp_ratio`, and the scalars
    `mixed_kernel` and `local_mlp_ratio`; choices: `global_heads` (a subset of 0..3)."""

    family = "glit"
    high_level_genes = ("global_heads",)

    @classmethod
    def declare_genes(cls, spec: SpaceSpec) -> tuple[Gene, ...]:
        o, where = spec.options, f"space {spec.name}"
        dim, depth, heads = int(o["embed_dim"]), int(o["depth"]), int(o["num_heads"])
        if dim % UNITS or heads % UNITS or dim % heads:
            raise SpaceError(
                f"{where}: embed_dim {dim} and num_heads {heads} must be multiples of {UNITS} (the head "
                f"units) and embed_dim a multiple of num_heads"
            )
        kernels = [int(k) for k in o["local_kernel"]] + [int(o["mixed_kernel"])]
        if any(k % 2 == 0 or k < 1 for k in kernels):
            raise SpaceError(f"{where}: kernel sizes must be odd (same padding), got {kernels}")
        for e in (*o["attn_expansion"], 1):
            if (dim // heads * e) % 1:
                raise SpaceError(
                    f"{where}: attn_expansion {e} gives a head width of {dim // heads * e}; pick "
                    f"expansions that keep it whole"
                )
        bad = [g for g in spec.choices["global_heads"] if g not in range(UNITS + 1)]
        if bad:
            raise SpaceError(f"{where}: global_heads {bad[0]} is not in 0..{UNITS}")
        low = max(len(cls._options(spec, g)[0]) * len(cls._options(spec, g)[1]) for g in range(UNITS + 1))
        return (
            Gene("global_heads", spec.choices["global_heads"], length=depth),
            Gene("low_level", tuple(range(low)), length=depth),
        )

    @staticmethod
    def _options(spec: SpaceSpec, g: int) -> tuple[list[Any], list[Any]]:
        """The two option lists the low-level index of a block with `g` global units enumerates."""
        o = spec.options
        if g == 0:
            return sorted(o["local_kernel"]), sorted(o["local_expansion"])
        if g == UNITS:
            return sorted(o["attn_expansion"]), sorted(o["mlp_ratio"])
        return sorted(o["local_expansion"]), sorted(o["mlp_ratio"])

    # ---- shape ---------------------------------------------------------------------------------
    @property
    def embed_dim(self) -> int:
        return int(self.spec.options["embed_dim"])

    @property
    def depth(self) -> int:
        return int(self.spec.options["depth"])

    @property
    def num_heads(self) -> int:
        return int(self.spec.options["num_heads"])

    @property
    def num_tokens(self) -> int:
        return (self.spec.img_size // self.spec.patch_size) ** 2 + 1

    def low_level_count(self, g: int) -> int:
        a, b = self._options(self.spec, g)
        return len(a) * len(b)

    def layer(self, g: int, index: int) -> Layer:
        """The block of `g` global units and low-level choice `index`."""
        a, b = self._options(self.spec, g)
        first, second = a[index // len(b)], b[index % len(b)]
        o, dim = self.spec.options, self.embed_dim
        global_dim, local_dim = dim * g // UNITS, dim * (UNITS - g) // UNITS
        if g == 0:
            kernel, e_c, e_v, ratio = int(first), second, 1, o["local_mlp_ratio"]
        elif g == UNITS:
            kernel, e_c, e_v, ratio = 0, 0, first, second
        else:
            kernel, e_c, e_v, ratio = int(o["mixed_kernel"]), first, 1, second
        heads = self.num_heads * g // UNITS
        return Layer(
            global_dim, heads, int(global_dim * e_v), int(local_dim * e_c), kernel if local_dim else 0, int(dim * ratio)
        )

    def layers(self, arch: Arch) -> list[Layer]:
        return [self.layer(int(g), int(i)) for g, i in zip(arch.global_heads, arch.low_level)]

    # ---- validation ----------------------------------------------------------------------------
    def validate(self, genes: Mapping[str, Any]) -> dict[str, GeneValue]:
        """Accept GLiT's names (`base_arch`, `arch`) for our genes."""
        if isinstance(genes, Mapping):
            twice = [ours for theirs, ours in GLIT_NAMES.items() if theirs in genes and ours in genes]
            if twice:
                raise ArchError(f"{self.key} arch: {twice[0]!r} is given twice (also as GLiT's name); keep one")
            genes = {GLIT_NAMES.get(k, k): v for k, v in genes.items()}
        return super().validate(genes)

    def canonicalize(self, genes: dict[str, GeneValue]) -> dict[str, GeneValue]:
        """A low-level index must exist for its block's G (all have 9 in GLiT's spaces)."""
        for i, (g, index) in enumerate(zip(genes["global_heads"], genes["low_level"])):  # type: ignore[arg-type]
            count = self.low_level_count(int(g))
            if index >= count:
                raise ArchError(
                    f"{self.key} arch: field low_level[{i}] = {index} has no meaning for global_heads[{i}] "
                    f"= {g}; choose from 0..{count - 1}"
                )
        return genes

    # ---- counting and sampling -------------------------------------------------------------------
    def block_choices(self) -> list[tuple[int, int]]:
        """Every (G, low-level index) pair a block may take."""
        return [(int(g), i) for g in self.spec.choices["global_heads"] for i in range(self.low_level_count(int(g)))]

    def num_archs(self) -> int:
        return len(self.block_choices()) ** self.depth

    def sample_distinct(self, seed: Seed = None) -> Arch:
        """Uniform over distinct archs: each block uniform over its (G, low-level) pairs."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        pairs = [rng.choice(self.block_choices()) for _ in range(self.depth)]
        return self.arch(global_heads=[g for g, _ in pairs], low_level=[i for _, i in pairs])

    def uniform(self, g: int, index: int | None = None) -> Arch:
        """Every block with `g` global units and low-level choice `index` (default: the middle one)."""
        index = (self.low_level_count(g) - 1) // 2 if index is None else index
        return self.arch(global_heads=[g] * self.depth, low_level=[index] * self.depth)

    def uniform_archs(self) -> list[Arch]:
        """Hand designs to compare searched subnets with: every block alike, at each G the space
        allows, with its middle low-level choice (G = 3 is DeiT with e_v = 1 and MLP ratio 4)."""
        return [self.uniform(int(g)) for g in self.spec.choices["global_heads"]]

    def frames(self) -> Iterator[Frame]:
        """One frame: stem and head fixed, one slot per block over its (G, low-level) pairs."""
        pairs = self.block_choices()
        options = tuple((self.block(self.layer(*p)),) for p in pairs)

        def build(picks: Sequence[int]) -> Arch:
            return self.arch(global_heads=[pairs[p][0] for p in picks], low_level=[pairs[p][1] for p in picks])

        yield Frame((self.stem_block(), self.head_block()), (options,) * self.depth, build)

    def _extreme_layer(self, pick: Callable[..., Any]) -> Arch:
        """All blocks alike at the pair `pick` chooses by MACs (for `largest` / `smallest`)."""
        g, i = pick(self.block_choices(), key=lambda p: self.block(self.layer(*p)).macs())
        return self.arch(global_heads=[g] * self.depth, low_level=[i] * self.depth)

    def largest(self) -> Arch:
        """Every block at its most MACs (costs are not monotone in the genes, so this is not the
        largest gene values)."""
        return self._extreme_layer(max)

    def smallest(self) -> Arch:
        return self._extreme_layer(min)

    def middle(self) -> Arch:
        """Every block at the middle G (the lower of two) and the middle low-level choice."""
        choices = sorted(int(g) for g in self.spec.choices["global_heads"])
        return self.uniform(choices[(len(choices) - 1) // 2])

    # ---- blocks --------------------------------------------------------------------------------
    def stem_block(self) -> BlockConfig:
        s = self.spec
        return BlockConfig.of(
            "patch_embed",
            tokens=self.num_tokens,
            in_dim=s.in_chans,
            out_dim=self.embed_dim,
            patch_size=s.patch_size,
            in_chans=s.in_chans,
        )

    def block(self, layer: Layer) -> BlockConfig:
        """A pure-global block is a plain ViT encoder block (the `encoder` kind, rows shared with the
        other families); any block with a locality module is a `glit` block."""
        t, d = self.num_tokens, self.embed_dim
        if not layer.local_hidden:
            return BlockConfig.of(
                "encoder",
                tokens=t,
                in_dim=d,
                out_dim=d,
                num_heads=layer.num_heads,
                qkv_dim=layer.qkv_dim,
                mlp_hidden=layer.mlp_hidden,
            )
        return BlockConfig.of(
            "glit",
            tokens=t,
            in_dim=d,
            global_dim=layer.global_dim,
            num_heads=layer.num_heads,
            qkv_dim=layer.qkv_dim,
            local_hidden=layer.local_hidden,
            kernel=layer.kernel,
            mlp_hidden=layer.mlp_hidden,
        )

    def head_block(self) -> BlockConfig:
        return BlockConfig.of(
            "head",
            tokens=self.num_tokens,
            in_dim=self.embed_dim,
            out_dim=self.spec.num_classes,
            num_classes=self.spec.num_classes,
        )

    def arch_blocks(self, arch: Arch) -> list[BlockConfig]:
        return [self.stem_block(), *(self.block(layer) for layer in self.layers(arch)), self.head_block()]

    def block_configs(self) -> list[BlockConfig]:
        return sorted(
            {self.stem_block(), self.head_block(), *(self.block(self.layer(*p)) for p in self.block_choices())}
        )

    def block_indexer(self, index: Mapping[BlockConfig, int]) -> Callable[[Arch], list[int]]:
        """Lookups keyed by (G, low-level index) (prediction calls this once per arch)."""
        rows = {p: index[self.block(self.layer(*p))] for p in self.block_choices()}
        stem, head = index[self.stem_block()], index[self.head_block()]
        return lambda arch: [stem, *(rows[g, i] for g, i in zip(arch.global_heads, arch.low_level)), head]
