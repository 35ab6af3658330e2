"""The block kinds of a single-stage ViT (timm's `VisionTransformer`): stem, encoder block, head,
shared by every family (ViT-ResNAS's stages and GLiT's global blocks are made of them).

Their fields and keys are those of the latency tables measured since the first table format, so
every shipped row keeps its key. Counts follow `hwnas.spaces.blocks.BlockKind.macs`.
"""

from __future__ import annotations

from math import isqrt
from typing import TYPE_CHECKING

from hwnas.spaces.blocks import BlockConfig, BlockKind, register_kind

if TYPE_CHECKING:
    from torch import nn


class PatchEmbedKind(BlockKind):
    """Conv patchify of a square image, one class token and a position embedding (`tokens` counts
    the class token)."""

    name = "patch_embed"
    fields = ("tokens", "in_dim", "out_dim", "patch_size", "in_chans")

    def params(self, cfg: BlockConfig) -> int:
        d = cfg.out_dim
        conv = d * cfg.in_chans * cfg.patch_size**2 + d
        return conv + d + cfg.tokens * d  # + class token + position embedding

    def macs(self, cfg: BlockConfig) -> int:
        patches = cfg.tokens - 1
        return patches * cfg.out_dim * cfg.in_chans * cfg.patch_size**2

    def input_shape(self, cfg: BlockConfig, batch_size: int) -> tuple[int, ...]:
        side = cfg.patch_size * isqrt(cfg.tokens - 1)
        return (batch_size, cfg.in_chans, side, side)

    def module(self, cfg: BlockConfig) -> nn.Module:
        from hwnas.layers.vit import Stem

        return Stem(cfg.in_chans, cfg.out_dim, cfg.patch_size, cfg.tokens)


class EncoderKind(BlockKind):
    """Pre-norm transformer block: LN -> MHSA (qkv width = heads x head width) -> +res, LN -> MLP -> +res."""

    name = "encoder"
    fields = ("tokens", "in_dim", "out_dim", "num_heads", "qkv_dim", "mlp_hidden")

    def params(self, cfg: BlockConfig) -> int:
        d, q, m = cfg.out_dim, cfg.qkv_dim, cfg.mlp_hidden
        norms = 2 * (2 * d)
        attn = (3 * q * d + 3 * q) + (q * d + d)
        mlp = (m * d + m) + (m * d + d)
        return norms + attn + mlp

    def macs(self, cfg: BlockConfig) -> int:
        t, d, q, m = cfg.tokens, cfg.out_dim, cfg.qkv_dim, cfg.mlp_hidden
        linear = t * (3 * q * d + q * d + 2 * m * d)
        return linear + self.mac_parts(cfg)["attention"]

    def mac_parts(self, cfg: BlockConfig) -> dict[str, int]:
        return {"attention": 2 * cfg.tokens * cfg.tokens * cfg.qkv_dim}  # q @ k^T and attn @ v

    def input_shape(self, cfg: BlockConfig, batch_size: int) -> tuple[int, ...]:
        return (batch_size, cfg.tokens, cfg.in_dim)

    def module(self, cfg: BlockConfig) -> nn.Module:
        from hwnas.layers.vit import vit_block

        return vit_block(cfg.in_dim, cfg.num_heads, cfg.qkv_dim // cfg.num_heads, cfg.mlp_hidden)


class HeadKind(BlockKind):
    """Final LayerNorm, class-token pooling and the classifier."""

    name = "head"
    fields = ("tokens", "in_dim", "out_dim", "num_classes")

    def params(self, cfg: BlockConfig) -> int:
        return 2 * cfg.in_dim + cfg.in_dim * cfg.num_classes + cfg.num_classes

    def macs(self, cfg: BlockConfig) -> int:
        return cfg.in_dim * cfg.num_classes

    def input_shape(self, cfg: BlockConfig, batch_size: int) -> tuple[int, ...]:
        return (batch_size, cfg.tokens, cfg.in_dim)

    def module(self, cfg: BlockConfig) -> nn.Module:
        from hwnas.layers.vit import Head

        return Head(cfg.in_dim, cfg.num_classes)


for _kind in (PatchEmbedKind(), EncoderKind(), HeadKind()):
    register_kind(_kind)
