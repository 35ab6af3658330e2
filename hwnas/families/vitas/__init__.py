"""ViTAS (Su et al., 2022): a DeiT-style space of layer slots that may be identities (identity
shifting), trained with cyclic token-embedding channels and weak augmentation.

Its networks are AutoFormer's (same blocks, static model and supernet); only the space differs.
"""

from hwnas.families.registry import Family, register_family
from hwnas.families.vitas.space import ViTASSpace
from hwnas.io import package_data

FAMILY = register_family(
    Family(
        name="vitas",
        space=ViTASSpace,
        supernet="hwnas.families.autoformer.supernet:AutoFormerSupernet",
        model="hwnas.families.autoformer.model:build_model",
        timm="hwnas.families.autoformer.model:timm_kwargs",
        configs=package_data(__name__, "configs"),
    )
)
