"""The static network of a GLiT arch: a timm `VisionTransformer` whose blocks mix global attention
heads with GLiT's locality module (`mix_attention.py` of the release). Built from the arch alone;
extraction fills it with a supernet's weights (BatchNorm statistics included).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from hwnas.families.glit.space import GLiTSpace, Layer
from hwnas.layers.vit import vit_block
from hwnas.spaces import Arch


class LocalBranch(nn.Module):
    """GLiT's locality module, 1-D over the token sequence (class token included), Conformer-style:
    1x1 conv to 2 x `hidden` -> GLU -> depthwise conv (`kernel` taps, same padding) -> BatchNorm ->
    SiLU (Swish) -> 1x1 conv back to `dim`. Input and output (B, N, dim)."""

    def __init__(self, dim: int, hidden: int, kernel: int):
        super().__init__()
        self.pw1 = nn.Conv1d(dim, 2 * hidden, 1)
        self.dw = nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.pw2 = nn.Conv1d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = F.glu(self.pw1(x.transpose(1, 2)), dim=1)  # first half x sigmoid(second half), as the release's GLU
        return self.pw2(F.silu(self.bn(self.dw(y)))).transpose(1, 2)


class GlobalLocalMixer(nn.Module):
    """The token mixer of a GLiT block with a locality module: attention heads on the first
    `global_dim` channels (none when 0), `LocalBranch` on the rest, outputs concatenated."""

    def __init__(self, dim: int, global_dim: int, num_heads: int, qkv_dim: int, local_hidden: int, kernel: int):
        super().__init__()
        self.global_dim, self.num_heads = global_dim, num_heads
        if global_dim:
            self.qkv = nn.Linear(global_dim, 3 * qkv_dim)
            self.proj = nn.Linear(qkv_dim, global_dim)
        self.local = LocalBranch(dim - global_dim, local_hidden, kernel)

    def forward(self, x: Tensor, **_: object) -> Tensor:  # timm's Block passes attention-mask arguments
        if not self.global_dim:
            return self.local(x)
        return torch.cat([self.attend(x[..., : self.global_dim]), self.local(x[..., self.global_dim :])], dim=-1)

    def attend(self, x: Tensor) -> Tensor:
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(*qkv.unbind(0))  # scale: head width ** -0.5, as the release
        return self.proj(out.transpose(1, 2).reshape(B, N, -1))


def glit_block(dim: int, layer: Layer, drop_path: float = 0.0) -> nn.Module:
    """A GLiT block: timm's pre-norm `Block` (LN -> mixer -> +res, LN -> MLP -> +res). A pure-global
    block is a plain ViT block; any other has `GlobalLocalMixer` as its token mixer."""
    if not layer.local_hidden:
        return vit_block(dim, layer.num_heads, layer.head_dim, layer.mlp_hidden, drop_path=drop_path)
    block = vit_block(dim, 1, dim, layer.mlp_hidden, drop_path=drop_path)
    block.attn = GlobalLocalMixer(
        dim, layer.global_dim, layer.num_heads, layer.qkv_dim, layer.local_hidden, layer.kernel
    )
    for module in block.attn.modules():
        if isinstance(module, nn.Linear):  # timm's ViT initialisation of linears; convs keep torch's
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
    return block


def build_model(arch: Arch) -> VisionTransformer:
    """The arch's network. Its parameter names follow timm's ViT with `blocks.{i}.attn.local.*` for the
    locality module, not the names of the release's `RetrainTransformer`: `release_keys` maps the two
    both ways, and `hwnas.load_model(checkpoint, arch=arch)` loads a release checkpoint through it."""
    space: GLiTSpace = arch.space  # type: ignore[assignment]
    s = space.spec
    vit = VisionTransformer(
        img_size=s.img_size,
        patch_size=s.patch_size,
        in_chans=s.in_chans,
        num_classes=s.num_classes,
        embed_dim=space.embed_dim,
        depth=0,
        num_heads=1,
        qkv_bias=True,
        weight_init="skip",
    )
    vit.init_weights()
    vit.blocks = nn.Sequential(*(glit_block(space.embed_dim, layer) for layer in space.layers(arch)))
    return vit
