"""GLiT (Chen et al., ICCV 2021): blocks that split their channels between global attention heads
and a convolutional locality module, searched by a two-level (global/local, then low-level)
hierarchical evolution.

space.py (genes, blocks), blocks.py (its block kind), model.py (static network), supernet.py
(weight-sharing supernet with per-subnet BatchNorm statistics), configs/ (shipped spaces).
Importing this registers it.
"""

import hwnas.layers  # noqa: F401  (registers the shared block kinds)
from hwnas.families.glit import blocks  # noqa: F401  (registers the block kind)
from hwnas.families.glit.space import GLiTSpace
from hwnas.families.registry import Family, register_family
from hwnas.io import package_data

FAMILY = register_family(
    Family(
        name="glit",
        space=GLiTSpace,
        supernet="hwnas.families.glit.supernet:GLiTSupernet",
        model="hwnas.families.glit.model:build_model",
        configs=package_data(__name__, "configs"),
    )
)
