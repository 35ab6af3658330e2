"""The static network of an AutoFormer-family arch: a timm `VisionTransformer` whose encoder blocks
each have their own heads (of a fixed head width) and MLP width. Built from the arch alone, with
timm's initialisation: no supernet is involved (extraction fills it with a supernet's weights).
"""

from __future__ import annotations

import torch
from timm.layers import LayerNorm, trunc_normal_
from timm.models.vision_transformer import Attention, Block, VisionTransformer, init_weights_vit_timm
from torch import Tensor, nn

from hwnas.families.autoformer.space import AutoFormerSpace, mlp_hidden
from hwnas.spaces import Arch


def vit_block(dim: int, num_heads: int, head_dim: int, hidden: int, drop_path: float = 0.0) -> Block:
    """timm's pre-norm `Block` with `num_heads` heads of width `head_dim` (qkv width need not be
    `dim`) and an MLP of `hidden` units, initialised as timm initialises a ViT's blocks."""
    # (hidden + 0.5) / dim: timm computes int(dim * mlp_ratio), which must give `hidden` exactly
    block = Block(dim, num_heads=1, mlp_ratio=(hidden + 0.5) / dim, qkv_bias=True, drop_path=drop_path)
    block.attn = Attention(dim, num_heads=num_heads, attn_head_dim=head_dim, qkv_bias=True)
    for name, module in block.named_modules():
        init_weights_vit_timm(module, name)
    return block


def build_model(arch: Arch) -> VisionTransformer:
    """The arch's network; for a plain DeiT/ViT arch it is exactly the model `timm.create_model`
    builds from `timm_kwargs(arch)` (same class, modules and parameter names)."""
    space: AutoFormerSpace = arch.space  # type: ignore[assignment]
    s = space.spec
    vit = VisionTransformer(
        img_size=s.img_size,
        patch_size=s.patch_size,
        in_chans=s.in_chans,
        num_classes=s.num_classes,
        embed_dim=arch.embed_dim,
        depth=0,
        num_heads=1,
        qkv_bias=True,
        weight_init="skip",
    )
    vit.blocks = nn.Sequential(
        *(
            vit_block(arch.embed_dim, heads, space.head_dim, mlp_hidden(arch.embed_dim, ratio))
            for heads, ratio in space.layers(arch)
        )
    )
    vit.init_weights()
    return vit


def timm_kwargs(arch: Arch) -> dict[str, int | float] | None:
    """`timm.create_model(vit_*, **kwargs)` arguments for a plain ViT/DeiT arch (one heads and MLP
    ratio for all layers, qkv width = embed width); None when timm's plain ViT cannot express it."""
    space: AutoFormerSpace = arch.space  # type: ignore[assignment]
    layers = space.layers(arch)
    heads, ratios = {h for h, _ in layers}, {r for _, r in layers}
    if len(heads) != 1 or len(ratios) != 1 or layers[0][0] * space.head_dim != arch.embed_dim:
        return None
    s = space.spec
    return dict(
        img_size=s.img_size,
        patch_size=s.patch_size,
        in_chans=s.in_chans,
        num_classes=s.num_classes,
        embed_dim=arch.embed_dim,
        depth=len(layers),
        num_heads=heads.pop(),
        mlp_ratio=ratios.pop(),
    )


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
