"""ViT-ResNAS (Liao et al., 2021): multi-stage ViTs with residual spatial reduction, searched with
a supernet trained by multi-architectural sampling (several subnets per forward pass).

space.py (genes, blocks), blocks.py (its own block kinds), model.py (static network),
supernet.py (sliced and masked supernet), configs/ (shipped spaces). Importing this registers it.
"""

from dataclasses import replace

import hwnas.layers  # noqa: F401  (registers the shared block kinds)
from hwnas.families.registry import LARGE_DATA, Family, register_family
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
        # The release's supernet recipe (yilunliao/vit-search `scripts/vit-sr-nas/super_net/{tiny,small}.sh`,
        # `main.py` defaults): 120 epochs, per-GPU batch 128 on 8 GPUs, lr 5e-4 x 1024 / 512 = 1e-3, 5
        # warm-up epochs, DropPath 0.2 for Tiny and 0.3 for Small.
        large_data=replace(LARGE_DATA, epochs=120, warmup_epochs=5, drop_path=0.2),
        large_data_by_space={"resnas-small": replace(LARGE_DATA, epochs=120, warmup_epochs=5, drop_path=0.3)},
    )
)
