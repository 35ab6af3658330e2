"""ViT-ResNAS (Liao et al., 2021): multi-stage ViTs with residual spatial reduction, searched with
a supernet trained by multi-architectural sampling (several subnets per forward pass).

space.py (genes, blocks), blocks.py (its own block kinds), model.py (static network),
supernet.py (sliced and masked supernet), configs/ (shipped spaces). Importing this registers it.
"""

from dataclasses import replace

import hwnas.layers  # noqa: F401  (registers the shared block kinds)
from hwnas.families.registry import LARGE_DATA, Family, SearchPreset, register_family
from hwnas.families.resnas import blocks  # noqa: F401  (registers the block kinds)
from hwnas.families.resnas.space import ResNASSpace
from hwnas.io import package_data

# The release's evolution (yilunliao/vit-search `evo_search.py` with the arguments of
# `scripts/vit-sr-nas/evolutionary_search/tiny.sh`; `search_utils/evolver.py` `PopulationEvolver`,
# `search_utils/gen_utils.py`): 20 search iterations, the first 500 random archs (`random_sample`:
# random widths and skips with every head and MLP width at its largest, pruned one random layer
# value at a time into the MAC budget, `gen_random_network_def`), then 19 of 75 mutations and 75
# crossovers (`evolve_sample`) from the top 75 of every arch evaluated so far; every gene mutated
# with probability 0.3 (`mutate_func`: widths redrawn, a skip flag toggled); each child redrawn until
# its MACs lie within 97.5-100% of the budget (`_EVOLVE_NETWORK_DEF_RESORUCE_LOWER_BOUND`).
# 500 + 19 x 150 = 3,350 evaluations. hwnas redraws at most 100 times, then repairs.
PAPER_SEARCH = SearchPreset(
    population=150,
    generations=20,
    initial=500,
    parents=75,
    mutations=75,
    mutation_prob=0.3,
    resample_prob=0.3,
    toggled=("skip_",),
    initial_sampling="pruned",
    min_fraction=0.975,
    retries=100,
)

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
        search_presets={"paper": PAPER_SEARCH},
    )
)
