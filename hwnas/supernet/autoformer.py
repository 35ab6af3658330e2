"""AutoFormer supernet: a single-stage ViT whose every layer is elastic and weight-entangled."""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from hwnas.spaces import Arch
from hwnas.spaces.autoformer import AutoFormerSpace, mlp_hidden
from hwnas.supernet.base import Supernet
from hwnas.supernet.sharing import ChannelSharing
from hwnas.supernet.elastic import ElasticBlock, ElasticLayerNorm, ElasticLinear, ElasticPatchEmbed, leading, take


class AutoFormerSupernet(Supernet):
    """Parameter names follow timm's `VisionTransformer`, so an extracted subnet is one.

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
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

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

    def extract(self, arch: Arch) -> VisionTransformer:
        """A timm `VisionTransformer`; for a plain DeiT/ViT arch it is exactly the model that
        `timm.create_model` builds from `timm_kwargs(arch)`."""
        self.check_arch(arch)
        s, embed = self.space.spec, self.embed_sharing.select(arch.embed_dim)
        layers = self.space.layers(arch)
        vit = VisionTransformer(
            img_size=s.img_size, patch_size=s.patch_size, in_chans=s.in_chans, num_classes=s.num_classes,
            embed_dim=arch.embed_dim, depth=len(layers), num_heads=1, mlp_ratio=1.0, qkv_bias=True,
        )
        vit.patch_embed.proj = self.patch_embed.get_active_subnet(embed)
        with torch.no_grad():
            vit.cls_token.copy_(take(self.cls_token, 2, embed))
            vit.pos_embed.copy_(take(self.pos_embed, 2, embed))
        for i, (heads, ratio) in enumerate(layers):
            vit.blocks[i] = self.blocks[i].get_active_subnet(embed, heads, mlp_hidden(arch.embed_dim, ratio))
        vit.norm = self.norm.get_active_subnet(embed)
        vit.head = self.head.get_active_subnet(embed, leading(self.head.out_features))
        return vit.train(self.training)


def timm_kwargs(arch: Arch) -> dict[str, int | float] | None:
    """`timm.create_model(vit_*, **kwargs)` arguments for a plain ViT/DeiT arch (one heads and MLP
    ratio for all layers, qkv width = embed width); None when timm's plain ViT cannot express it."""
    space = arch.space
    if not isinstance(space, AutoFormerSpace):
        return None
    layers = space.layers(arch)
    heads, ratios = {h for h, _ in layers}, {r for _, r in layers}
    if len(heads) != 1 or len(ratios) != 1 or layers[0][0] * space.head_dim != arch.embed_dim:
        return None
    s = space.spec
    return dict(img_size=s.img_size, patch_size=s.patch_size, in_chans=s.in_chans, num_classes=s.num_classes,
                embed_dim=arch.embed_dim, depth=len(layers), num_heads=heads.pop(), mlp_ratio=ratios.pop())
