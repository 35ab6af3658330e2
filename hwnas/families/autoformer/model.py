"""The static network of an AutoFormer-family arch: a timm `VisionTransformer` whose encoder blocks
each have their own heads (of a fixed head width) and MLP width. Built from the arch alone, with
timm's initialisation: no supernet is involved (extraction fills it with a supernet's weights).
"""

from __future__ import annotations

from timm.models.vision_transformer import VisionTransformer
from torch import nn

from hwnas.families.autoformer.space import AutoFormerSpace, mlp_hidden
from hwnas.layers.vit import vit_block
from hwnas.spaces import Arch


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
