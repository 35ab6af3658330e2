"""Standalone modules for single blocks, so each table row is measured on exactly the kernels the
extracted network runs: encoder blocks come from the supernet's own elastic layers
(`get_active_subnet`), the fixed parts mirror timm's `VisionTransformer` stem and head."""

from __future__ import annotations

import math

import torch
from timm.layers import trunc_normal_
from torch import Tensor, nn

from hwnas.spaces.blocks import ENCODER, HEAD, PATCH_EMBED, BlockConfig
from hwnas.supernet.elastic import ElasticBlock, leading


class Stem(nn.Module):
    """Patchify conv, class token and position embedding (timm: patch_embed + `_pos_embed`)."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, tokens: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(trunc_normal_(torch.zeros(1, tokens, dim), std=0.02))

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed


class Head(nn.Module):
    """Final LayerNorm, class-token pooling and the classifier (timm: norm + `forward_head`)."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.norm(x)[:, 0])


def block_module(cfg: BlockConfig) -> nn.Module:
    """A freshly initialised module computing block `cfg` alone (eval mode)."""
    torch.manual_seed(0)
    if cfg.kind == PATCH_EMBED:
        module: nn.Module = Stem(cfg.in_chans, cfg.out_dim, cfg.patch_size, cfg.tokens)
    elif cfg.kind == ENCODER:
        elastic = ElasticBlock(cfg.in_dim, cfg.num_heads, cfg.qkv_dim // cfg.num_heads, cfg.mlp_hidden)
        for m in elastic.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
        module = elastic.get_active_subnet(leading(cfg.in_dim), cfg.num_heads, cfg.mlp_hidden)
    elif cfg.kind == HEAD:
        module = Head(cfg.in_dim, cfg.num_classes)
    else:
        raise ValueError(f"no standalone module for block kind {cfg.kind!r}")
    return module.eval()


def block_input_shape(cfg: BlockConfig, batch_size: int) -> tuple[int, ...]:
    if cfg.kind == PATCH_EMBED:
        side = cfg.patch_size * math.isqrt(cfg.tokens - 1)
        return (batch_size, cfg.in_chans, side, side)
    return (batch_size, cfg.tokens, cfg.in_dim)
