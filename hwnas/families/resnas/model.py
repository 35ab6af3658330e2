"""The static network of a ViT-ResNAS arch: stem, stages of timm `Block`s joined by residual spatial
reductions, head. No timm model has this shape, so it is its own module; built from the arch alone
(extraction fills it with a supernet's weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import Tensor, nn

from hwnas.families.resnas.space import ResNASSpace
from hwnas.layers.vit import Head, Stem, vit_block
from hwnas.spaces import Arch

NORM_EPS = 1e-6  # the released `MaskedLayerNorm`'s eps (timm's `Block` and our `Head` use it too)


class ConvBnAct(nn.Sequential):
    """conv3x3 (no bias) -> BatchNorm -> ReLU, as the released `ConvBnAct`."""

    def __init__(self, in_chans: int, out_chans: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_chans, out_chans, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_chans),
            nn.ReLU(),
        )


class ConvStem(nn.Module):
    """ViT-ResNAS's conv stem (`PatchConvEmbed`): conv/2, two convs with a residual around them,
    a (p/2)x(p/2) projection to the embed width; then the class token and the position embedding."""

    def __init__(self, in_chans: int, mid_chans: int, dim: int, patch_size: int, tokens: int):
        super().__init__()
        self.conv1 = ConvBnAct(in_chans, mid_chans, stride=2)
        self.conv2 = ConvBnAct(mid_chans, mid_chans)
        self.conv3 = ConvBnAct(mid_chans, mid_chans)
        self.proj = nn.Conv2d(mid_chans, dim, kernel_size=patch_size // 2, stride=patch_size // 2)
        self.cls_token = nn.Parameter(trunc_normal_(torch.zeros(1, 1, dim), std=0.02))
        self.pos_embed = nn.Parameter(trunc_normal_(torch.zeros(1, tokens, dim), std=0.02))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = x + self.conv3(self.conv2(x))
        x = self.proj(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed


class SpatialReduction(nn.Module):
    """Residual spatial reduction (ViT-ResNAS): the class token and a `grid` x `grid` of patch tokens
    at `in_dim` become a grid of half the side at `out_dim`.

    Main path: LayerNorm, patches as an image, conv3x3/2, flatten, a new position embedding; the
    class token through a linear layer. Residual path: 2x2 average pooling of the patches and the
    class token as it is, both zero-padded to `out_dim`. The output is their sum.
    """

    def __init__(self, in_dim: int, out_dim: int, grid: int):
        super().__init__()
        if out_dim < in_dim:
            raise ValueError(f"a spatial reduction cannot narrow {in_dim} to {out_dim} channels")
        self.grid = grid
        self.norm = nn.LayerNorm(in_dim, eps=NORM_EPS)
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size=3, stride=2, padding=1)
        self.pos_embed = nn.Parameter(trunc_normal_(torch.zeros(1, (grid // 2) ** 2, out_dim), std=0.02))
        self.token = nn.Linear(in_dim, out_dim)
        trunc_normal_(self.token.weight, std=0.02)
        nn.init.zeros_(self.token.bias)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        B, _, C = x.shape
        g, pad = self.grid, self.conv.out_channels - C
        pooled = self.pool(x[:, 1:].transpose(1, 2).reshape(B, C, g, g)).flatten(2).transpose(1, 2)
        residual = F.pad(torch.cat([x[:, :1], pooled], dim=1), (0, pad))
        y = self.norm(x)
        patches = self.conv(y[:, 1:].transpose(1, 2).reshape(B, C, g, g)).flatten(2).transpose(1, 2)
        return torch.cat([self.token(y[:, :1]), patches + self.pos_embed], dim=1) + residual


class ResNASNet(nn.Module):
    """stem -> stage 1 -> (reduction -> stage s)... -> head; `stages[s]` is an `nn.Sequential` of
    timm `Block`s, `reductions[s - 1]` the reduction into stage s."""

    def __init__(
        self,
        stem: nn.Module,
        stages: list[nn.Sequential],
        reductions: list[SpatialReduction],
        head: Head,
        input_size: tuple[int, int, int],
    ):
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.reductions = nn.ModuleList(reductions)
        self.head = head
        self.input_size = input_size  # (C, H, W), what `hwnas.cost.count_flops` traces with

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for s, blocks in enumerate(self.stages):
            if s:
                x = self.reductions[s - 1](x)
            x = blocks(x)
        return self.head(x)


def build_model(arch: Arch) -> ResNASNet:
    """The arch's network, freshly initialised (timm's ViT initialisation for its blocks)."""
    space: ResNASSpace = arch.space  # type: ignore[assignment]
    s, layout = space.spec, space.stages(arch)
    first = layout[0].embed_dim
    if space.stem == "conv":
        stem: nn.Module = ConvStem(s.in_chans, space.stem_channels, first, s.patch_size, space.tokens(0))
    else:
        stem = Stem(s.in_chans, first, s.patch_size, space.tokens(0))
    stages = [
        nn.Sequential(
            *(
                vit_block(stage.embed_dim, attn // space.head_dim(i), space.head_dim(i), hidden)
                for attn, hidden in stage.blocks
            )
        )
        for i, stage in enumerate(layout)
    ]
    reductions = [
        SpatialReduction(layout[i - 1].embed_dim, layout[i].embed_dim, space.grid(i - 1)) for i in range(1, len(layout))
    ]
    head = Head(layout[-1].embed_dim, s.num_classes)
    trunc_normal_(head.head.weight, std=0.02)
    nn.init.zeros_(head.head.bias)
    return ResNASNet(stem, stages, reductions, head, (s.in_chans, s.img_size, s.img_size))
