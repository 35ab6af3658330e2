"""Which subnets a training step trains.

`uniform` is AutoFormer's single path, every gene drawn uniformly, depth first (`space.sample`:
on autoformer-tiny each depth gets a third of the steps); `distinct` draws uniformly over distinct
archs (`space.sample_distinct`: there depth 14 gets about 75% of the steps and depth 12 about 5%,
which starves the shallow subnets tight budgets pick; under ViTAS's identity shifting it is the
right draw, and its default). `sandwich`
(BigNAS/NASViT) trains the largest on the labels and the smallest plus k random subnets on the
largest's logits, in one optimiser step; `multi` (ViT-ResNAS's multi-architectural sampling) trains
M random subnets in one forward pass, each on its own slice of the batch, spread over the choices
(`space.sample_spread`: no two share a width where the choices allow it); their random subnets are
drawn as `draw` says (uniform or distinct). The draw depends only on (seed, step), so every DDP rank
trains the same archs at every step and a resumed run continues the same sequence; a sampling that
draws per rank (`multi`, as ViT-ResNAS gives every GPU its own subnets) keys it by (seed, step,
rank) instead, so a step trains M x processes subnets.

Each sampling is one `Sampling` in `SAMPLINGS`: its draw, whether its subnets share the batch
(per-example masks), whether every rank draws its own and whether it distils; the config, the CLI
and the trainer read it there, so a new sampling is one `register_sampling` call.

`alike_share` of the random draws are alike draws (`SearchSpace.sample_alike`: one G in every
block in GLiT's spaces). Uniform draws reach the all-global chain once in 4^depth steps, and in
a supernet whose locality module does the token mixing, its attention stays near uniform
(benchmarks/glit_subnets.py measures both).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hwnas.errors import HwnasError
from hwnas.spaces import Arch, SearchSpace


@dataclass(frozen=True)
class Draw:
    """The random subnets of one step, all from one explicit generator (no global random state):
    `draw()` gives one, `draw.several(n)` n drawn together."""

    space: SearchSpace
    rng: random.Random
    kind: str = "uniform"  # uniform: per gene (`space.sample`); distinct: over distinct archs
    alike_share: float = 0.0
    spread: bool = True  # several() spreads uniform draws over the choices (runs of formats 1 and 2 did not)

    def __call__(self) -> Arch:  # no extra random number without alike draws: earlier runs keep their sequence
        if self.alike_share and self.rng.random() < self.alike_share:
            return self.space.sample_alike(self.rng)
        return self.space.sample_distinct(self.rng) if self.kind == "distinct" else self.space.sample(self.rng)

    def several(self, count: int) -> list[Arch]:
        """`count` subnets of one step. Uniform draws are spread (`SearchSpace.sample_spread`: no
        two share a gene's value where the choices allow it); distinct and alike draws weight whole
        archs, which a spread per gene would undo, so they are drawn one by one."""
        if self.spread and self.kind == "uniform" and not self.alike_share:
            return self.space.sample_spread(count, self.rng)
        return [self() for _ in range(count)]


@dataclass(frozen=True)
class Sampling:
    """One way to pick the subnets a training step trains."""

    name: str
    summary: str  # one line for `hwnas train --help`
    draw: str | None = None  # how it draws its one subnet (uniform, distinct); None: the run's draw kind
    per_example: bool = False  # its subnets share the batch, one slice each (needs per-example channel masks)
    distils: bool = False  # the first subnet learns from the labels, the others from its logits
    # every DDP rank draws its own subnets, keyed by its rank (DDP averages the gradients of them all);
    # otherwise every rank trains the same ones, and the trainer checks that the ranks agree on them
    per_rank: bool = False

    def archs(self, space: SearchSpace, draw: Draw, sandwich_random: int, archs_per_batch: int) -> list[Arch]:
        return [draw()]


@dataclass(frozen=True)
class Sandwich(Sampling):
    def archs(self, space: SearchSpace, draw: Draw, sandwich_random: int, archs_per_batch: int) -> list[Arch]:
        return [space.largest(), space.smallest(), *(draw() for _ in range(sandwich_random))]


@dataclass(frozen=True)
class MultiArchitectural(Sampling):
    def archs(self, space: SearchSpace, draw: Draw, sandwich_random: int, archs_per_batch: int) -> list[Arch]:
        return draw.several(archs_per_batch)


SAMPLINGS: dict[str, Sampling] = {}


def register_sampling(sampling: Sampling) -> Sampling:
    """Make a sampling known to the config, the CLI and the trainer by its name."""
    SAMPLINGS[sampling.name] = sampling
    return sampling


def get_sampling(name: str) -> Sampling:
    if name not in SAMPLINGS:
        raise HwnasError(f"unknown --sampling {name!r}; use {' or '.join(SAMPLINGS)}")
    return SAMPLINGS[name]


register_sampling(
    Sampling("uniform", "one arch per step, each gene drawn uniformly, depth first (AutoFormer)", draw="uniform")
)
register_sampling(
    Sampling("distinct", "one arch per step, uniform over distinct archs (ViTAS's default)", draw="distinct")
)
register_sampling(Sandwich("sandwich", "largest + smallest + random, distilled", distils=True))
register_sampling(
    MultiArchitectural(
        "multi",
        "--archs-per-batch archs per forward pass and process, per-example masks (ViT-ResNAS)",
        per_example=True,
        per_rank=True,
    )
)


def step_archs(
    space: SearchSpace,
    sampling: str,
    seed: int,
    step: int,
    sandwich_random: int = 2,
    archs_per_batch: int = 2,
    alike_share: float = 0.0,
    draw_kind: str = "uniform",
    rank: int | None = None,
    spread: bool = True,
) -> list[Arch]:
    """The archs of global step `step`; for sandwich the first is the teacher (the largest); for
    multi, `archs_per_batch` archs that share the batch (one slice of examples each). `draw_kind`
    draws the random subnets of sandwich and multi (uniform and distinct draw as they say). `rank`
    None: the draw every rank shares, from (seed, step); a rank: that rank's own, from (seed, step,
    rank) (`TrainConfig.draw_rank` says which). `spread` False: multi's subnets drawn independently,
    as runs of formats 1 and 2 drew them."""
    chosen = get_sampling(sampling)
    rng = random.Random(f"{seed}/{step}" if rank is None else f"{seed}/{step}/{rank}")
    draw = Draw(space, rng, chosen.draw or draw_kind, alike_share, spread)
    return chosen.archs(space, draw, sandwich_random, archs_per_batch)
