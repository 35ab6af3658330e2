"""What a supernet training run is: every choice that changes the result, saved with the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from hwnas.errors import HwnasError
from hwnas.family import get_family
from hwnas.spaces import SearchSpace
from hwnas.supernet.sharing import SHARINGS

SAMPLINGS = ("uniform", "sandwich", "multi")
SMALL_IMAGE = 64  # spaces at or below this resolution (the digits ones) get the small budget


@dataclass(frozen=True)
class TrainConfig:
    space: str
    data: str = "digits"
    # None: the space's default budget (see `with_defaults`)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    warmup_epochs: int | None = None
    drop_path: float | None = None
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    sampling: str = "uniform"
    sandwich_random: int = 2  # random subnets per sandwich step, besides the smallest
    archs_per_batch: int = 2  # multi: subnets per batch, each on batch_size / archs_per_batch examples
    alike_share: float | None = None  # share of random draws alike across blocks (None: the family's default)
    weight_sharing: str = "prefix"
    aug: str = "weak"
    seed: int = 0
    workers: int = 0

    def check(self) -> TrainConfig:
        if self.sampling not in SAMPLINGS:
            raise HwnasError(f"unknown --sampling {self.sampling!r}; use {' or '.join(SAMPLINGS)}")
        if self.weight_sharing not in SHARINGS:
            raise HwnasError(f"unknown --weight-sharing {self.weight_sharing!r}; use {' or '.join(SHARINGS)}")
        for name in ("epochs", "batch_size", "archs_per_batch"):
            if getattr(self, name) < 1:
                raise HwnasError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 <= self.alike_share <= 1:
            raise HwnasError(f"--alike-share {self.alike_share} is not a share; use a value in [0, 1]")
        if self.lr <= 0 or self.warmup_epochs < 0 or not 0 <= self.drop_path < 1:
            raise HwnasError("--lr must be positive, warm-up epochs at least 0 and drop-path in [0, 1)")
        if self.sampling == "multi" and self.batch_size % self.archs_per_batch:
            raise HwnasError(f"--batch-size {self.batch_size} is not a multiple of --archs-per-batch {self.archs_per_batch} "
                             f"(each subnet gets an equal share of the batch); pick a multiple of {self.archs_per_batch}")
        return self

    def with_defaults(self, space: SearchSpace) -> TrainConfig:
        """Fill unset budget fields: about two CPU minutes for digits-sized spaces (40 epochs, batch
        32, no DropPath), AutoFormer's recipe (per-GPU batch 128, lr 1e-3, 500 epochs, 20 warm-up,
        DropPath 0.1) otherwise; the share of alike draws is the family's (its supernet's
        `alike_share`), 0 in spaces without per-block high-level genes."""
        small = space.spec.img_size <= SMALL_IMAGE
        budget = dict(epochs=40, batch_size=32, lr=1e-3, warmup_epochs=3, drop_path=0.0) if small else \
            dict(epochs=500, batch_size=128, lr=1e-3, warmup_epochs=20, drop_path=0.1)
        supernet = get_family(space.family).supernet_class()
        budget["alike_share"] = supernet.alike_share if space.per_block_high_level_genes() else 0.0
        unset = {k: v for k, v in budget.items() if getattr(self, k) is None}
        if self.alike_share and not space.per_block_high_level_genes():
            raise HwnasError(f"--alike-share needs genes that take one high-level value per block (GLiT's "
                             f"global_heads); {space.key} has none: use --alike-share 0")
        if self.sampling == "multi" and not supernet.per_example_archs:
            raise HwnasError(f"--sampling multi needs per-example channel masks, which the {space.family} supernet "
                             f"({space.key}) does not have; use --sampling uniform or sandwich")
        return replace(self, **unset).check()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        d = {"alike_share": 0.0, **d}  # runs saved before the option drew no alike archs
        return cls(**{k: v for k, v in d.items() if k in names})
