"""AutoFormer supernet: a single-stage ViT whose every layer is elastic and weight-entangled (ViTAS's
spaces use it too, with cyclic token-embedding channels and identity layers)."""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from torch import Tensor, nn

from hwnas.families.autoformer.space import AutoFormerSpace, mlp_hidden
from hwnas.layers.elastic import (
    ElasticBlock,
    ElasticLayerNorm,
    ElasticLinear,
    ElasticPatchEmbed,
    init_linears,
    leading,
    take,
)
from hwnas.spaces import Arch
from hwnas.supernet.base import LayerChoice, Supernet
from hwnas.supernet.sharing import ChannelSharing


class AutoFormerSupernet(Supernet):
    """Parameter names follow timm's `VisionTransformer`, so an extracted subnet is one (`model.py`).

    Depth keeps the first `depth` blocks. `drop_path_rate` rises linearly over the blocks (timm's rule).
    `weight_sharing` picks the token-embedding channels of each embed width: `prefix` (AutoFormer) or
    `cyclic` (ViTAS; see `sharing.py`); heads and MLP widths are always prefixes.
    """

    space: AutoFormerSpace

    def __init__(self, space: AutoFormerSpace, drop_path_rate: float = 0.0, weight_sharing: str = "prefix"):
        super().__init__(space)
        c, s = space.spec.choices, space.spec
        self.embed_sharing = ChannelSharing(c["embed_dim"], weight_sharing)  # token-embedding channels
        max_dim, max_depth = max(c["embed_dim"]), space.max_layers
        max_hidden = max(mlp_hidden(max_dim, r) for r in c["mlp_ratio"])
        self.patch_embed = ElasticPatchEmbed(s.in_chans, max_dim, s.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, max_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, space.num_tokens, max_dim))
        rates = torch.linspace(0, drop_path_rate, max_depth).tolist()
        self.blocks = nn.ModuleList(
            ElasticBlock(max_dim, max(c["num_heads"]), space.head_dim, max_hidden, drop_path=rate) for rate in rates
        )
        self.norm = ElasticLayerNorm(max_dim, eps=1e-6)
        self.head = ElasticLinear(max_dim, s.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        init_linears(self)

    def layer_choices(self, arch: Arch) -> dict[str, LayerChoice]:
        """Names as timm's `VisionTransformer`: the first `depth` blocks, every layer on the arch's
        token-embedding channels."""
        self.check_arch(arch)
        embed = self.embed_sharing.select(arch.embed_dim)
        layers = {
            "patch_embed": LayerChoice((embed,)),
            "cls_token": LayerChoice((2, embed)),
            "pos_embed": LayerChoice((2, embed)),
        }
        for i, (heads, ratio) in enumerate(self.space.layers(arch)):
            layers[f"blocks.{i}"] = LayerChoice((embed, heads, mlp_hidden(arch.embed_dim, ratio)))
        layers["norm"] = LayerChoice((embed,))
        layers["head"] = LayerChoice((embed, leading(self.head.out_features)))
        return layers

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        c = self.layer_choices(arch)
        x = self.patch_embed(x, *c["patch_embed"].choice)
        cls = take(self.cls_token, *c["cls_token"].choice).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + take(self.pos_embed, *c["pos_embed"].choice)
        for i, block in enumerate(self.blocks):
            if f"blocks.{i}" not in c:  # the first `depth` blocks run
                break
            x = block(x, *c[f"blocks.{i}"].choice)
        return self.head(self.norm(x, *c["norm"].choice)[:, 0], *c["head"].choice)
