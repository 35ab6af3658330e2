"""Which subnets a training step trains.

`uniform` is AutoFormer's single path, drawn uniformly over distinct archs; `sandwich`
(BigNAS/NASViT) trains the largest on the labels and the smallest plus k random subnets on the
largest's logits, in one optimiser step. The draw depends only on (seed, step), so every DDP rank
trains the same arch at every step and a resumed run continues the same sequence.
"""

from __future__ import annotations

import random

from hwnas.spaces import Arch, SearchSpace


def step_archs(space: SearchSpace, sampling: str, seed: int, step: int, sandwich_random: int = 2) -> list[Arch]:
    """The archs of global step `step`; for sandwich the first is the teacher (the largest)."""
    rng = random.Random(f"{seed}/{step}")
    if sampling == "uniform":
        return [space.sample_distinct(rng)]
    return [space.largest(), space.smallest(), *(space.sample_distinct(rng) for _ in range(sandwich_random))]
