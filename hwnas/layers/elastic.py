"""The elastic versions of `hwnas.layers.vit`'s layers: each holds the largest weight, runs any
smaller choice on a selection of it, and gives that choice as its static layer, as OFA's elastic
layers do (`get_active_subnet`): `static_layer(*choice)` builds it as the static model's builder
would (OFA's `build_from_config`) and `active_state(*choice)` holds its weights. A supernet's
extraction builds the whole static model from the arch alone (the family's builder) and loads the
layers' `active_state`s into it, so the two are checked against each other on every extraction.

A *selection* names the channels a choice uses along one dimension: a leading `slice` (AutoFormer's
weight entanglement: every smaller choice is the prefix of every larger one) or a 1-D index tensor
(ViTAS's cyclic windows over token-embedding channels). Sizes are explicit arguments of `forward`:
no layer keeps a "current config" between calls.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm, Mlp, PatchEmbed, trunc_normal_
from timm.models.vision_transformer import Attention
from torch import Tensor, nn

from hwnas.layers.vit import vit_block
from hwnas.rng import isolated_rng

Selection = slice | Tensor
State = dict[str, Tensor]


def leading(n: int) -> slice:
    """The first `n` channels: the weight-entangled choice of width `n`."""
    return slice(0, n)


def width(sel: Selection) -> int:
    return sel.stop - (sel.start or 0) if isinstance(sel, slice) else int(sel.numel())


def take(t: Tensor, dim: int, sel: Selection) -> Tensor:
    """`t` restricted to `sel` along `dim` (a view for slices, a gather for index sets)."""
    if isinstance(sel, slice):
        return t.narrow(dim, sel.start or 0, width(sel))
    return t.index_select(dim, sel.to(t.device))


def init_linears(module: nn.Module) -> None:
    """timm's ViT initialisation of every linear layer in `module`: truncated normal (std 0.02)
    weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)


def prefixed(prefix: str, state: State) -> State:
    """`state` under the submodule name `prefix` (`"blocks.3"` -> `"blocks.3.attn.qkv.weight"`)."""
    return {f"{prefix}.{name}": value for name, value in state.items()}


class ElasticLayer(nn.Module):
    """A layer that runs any of its choices (the arguments its `forward` takes after the input)."""

    def active_state(self, *choice: Any) -> State:
        """The weights of the static layer that `choice` is, under that layer's names."""
        raise NotImplementedError

    def static_layer(self, *choice: Any) -> nn.Module:
        """The static layer that `choice` is, freshly initialised (OFA's `build_from_config`)."""
        raise NotImplementedError

    @torch.no_grad()
    def get_active_subnet(self, *choice: Any) -> nn.Module:
        """`choice` as a static layer with its weights copied out: the same outputs without slicing,
        on this layer's device and in its train/eval mode. The caller's RNG is left as it was."""
        device = next(self.parameters()).device
        with isolated_rng(0, device), device:  # the fresh initialisation is overwritten below
            layer = self.static_layer(*choice)
        layer.load_state_dict({k: v.detach().clone() for k, v in self.active_state(*choice).items()}, strict=True)
        return layer.train(self.training)


class ElasticLinear(ElasticLayer, nn.Linear):
    """`nn.Linear` at its largest size; a choice uses rows `out_sel` and columns `in_sel`."""

    def active(self, in_sel: Selection, out_sel: Selection) -> tuple[Tensor, Tensor | None]:
        weight = take(take(self.weight, 0, out_sel), 1, in_sel)
        bias = None if self.bias is None else take(self.bias, 0, out_sel)
        return weight, bias

    def forward(self, x: Tensor, in_sel: Selection, out_sel: Selection) -> Tensor:  # type: ignore[override]
        return F.linear(x, *self.active(in_sel, out_sel))

    def active_state(self, in_sel: Selection, out_sel: Selection) -> State:
        """The weights of the `nn.Linear` this choice is."""
        weight, bias = self.active(in_sel, out_sel)
        return {"weight": weight} if bias is None else {"weight": weight, "bias": bias}

    def static_layer(self, in_sel: Selection, out_sel: Selection) -> nn.Linear:
        return nn.Linear(width(in_sel), width(out_sel), bias=self.bias is not None)


class ElasticLayerNorm(ElasticLayer, nn.LayerNorm):
    """LayerNorm over the active channels only, with their affine parameters."""

    def forward(self, x: Tensor, sel: Selection) -> Tensor:  # type: ignore[override]
        return F.layer_norm(x, (width(sel),), take(self.weight, 0, sel), take(self.bias, 0, sel), self.eps)

    def active_state(self, sel: Selection) -> State:
        return {"weight": take(self.weight, 0, sel), "bias": take(self.bias, 0, sel)}

    def static_layer(self, sel: Selection) -> LayerNorm:
        """timm's `LayerNorm`, as timm's ViT and its blocks use."""
        return LayerNorm(width(sel), eps=self.eps)


class ElasticPatchEmbed(ElasticLayer):
    """Non-overlapping conv patchify; a choice keeps the output channels `sel`. Output: (B, N, C)."""

    def __init__(self, in_chans: int, max_dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, max_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor, sel: Selection) -> Tensor:
        w, b = take(self.proj.weight, 0, sel), take(self.proj.bias, 0, sel)
        return F.conv2d(x, w, b, stride=self.patch_size).flatten(2).transpose(1, 2)

    def active_state(self, sel: Selection) -> State:
        """The weights of the patchify `nn.Conv2d` (timm: `patch_embed.proj`)."""
        return {"proj.weight": take(self.proj.weight, 0, sel), "proj.bias": take(self.proj.bias, 0, sel)}

    def static_layer(self, sel: Selection) -> PatchEmbed:
        """timm's `PatchEmbed` (any image size)."""
        return PatchEmbed(None, self.patch_size, self.proj.in_channels, width(sel))


class ElasticAttention(ElasticLayer):
    """Multi-head self-attention with a fixed head width and an elastic number of heads.

    The qkv weight is laid out as timm's: [q rows | k rows | v rows], each `max_heads * head_dim` tall.
    A choice of h heads takes the leading h heads of each of q, k and v, and the *same* row set of the
    bias (AutoFormer's released code slices weight rows strided but the bias contiguously: Cream#121).
    """

    def __init__(self, max_dim: int, max_heads: int, head_dim: int):
        super().__init__()
        self.head_dim = head_dim
        qkv_dim = max_heads * head_dim
        self.qkv = ElasticLinear(max_dim, 3 * qkv_dim)
        self.proj = ElasticLinear(qkv_dim, max_dim)

    def active_qkv(self, embed_sel: Selection, num_heads: int) -> tuple[Tensor, Tensor]:
        """qkv weight and bias for `num_heads` heads, in timm's (3, heads, head_dim) row order."""
        q = num_heads * self.head_dim
        weight = take(self.qkv.weight.view(3, -1, self.qkv.in_features)[:, :q], 2, embed_sel)
        bias = self.qkv.bias.view(3, -1)[:, :q]
        return weight.reshape(3 * q, -1), bias.reshape(3 * q)

    def forward(self, x: Tensor, embed_sel: Selection, num_heads: int) -> Tensor:
        B, N, _ = x.shape
        qkv = F.linear(x, *self.active_qkv(embed_sel, num_heads))
        q, k, v = qkv.reshape(B, N, 3, num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        x = x.transpose(1, 2).reshape(B, N, num_heads * self.head_dim)
        return self.proj(x, leading(num_heads * self.head_dim), embed_sel)

    def active_state(self, embed_sel: Selection, num_heads: int) -> State:
        """The weights of timm's `Attention` with `num_heads` heads of width `head_dim`."""
        weight, bias = self.active_qkv(embed_sel, num_heads)
        proj = self.proj.active_state(leading(num_heads * self.head_dim), embed_sel)
        return {"qkv.weight": weight, "qkv.bias": bias, **prefixed("proj", proj)}

    def static_layer(self, embed_sel: Selection, num_heads: int) -> Attention:
        return Attention(width(embed_sel), num_heads=num_heads, attn_head_dim=self.head_dim, qkv_bias=True)


class ElasticMlp(ElasticLayer):
    """fc1 -> GELU -> fc2 with an elastic hidden width (leading hidden units)."""

    def __init__(self, max_dim: int, max_hidden: int):
        super().__init__()
        self.fc1 = ElasticLinear(max_dim, max_hidden)
        self.act = nn.GELU()
        self.fc2 = ElasticLinear(max_hidden, max_dim)

    def forward(self, x: Tensor, embed_sel: Selection, hidden: int) -> Tensor:
        return self.fc2(self.act(self.fc1(x, embed_sel, leading(hidden))), leading(hidden), embed_sel)

    def active_state(self, embed_sel: Selection, hidden: int) -> State:
        """The weights of timm's `Mlp` with `hidden` units."""
        return {
            **prefixed("fc1", self.fc1.active_state(embed_sel, leading(hidden))),
            **prefixed("fc2", self.fc2.active_state(leading(hidden), embed_sel)),
        }

    def static_layer(self, embed_sel: Selection, hidden: int) -> Mlp:
        return Mlp(width(embed_sel), hidden)


class ElasticBlock(ElasticLayer):
    """Pre-norm transformer block (timm's `Block` layout and parameter names) with elastic widths."""

    def __init__(self, max_dim: int, max_heads: int, head_dim: int, max_hidden: int, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = ElasticLayerNorm(max_dim, eps=1e-6)
        self.attn = ElasticAttention(max_dim, max_heads, head_dim)
        self.norm2 = ElasticLayerNorm(max_dim, eps=1e-6)
        self.mlp = ElasticMlp(max_dim, max_hidden)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, embed_sel: Selection, num_heads: int, hidden: int) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x, embed_sel), embed_sel, num_heads))
        return x + self.drop_path(self.mlp(self.norm2(x, embed_sel), embed_sel, hidden))

    def active_state(self, embed_sel: Selection, num_heads: int, hidden: int) -> State:
        """The weights of timm's `Block` (parameter names as timm's)."""
        return {
            **prefixed("norm1", self.norm1.active_state(embed_sel)),
            **prefixed("attn", self.attn.active_state(embed_sel, num_heads)),
            **prefixed("norm2", self.norm2.active_state(embed_sel)),
            **prefixed("mlp", self.mlp.active_state(embed_sel, hidden)),
        }

    def static_layer(self, embed_sel: Selection, num_heads: int, hidden: int) -> nn.Module:
        drop_path = self.drop_path.drop_prob if isinstance(self.drop_path, DropPath) else 0.0
        return vit_block(width(embed_sel), num_heads, self.attn.head_dim, hidden, drop_path=drop_path)
