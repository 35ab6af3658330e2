"""AutoFormer (Chen et al., 2021): a single-stage ViT space with weight entanglement.

space.py (genes, blocks), model.py (static network), supernet.py (weight-sharing supernet),
configs/ (shipped spaces); its layers and block kinds are the shared ones (`hwnas.layers`).
Importing this registers the family.
"""

import hwnas.layers  # noqa: F401  (registers the block kinds)
from hwnas.families.autoformer.space import AutoFormerSpace
from hwnas.families.registry import AUTOFORMER_SEARCH, Family, register_family
from hwnas.io import package_data

FAMILY = register_family(
    Family(
        name="autoformer",
        space=AutoFormerSpace,
        supernet="hwnas.families.autoformer.supernet:AutoFormerSupernet",
        model="hwnas.families.autoformer.model:build_model",
        timm="hwnas.families.autoformer.model:timm_kwargs",
        configs=package_data(__name__, "configs"),
        search_presets={"paper": AUTOFORMER_SEARCH},
    )
)
