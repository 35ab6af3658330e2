"""ViT-ResNAS (Liao et al., 2021): multi-stage ViTs with residual spatial reduction, searched with
a supernet trained by multi-architectural sampling (several subnets per forward pass).

space.py (genes, blocks), blocks.py (its own block kinds), model.py (static network),
supernet.py (sliced and masked supernet), configs/ (shipped spaces). Importing this registers it.
"""

import hwnas.layers  # noqa: F401  (registers the shared block kinds)
from hwnas.families.registry import Family, register_family
from hwnas.families.resnas import blocks  # noqa: F401  (registers the block kinds)
from hwnas.families.resnas.space import ResNASSpace
from hwnas.io import package_data

FAMILY = register_family(
    Family(
        name="resnas",
        space=ResNASSpace,
        supernet="hwnas.families.resnas.supernet:ResNASSupernet",
        model="hwnas.families.resnas.model:build_model",
        configs=package_data(__name__, "configs"),
    )
)
