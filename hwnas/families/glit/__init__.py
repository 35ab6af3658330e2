"""GLiT (Chen et al., ICCV 2021): blocks that split their channels between global attention heads
and a convolutional locality module, searched by a two-level (global/local, then low-level)
hierarchical evolution.

space.py (genes, blocks), blocks.py (its block kind), model.py (static network), supernet.py
(weight-sharing supernet with per-subnet BatchNorm statistics), release_keys.py (the release's
parameter names, so its checkpoints load), configs/ (shipped spaces).
Importing this registers it.
"""

from dataclasses import replace

import hwnas.layers  # noqa: F401  (registers the shared block kinds)
from hwnas.families.glit import blocks  # noqa: F401  (registers the block kind)
from hwnas.families.glit.space import GLiTSpace
from hwnas.families.registry import AUTOFORMER_SEARCH, SMALL_DATA, Family, register_family
from hwnas.io import package_data

# bychen515/GLiT releases no search code (only the retraining of its searched GLiT-Tiny), so its
# `paper` search is the paper's hierarchical strategy with AutoFormer's released settings
# (`AUTOFORMER_SEARCH`): the numbers are AutoFormer's, not GLiT's.
PAPER_SEARCH = replace(AUTOFORMER_SEARCH, strategy="hierarchical")

FAMILY = register_family(
    Family(
        name="glit",
        space=GLiTSpace,
        supernet="hwnas.families.glit.supernet:GLiTSupernet",
        model="hwnas.families.glit.model:build_model",
        configs=package_data(__name__, "configs"),
        # On small data 4x the epochs at 3x the learning rate: the all-global chain, drawn in about a
        # fifth of the steps, reaches 90% on digits only then (36% with the plain budget; Results).
        small_data=replace(SMALL_DATA, epochs=160, lr=3e-3),
        # Three draws in four take one G in every block: see `hwnas.training.sampling`.
        alike_share=0.75,
        foreign_weights="hwnas.families.glit.release_keys:release_weights",
        search_presets={"paper": PAPER_SEARCH},
    )
)
