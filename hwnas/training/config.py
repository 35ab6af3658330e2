"""What a supernet training run is: every choice that changes the result, saved with the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from hwnas import migrate
from hwnas.data import IN_MEMORY
from hwnas.errors import HwnasError
from hwnas.families.registry import get_family
from hwnas.resources import available_cores
from hwnas.spaces import SearchSpace
from hwnas.supernet.sharing import SHARINGS
from hwnas.training.sampling import SAMPLINGS, get_sampling

SMALL_DATA = 20_000  # train images at or below this get the small budget (digits: 1,167; ImageNet: 1.28M)
MAX_WORKERS = 8
# 1: runs before `sampling distinct` and `no_weight_decay` (their "uniform" drew distinct archs);
# 2: runs whose `multi` subnets were drawn independently and shared by every process, and before
#    `warmup_choices` (they had none)
FORMAT = 3


def local_workers(data: str) -> int:
    """Loader processes on this machine: the cores (at most `MAX_WORKERS`) for a folder, none for
    data held in memory. Evaluation uses this, not the training run's count from another machine."""
    return 0 if data in IN_MEMORY else min(available_cores(), MAX_WORKERS)


@dataclass(frozen=True)
class TrainConfig:
    space: str
    data: str = "digits"
    # the space's shape, when the data sets it (a folder's class count, --img-size); None: the space's
    img_size: int | None = None
    num_classes: int | None = None
    # None: the space's default budget (see `with_defaults`)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    warmup_epochs: int | None = None
    drop_path: float | None = None
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    sampling: str | None = None  # None: the space's (`SearchSpace.default_sampling`)
    sandwich_random: int = 2  # random subnets per sandwich step, besides the smallest
    archs_per_batch: int = 2  # multi: subnets per batch, each on batch_size / archs_per_batch examples
    # multi: every process trains the same subnets, drawn from (seed, step), instead of its own (None: no)
    shared_draws: bool | None = None
    alike_share: float | None = None  # share of random draws alike across blocks (None: the family's default)
    weight_sharing: str = "prefix"
    aug: str = "weak"
    hflip: float | None = None  # None: 0.5 on folders, 0 on the in-memory digits (a flipped digit is another symbol)
    no_weight_decay: bool | None = None  # pos_embed and cls_token without weight decay (None: yes, as timm's ViT)
    # the family's warm-up of choices (`Supernet.on_epoch`; ViT-ResNAS: largest first, rewiring) (None: where it has one)
    warmup_choices: bool | None = None
    # the search-val part of train: auto (15%, at most 10,000), P%, N images or N/class (None: auto)
    search_val: str | None = None
    seed: int = 0
    # DataLoader processes for folder data (None: the cores here, at most 8); not a result-changing
    # setting: folder augmentation is seeded per (seed, epoch, image), in-memory data loads in-process
    workers: int | None = None
    format: int = FORMAT

    def check(self) -> TrainConfig:
        sampling = get_sampling(self.sampling)  # or a one-line error naming the samplings
        if self.weight_sharing not in SHARINGS:
            raise HwnasError(f"unknown --weight-sharing {self.weight_sharing!r}; use {' or '.join(SHARINGS)}")
        for name in ("epochs", "batch_size", "archs_per_batch", *(["img_size"] if self.img_size is not None else [])):
            if getattr(self, name) < 1:
                raise HwnasError(f"--{name.replace('_', '-')} must be at least 1")
        if self.workers < 0:
            raise HwnasError(f"--workers {self.workers} is negative; use 0 (load in the training process) or more")
        if not 0 <= self.hflip <= 1:
            raise HwnasError(f"--hflip {self.hflip} is not a probability; use a value in [0, 1] (0 for digits or text)")
        if not 0 <= self.alike_share <= 1:
            raise HwnasError(f"--alike-share {self.alike_share} is not a share; use a value in [0, 1]")
        if self.lr <= 0 or self.warmup_epochs < 0 or not 0 <= self.drop_path < 1:
            raise HwnasError("--lr must be positive, warm-up epochs at least 0 and drop-path in [0, 1)")
        if self.shared_draws and not sampling.per_rank:
            raise HwnasError(
                f"--shared-draws is for samplings whose processes draw their own subnets "
                f"({', '.join(s.name for s in SAMPLINGS.values() if s.per_rank)}); under --sampling "
                f"{self.sampling} every process trains the same ones already: leave it out"
            )
        if sampling.per_example and self.batch_size % self.archs_per_batch:
            raise HwnasError(
                f"--batch-size {self.batch_size} is not a multiple of --archs-per-batch {self.archs_per_batch} "
                f"(each subnet gets an equal share of the batch); pick a multiple of {self.archs_per_batch}"
            )
        return self

    def with_defaults(self, space: SearchSpace, *, train_images: int = 0) -> TrainConfig:
        """Fill unset fields (`train_images` by default: small data, as the digits). The budget
        follows the size of the data and the family (`Family.small_data`, `Family.large_data`): up
        to `SMALL_DATA` train images a few CPU minutes (by default 40 epochs, batch 32, no DropPath),
        above it the family's ImageNet recipe as released (AutoFormer's: per-GPU batch 128, lr 1e-3,
        500 epochs, 20 warm-up, DropPath 0.1). The sampler is the space's `default_sampling`, the share
        of alike draws its family's (`Family.alike_share`); flips are on for folders only; workers are the cores here (at
        most 8) for folders, 0 for data held in memory."""
        small, in_memory = train_images <= SMALL_DATA, self.data in IN_MEMORY
        family = get_family(space.family)
        budget: dict[str, Any] = asdict(family.training_budget(space, small))
        supernet = family.supernet_class()
        budget["alike_share"] = family.alike_share if space.per_block_high_level_genes() else 0.0
        budget["sampling"] = space.default_sampling
        budget["hflip"] = 0.0 if in_memory else 0.5
        budget["no_weight_decay"] = True
        budget["shared_draws"] = False
        budget["warmup_choices"] = supernet.warms_up_choices
        budget["workers"] = local_workers(self.data)
        unset = {k: v for k, v in budget.items() if getattr(self, k) is None}
        if in_memory:
            unset["workers"] = 0
        if self.alike_share and not space.per_block_high_level_genes():
            raise HwnasError(
                f"--alike-share needs genes that take one high-level value per block (GLiT's "
                f"global_heads); {space.key} has none: use --alike-share 0"
            )
        if self.warmup_choices and not supernet.warms_up_choices:
            raise HwnasError(
                f"--warmup-choices: the {space.family} supernet ({space.key}) has no warm-up of choices; "
                f"leave the option out"
            )
        if self.sampling is not None and get_sampling(self.sampling).per_example and not supernet.per_example_archs:
            raise HwnasError(
                f"--sampling {self.sampling} needs per-example channel masks, which the {space.family} supernet "
                f"({space.key}) does not have; use --sampling uniform or sandwich"
            )
        return replace(self, **unset).check()

    def describe(self) -> str:
        """The recipe in one line, as `hwnas train` prints it before the first epoch (defaults filled)."""
        sampling = f"sampling {self.sampling}"
        chosen = get_sampling(self.sampling)
        if chosen.per_example:
            sampling += f" ({self.archs_per_batch} subnets per batch)"
        if chosen.per_rank:
            sampling += ", drawn per process" if self.draw_rank(0) is not None else ", the same on every process"
        if self.alike_share:
            sampling += f", alike share {self.alike_share:g}"
        if self.warmup_choices:
            sampling += ", warm-up of choices"
        return (
            f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}, batch {self.batch_size}, lr {self.lr:g} "
            f"({self.warmup_epochs} warm-up), drop-path {self.drop_path:g}, {sampling}, augmentation {self.aug}, "
            f"hflip {self.hflip:g}, {self.weight_sharing} weight sharing, seed {self.seed}"
        )

    def draw_kind(self, space: SearchSpace) -> str:
        """How the random subnets of a step are drawn: as `sampling` says for uniform and distinct;
        for sandwich and multi the space's default (runs of format 1 drew distinct archs)."""
        own = get_sampling(self.sampling).draw
        if own is not None:
            return own
        return "distinct" if self.format == 1 else space.default_sampling

    def draw_rank(self, rank: int) -> int | None:
        """The rank that keys this process's random subnets (`step_archs`): its own under a sampling
        that draws per rank (multi), so that a step trains different subnets on every process;
        None, the draw every rank shares, otherwise, with `shared_draws`, and in runs of formats 1
        and 2 (whose processes all drew the same subnets: a resume continues their sequence)."""
        own = get_sampling(self.sampling).per_rank and not self.shared_draws and self.format >= 3
        return rank if own else None

    @property
    def spreads(self) -> bool:
        """Whether a step's several random subnets are spread over the choices (`Draw.several`);
        runs of formats 1 and 2 drew them independently."""
        return self.format >= 3

    def shape(self) -> dict[str, int]:
        """The space options this run sets (`get_space(name, **shape)`)."""
        return {k: v for k, v in (("img_size", self.img_size), ("num_classes", self.num_classes)) if v is not None}

    def conflicts(self, run: TrainConfig) -> list[str]:
        """The settings given here (not None) that differ from a run's: `--resume` refuses them.
        Workers change no result, and the format is the run's."""
        return [
            f"{k}={getattr(self, k)!r} (run: {getattr(run, k)!r})"
            for k in self.to_dict()
            if k not in ("workers", "format", "space")
            and getattr(self, k) is not None
            and getattr(self, k) != getattr(run, k)
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        d = migrate.train_config(d)
        return cls(**{k: v for k, v in d.items() if k in names})
