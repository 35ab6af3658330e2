"""AutoFormer's single-stage space: one embed width for all layers; per layer heads and MLP ratio."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from hwnas.spaces.blocks import BlockConfig
from hwnas.spaces.space import Frame, Gene, SearchSpace, SpaceSpec

if TYPE_CHECKING:
    from hwnas.spaces.arch import Arch


def mlp_hidden(embed_dim: int, mlp_ratio: float) -> int:
    """MLP hidden width as timm computes it (`int(dim * mlp_ratio)`), so extraction matches timm."""
    return int(embed_dim * mlp_ratio)


class AutoFormerSpace(SearchSpace):
    """Genes: `embed_dim`, `depth`, and per layer `num_heads` and `mlp_ratio`.

    Attention uses a fixed head width (`head_dim`, 64 in AutoFormer), so qkv width = heads x head_dim
    and need not equal the embed width. Depth keeps the first `depth` layers of the supernet.
    """

    family = "autoformer"
    high_level_genes = ("embed_dim", "depth")  # macro shape first, then per-layer heads and MLP ratio

    @classmethod
    def declare_genes(cls, spec: SpaceSpec) -> tuple[Gene, ...]:
        c = spec.choices
        return (
            Gene("embed_dim", c["embed_dim"]),
            Gene("depth", c["depth"]),
            Gene("num_heads", c["num_heads"], length="depth"),
            Gene("mlp_ratio", c["mlp_ratio"], length="depth"),
        )

    @property
    def head_dim(self) -> int:
        return int(self.spec.options.get("head_dim", 64))

    @property
    def max_layers(self) -> int:
        return int(max(self.spec.choices["depth"]))

    def depths(self) -> list[int]:
        """How many encoder layers an arch may run."""
        return sorted(int(d) for d in self.spec.choices["depth"])

    def layers(self, arch: Arch) -> list[tuple[int, float]]:
        """(heads, MLP ratio) of each layer the arch runs, in order."""
        return list(zip(arch.num_heads, arch.mlp_ratio))

    def with_layers(self, embed_dim: int, layers: Sequence[tuple[int, float]]) -> Arch:
        """The arch of width `embed_dim` running `layers` ((heads, MLP ratio) each), in order."""
        heads, ratios = zip(*layers)
        return self.arch(embed_dim=embed_dim, depth=len(layers), num_heads=list(heads), mlp_ratio=list(ratios))

    def uniform_archs(self) -> list[Arch]:
        """Every DeiT-style arch of the space: all layers with the same heads and MLP ratio (the
        hand-designed baselines searched subnets are compared with)."""
        c = self.spec.choices
        return [
            self.with_layers(d, [(h, r)] * k)
            for d in c["embed_dim"]
            for k in self.depths()
            for h in c["num_heads"]
            if h
            for r in c["mlp_ratio"]
        ]

    def extreme_arch(self, block_cost: Callable[[BlockConfig], float], costliest: bool = False) -> Arch:
        """Exact: an arch's cost is its two fixed blocks plus one block per layer, every layer chosen
        alone, so per width the best arch repeats the best layer as few (or many) times as allowed."""
        c = self.spec.choices
        pick = max if costliest else min
        options = [(h, r) for h in c["num_heads"] if h for r in c["mlp_ratio"]]
        candidates = []
        for d in c["embed_dim"]:
            layer = pick(options, key=lambda o: block_cost(self.encoder_block(d, *o)))
            ends = block_cost(self.patch_embed_block(d)) + block_cost(self.head_block(d))
            per_layer = block_cost(self.encoder_block(d, *layer))
            candidates += [(ends + k * per_layer, d, layer, k) for k in self.depths()]
        _, d, layer, k = pick(candidates, key=lambda t: t[0])
        return self.with_layers(d, [layer] * k)

    def frames(self) -> Iterator[Frame]:
        """One frame per (width, depth): the two fixed blocks, then one slot per layer."""
        c = self.spec.choices
        options = [(h, r) for h in c["num_heads"] if h for r in c["mlp_ratio"]]
        for d in c["embed_dim"]:
            layer = tuple((self.encoder_block(d, h, r),) for h, r in options)

            def build(picks: Sequence[int], d: int = d) -> Arch:
                return self.with_layers(d, [options[p] for p in picks])

            for k in self.depths():
                yield Frame((self.patch_embed_block(d), self.head_block(d)), (layer,) * k, build)

    @property
    def num_patches(self) -> int:
        return (self.spec.img_size // self.spec.patch_size) ** 2  # a square grid of square patches

    @property
    def num_tokens(self) -> int:
        return self.num_patches + 1  # + class token

    def patch_embed_block(self, embed_dim: int) -> BlockConfig:
        s = self.spec
        return BlockConfig.of(
            "patch_embed",
            tokens=self.num_tokens,
            in_dim=s.in_chans,
            out_dim=embed_dim,
            patch_size=s.patch_size,
            in_chans=s.in_chans,
        )

    def encoder_block(self, embed_dim: int, num_heads: int, mlp_ratio: float) -> BlockConfig:
        return BlockConfig.of(
            "encoder",
            tokens=self.num_tokens,
            in_dim=embed_dim,
            out_dim=embed_dim,
            num_heads=num_heads,
            qkv_dim=num_heads * self.head_dim,
            mlp_hidden=mlp_hidden(embed_dim, mlp_ratio),
        )

    def head_block(self, embed_dim: int) -> BlockConfig:
        return BlockConfig.of(
            "head",
            tokens=self.num_tokens,
            in_dim=embed_dim,
            out_dim=self.spec.num_classes,
            num_classes=self.spec.num_classes,
        )

    def arch_blocks(self, arch: Arch) -> list[BlockConfig]:
        d = arch.embed_dim
        layers = [self.encoder_block(d, h, r) for h, r in self.layers(arch)]
        return [self.patch_embed_block(d), *layers, self.head_block(d)]

    def block_indexer(self, index: Mapping[BlockConfig, int]) -> Callable[[Arch], list[int]]:
        c = self.spec.choices
        layers = {
            d: {(h, r): index[self.encoder_block(d, h, r)] for h in c["num_heads"] if h for r in c["mlp_ratio"]}
            for d in c["embed_dim"]
        }
        ends = {d: (index[self.patch_embed_block(d)], index[self.head_block(d)]) for d in c["embed_dim"]}

        def indices(arch: Arch) -> list[int]:
            d = arch.embed_dim
            first, last = ends[d]
            return [first, *map(layers[d].__getitem__, self.layers(arch)), last]

        return indices

    def block_configs(self) -> list[BlockConfig]:
        c = self.spec.choices
        blocks = {
            self.encoder_block(d, h, r) for d in c["embed_dim"] for h in c["num_heads"] if h for r in c["mlp_ratio"]
        }
        for d in c["embed_dim"]:
            blocks |= {self.patch_embed_block(d), self.head_block(d)}
        return sorted(blocks)
