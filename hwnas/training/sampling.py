"""Which subnets a training step trains.

`uniform` is AutoFormer's single path, every gene drawn uniformly, depth first (`space.sample`:
on autoformer-tiny each depth gets a third of the steps); `distinct` draws uniformly over distinct
archs (`space.sample_distinct`: there depth 14 gets about 75% of the steps and depth 12 about 5%,
which starves the shallow subnets tight budgets pick; under ViTAS's identity shifting it is the
right draw, and its default). `sandwich`
(BigNAS/NASViT) trains the largest on the labels and the smallest plus k random subnets on the
largest's logits, in one optimiser step; `multi` (ViT-ResNAS's multi-architectural sampling) trains
M random subnets in one forward pass, each on its own slice of the batch; their random subnets are
drawn as `draw` says (uniform or distinct). The draw depends only on (seed, step), so every DDP rank
trains the same arch at every step and a resumed run continues the same sequence.

`alike_share` of the random draws are alike draws (`SearchSpace.sample_alike`: one G in every
block in GLiT's spaces). Uniform draws reach the all-global chain once in 4^depth steps, and in
a supernet whose locality module does the token mixing, its attention stays near uniform
(benchmarks/glit_subnets.py measures both).
"""

from __future__ import annotations

import random

from hwnas.spaces import Arch, SearchSpace

DRAWS = ("uniform", "distinct")


def step_archs(
    space: SearchSpace,
    sampling: str,
    seed: int,
    step: int,
    sandwich_random: int = 2,
    archs_per_batch: int = 2,
    alike_share: float = 0.0,
    draw_kind: str = "uniform",
) -> list[Arch]:
    """The archs of global step `step`; for sandwich the first is the teacher (the largest); for
    multi, `archs_per_batch` archs that share the batch (one slice of examples each). `draw_kind`
    draws the random subnets of sandwich and multi (uniform and distinct draw as they say)."""
    rng = random.Random(f"{seed}/{step}")
    sample = space.sample_distinct if (sampling if sampling in DRAWS else draw_kind) == "distinct" else space.sample

    def draw() -> Arch:  # no extra random number without alike draws: earlier runs keep their sequence
        return space.sample_alike(rng) if alike_share and rng.random() < alike_share else sample(rng)

    if sampling in DRAWS:
        return [draw()]
    if sampling == "multi":
        return [draw() for _ in range(archs_per_batch)]
    return [space.largest(), space.smallest(), *(draw() for _ in range(sandwich_random))]
