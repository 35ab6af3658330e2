"""Which subnets a training step trains.

`uniform` is AutoFormer's single path, drawn uniformly over distinct archs; `sandwich`
(BigNAS/NASViT) trains the largest on the labels and the smallest plus k random subnets on the
largest's logits, in one optimiser step; `multi` (ViT-ResNAS's multi-architectural sampling) trains
M random subnets in one forward pass, each on its own slice of the batch. The draw depends only on (seed, step), so every DDP rank
trains the same arch at every step and a resumed run continues the same sequence.

`alike_share` of the random draws are alike draws (`SearchSpace.sample_alike`: one G in every
block in GLiT's spaces). Uniform draws reach the all-global chain once in 4^depth steps, and in
a supernet whose locality module does the token mixing, its attention stays near uniform
(benchmarks/glit_subnets.py measures both).
"""

from __future__ import annotations

import random

from hwnas.spaces import Arch, SearchSpace


def step_archs(space: SearchSpace, sampling: str, seed: int, step: int, sandwich_random: int = 2,
               archs_per_batch: int = 2, alike_share: float = 0.0) -> list[Arch]:
    """The archs of global step `step`; for sandwich the first is the teacher (the largest); for
    multi, `archs_per_batch` archs that share the batch (one slice of examples each)."""
    rng = random.Random(f"{seed}/{step}")

    def draw() -> Arch:  # no extra random number without alike draws: earlier runs keep their sequence
        return space.sample_alike(rng) if alike_share and rng.random() < alike_share else space.sample_distinct(rng)

    if sampling == "uniform":
        return [draw()]
    if sampling == "multi":
        return [draw() for _ in range(archs_per_batch)]
    return [space.largest(), space.smallest(), *(draw() for _ in range(sandwich_random))]
