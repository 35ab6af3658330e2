"""AutoFormer supernet: a single-stage ViT whose every layer is elastic and weight-entangled (ViTAS's
spaces use it too, with cyclic token-embedding channels and identity layers)."""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from torch import Tensor, nn

from hwnas.families.autoformer.space import AutoFormerSpace, mlp_hidden
from hwnas.spaces import Arch
from hwnas.supernet.base import Supernet
from hwnas.supernet.elastic import (
    ElasticBlock,
    ElasticLayerNorm,
    ElasticLinear,
    ElasticPatchEmbed,
    State,
    init_linears,
    leading,
    prefixed,
    take,
)
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

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        self.check_arch(arch)
        embed = self.embed_sharing.select(arch.embed_dim)
        x = self.patch_embed(x, embed)
        cls = take(self.cls_token, 2, embed).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + take(self.pos_embed, 2, embed)
        for block, (heads, ratio) in zip(self.blocks, self.space.layers(arch)):
            x = block(x, embed, heads, mlp_hidden(arch.embed_dim, ratio))
        x = self.norm(x, embed)[:, 0]
        return self.head(x, embed, leading(self.head.out_features))

    def active_state_dict(self, arch: Arch) -> State:
        """The subnet's weights under the parameter names of timm's `VisionTransformer`."""
        self.check_arch(arch)
        embed = self.embed_sharing.select(arch.embed_dim)
        state = {
            **prefixed("patch_embed", self.patch_embed.active_state(embed)),
            "cls_token": take(self.cls_token, 2, embed),
            "pos_embed": take(self.pos_embed, 2, embed),
        }
        for i, (heads, ratio) in enumerate(self.space.layers(arch)):
            state.update(
                prefixed(f"blocks.{i}", self.blocks[i].active_state(embed, heads, mlp_hidden(arch.embed_dim, ratio)))
            )
        state.update(prefixed("norm", self.norm.active_state(embed)))
        state.update(prefixed("head", self.head.active_state(embed, leading(self.head.out_features))))
        return state
