"""ViTAS (Su et al., 2022): a DeiT-style space of layer slots that may be identities (identity
shifting), trained with cyclic token-embedding channels and weak augmentation.

Its networks are AutoFormer's (same blocks, static model and supernet); only the space differs.
"""

from dataclasses import replace

from hwnas.families.registry import AUTOFORMER_SEARCH, Family, register_family
from hwnas.families.vitas.space import ViTASSpace
from hwnas.io import package_data

# The release's search (xiusu/ViTAS `config/search/vit_tiny_search_1G_search.yaml`, `sample:` section;
# `core/sampler/evolution/evolution_sampler.py`): a population of 50 for 40 generations, the initial
# one drawn within a FLOPs window of 0.9-1.0 G (`init_population`: `flops_min` 900 M, `flops_constraint`
# 1 G), i.e. 0.9-1 x the budget. Its variation is pymoo's single-objective NSGA-Net (binary
# tournament, two-point crossover, polynomial mutation over integer-coded genes; `nsganet.py`), which
# hwnas does not reproduce: AutoFormer's operators instead, every child kept within the window.
PAPER_SEARCH = replace(AUTOFORMER_SEARCH, generations=40, min_fraction=0.9)

FAMILY = register_family(
    Family(
        name="vitas",
        space=ViTASSpace,
        supernet="hwnas.families.autoformer.supernet:AutoFormerSupernet",
        model="hwnas.families.autoformer.model:build_model",
        timm="hwnas.families.autoformer.model:timm_kwargs",
        configs=package_data(__name__, "configs"),
        search_presets={"paper": PAPER_SEARCH},
    )
)
