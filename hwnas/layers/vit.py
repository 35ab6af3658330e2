"""The static layers of a single-stage ViT that every family builds on (timm's ViT, cut where the
latency tables cut it): the patchify stem, the encoder block and the head.

AutoFormer's, ViTAS's and GLiT's networks are these layers; ViT-ResNAS's stages are made of them.
Each is also the module a latency table measures for its block kind (`hwnas.layers.block_kinds`).
"""

from __future__ import annotations

import torch
from timm.layers import LayerNorm, trunc_normal_
from timm.models.vision_transformer import Attention, Block, init_weights_vit_timm
from torch import Tensor, nn


def vit_block(dim: int, num_heads: int, head_dim: int, hidden: int, drop_path: float = 0.0) -> Block:
    """timm's pre-norm `Block` with `num_heads` heads of width `head_dim` (qkv width need not be
    `dim`) and an MLP of `hidden` units, initialised as timm initialises a ViT's blocks."""
    # (hidden + 0.5) / dim: timm computes int(dim * mlp_ratio), which must give `hidden` exactly
    block = Block(dim, num_heads=1, mlp_ratio=(hidden + 0.5) / dim, qkv_bias=True, drop_path=drop_path)
    block.attn = Attention(dim, num_heads=num_heads, attn_head_dim=head_dim, qkv_bias=True)
    for name, module in block.named_modules():
        init_weights_vit_timm(module, name)
    return block


class Stem(nn.Module):
    """Patchify conv, class token and position embedding (timm: patch_embed + `_pos_embed`): the
    `patch_embed` block measured alone."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, tokens: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(trunc_normal_(torch.zeros(1, tokens, dim), std=0.02))

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed


class Head(nn.Module):
    """Final LayerNorm, class-token pooling and the classifier (timm: norm + `forward_head`): the
    `head` block measured alone."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.norm(x)[:, 0])
