"""ViT-ResNAS's own block kinds: the conv stem and the residual spatial reduction. Its encoder blocks,
patchify stem and head are the single-stage ViT's kinds (`encoder`, `patch_embed`, `head`): the
same kernels on the same shapes, so tables share those rows across families.

Both kinds read a square token grid with one class token from `tokens`; that assumption lives here.
"""

from __future__ import annotations

from math import isqrt
from typing import TYPE_CHECKING

from hwnas.spaces.blocks import BlockConfig, BlockKind, register_kind

if TYPE_CHECKING:
    from torch import nn


def _grid(tokens: int) -> int:
    return isqrt(tokens - 1)


class ConvStemKind(BlockKind):
    """`PatchConvEmbed` of the released code: conv3x3/2 -> BN -> ReLU, two more conv3x3 -> BN -> ReLU
    with a residual around them (`mid_chans` wide, no conv bias), then a (p/2)x(p/2) stride-p/2
    projection to the embed width; plus the class token and the position embedding."""

    name = "conv_stem"
    fields = ("tokens", "out_dim", "patch_size", "in_chans", "mid_chans")

    def params(self, cfg: BlockConfig) -> int:
        m, d, k = cfg.mid_chans, cfg.out_dim, cfg.patch_size // 2
        convs = 9 * cfg.in_chans * m + 2 * 9 * m * m + 3 * 2 * m  # + BN weight and bias
        return convs + d * m * k * k + d + d + cfg.tokens * d  # projection, class token, position embedding

    def macs(self, cfg: BlockConfig) -> int:
        m, d, k = cfg.mid_chans, cfg.out_dim, cfg.patch_size // 2
        half = (cfg.patch_size * _grid(cfg.tokens) // 2) ** 2  # pixels after the stride-2 conv
        return half * 9 * m * (cfg.in_chans + 2 * m) + (cfg.tokens - 1) * d * m * k * k

    def input_shape(self, cfg: BlockConfig, batch_size: int) -> tuple[int, ...]:
        side = cfg.patch_size * _grid(cfg.tokens)
        return (batch_size, cfg.in_chans, side, side)

    def module(self, cfg: BlockConfig) -> nn.Module:
        from hwnas.families.resnas.model import ConvStem

        return ConvStem(cfg.in_chans, cfg.mid_chans, cfg.out_dim, cfg.patch_size, cfg.tokens)


class ReductionKind(BlockKind):
    """Residual spatial reduction from `tokens` (a square grid plus the class token) at `in_dim` to a
    grid of half the side at `out_dim`: LN -> conv3x3/2 (+ new position embedding) and a linear
    for the class token, plus the 2x2-average-pooled, zero-padded input."""

    name = "reduction"
    fields = ("tokens", "in_dim", "out_dim")

    def params(self, cfg: BlockConfig) -> int:
        i, o, g = cfg.in_dim, cfg.out_dim, _grid(cfg.tokens) // 2
        return 2 * i + (9 * i * o + o) + g * g * o + (i * o + o)

    def macs(self, cfg: BlockConfig) -> int:
        i, o, g = cfg.in_dim, cfg.out_dim, _grid(cfg.tokens) // 2
        return g * g * 9 * i * o + i * o

    def input_shape(self, cfg: BlockConfig, batch_size: int) -> tuple[int, ...]:
        return (batch_size, cfg.tokens, cfg.in_dim)

    def module(self, cfg: BlockConfig) -> nn.Module:
        from hwnas.families.resnas.model import SpatialReduction

        return SpatialReduction(cfg.in_dim, cfg.out_dim, _grid(cfg.tokens))


for _kind in (ConvStemKind(), ReductionKind()):
    register_kind(_kind)
