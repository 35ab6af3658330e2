"""`hwnas train`: one weight-sharing supernet trained with timm's recipe pieces.

Each epoch ends with the supernet scored on the search-val split (largest, smallest and middle
subnets), the metrics files and plot rewritten, and a checkpoint written atomically; `resume`
continues from the last one exactly (model, optimiser, scheduler, RNG, epoch).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2, param_groups_weight_decay
from timm.scheduler import CosineLRScheduler
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from hwnas.data import (
    AUGMENTS,
    FAILED,
    IMAGE_INDEX,
    IN_MEMORY,
    EpochIndices,
    ImagePool,
    PoolDataset,
    Split,
    load_pool,
    save_index,
)
from hwnas.data.split import DataError
from hwnas.errors import HwnasError
from hwnas.io import atomic_write_bytes, atomic_write_json
from hwnas.plots import figure, save_figure
from hwnas.rng import rng_state, seed_everything, set_rng_state
from hwnas.spaces import Arch, SearchSpace, get_space
from hwnas.supernet import build_supernet
from hwnas.training.checkpoint import CHECKPOINT, CheckpointError, load_checkpoint, save_checkpoint, save_weights
from hwnas.training.config import TrainConfig
from hwnas.training.distributed import World, join_world
from hwnas.training.evaluate import batchnorm_calibration, loader_settings, split_loader, top1
from hwnas.training.multi_arch import step_model
from hwnas.training.run import CONFIG, SPACE, SPLIT, check_run_space
from hwnas.training.sampling import get_sampling, step_archs

METRICS_JSONL, METRICS_CSV, CURVE = "metrics.jsonl", "metrics.csv", "learning_curve.png"
TOKEN_PARAMETERS = ("pos_embed", "cls_token", "*.pos_embed", "*.cls_token")  # timm patterns of parameter names


@dataclass
class Recipe:
    """The optimisation pieces of a run, built from its config."""

    optimizer: torch.optim.Optimizer
    scheduler: CosineLRScheduler
    mixup: Mixup | None
    criterion: torch.nn.Module

    def step(self, loss: torch.Tensor, scaler: torch.amp.GradScaler, global_step: int) -> None:
        """One optimiser step on `loss` (scaled under AMP), then the per-step learning rate."""
        self.optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(self.optimizer)
        scaler.update()
        self.scheduler.step_update(global_step + 1)


def build_recipe(supernet: torch.nn.Module, config: TrainConfig, steps_per_epoch: int, num_classes: int) -> Recipe:
    aug = AUGMENTS[config.aug]
    # biases, norms and (as in timm's ViT and AutoFormer) position embeddings and class tokens decay not
    groups = param_groups_weight_decay(
        supernet, config.weight_decay, no_weight_decay_list=TOKEN_PARAMETERS if config.no_weight_decay else ()
    )
    optimizer = create_optimizer_v2(groups, "adamw", lr=config.lr, weight_decay=config.weight_decay)
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=config.epochs * steps_per_epoch,
        lr_min=config.min_lr,
        warmup_t=config.warmup_epochs * steps_per_epoch,
        warmup_lr_init=config.lr / 100,
        t_in_epochs=False,
    )
    mixup = (
        Mixup(
            mixup_alpha=aug.mixup, cutmix_alpha=aug.cutmix, label_smoothing=aug.label_smoothing, num_classes=num_classes
        )
        if aug.mixes
        else None
    )
    if mixup:
        criterion: torch.nn.Module = SoftTargetCrossEntropy()
    elif aug.label_smoothing:
        criterion = LabelSmoothingCrossEntropy(aug.label_smoothing)
    else:
        criterion = torch.nn.CrossEntropyLoss()
    return Recipe(optimizer, scheduler, mixup, criterion)


def distill(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """In-place distillation: cross-entropy to the (detached) teacher's softmax."""
    return torch.sum(-F.softmax(teacher.detach(), dim=-1) * F.log_softmax(student, dim=-1), dim=-1).mean()


def prepare_run(
    config: TrainConfig, out: Path, resume: bool, write: bool = True
) -> tuple[SearchSpace, TrainConfig, ImagePool, Split, dict[str, Any] | None]:
    """Check the run folder; list the data (once per run: a folder's listing is kept in the run),
    take the space's shape from it, load or draw (and, if `write`, save) the split, fill the
    budget by the size of the train part; the checkpoint when resuming. Under torchrun the writing
    rank goes first and the others read what it wrote."""
    state = None
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise CheckpointError(f"no checkpoint at {out / CHECKPOINT}; start the run without --resume")
        saved = TrainConfig.from_dict(
            json.loads((out / CONFIG).read_text())
            if (out / CONFIG).is_file()
            else load_checkpoint(out / CHECKPOINT, get_space(config.space, **config.shape()))["config"]
        )
        check_run_space(out, get_space(config.space, **saved.shape()))  # the space's content first
        conflicts = replace(config, space=None).conflicts(saved)  # type: ignore[arg-type]  # the space: by content
        if conflicts:
            raise HwnasError(
                f"--resume with other settings than the run's: {', '.join(conflicts)}; "
                f"resume with the run's settings or use another --out"
            )
        config = replace(saved, space=config.space, workers=config.workers)
    elif (out / CHECKPOINT).exists():
        raise HwnasError(f"{out} already holds a training run; pass --resume to continue it or use another --out")
    config = replace(config, search_val=config.search_val or "auto")
    named = get_space(config.space, **config.shape())  # its class count is checked against the data below
    s, in_memory = named.spec, config.data in IN_MEMORY
    pool = load_pool(
        config.data, s.img_size, s.in_chans, s.num_classes if in_memory else config.num_classes, index=out / IMAGE_INDEX
    )
    if not in_memory:  # the folder's class count goes into the run's space
        config = replace(config, num_classes=len(pool.classes))
    space = get_space(config.space, **config.shape())
    if resume:
        state = load_checkpoint(out / CHECKPOINT, space)
    if (out / SPLIT).exists():
        split = Split.load(out / SPLIT)
        if split.source != pool.name:
            raise DataError(f"{out}/{SPLIT} splits {split.source}, not {pool.name}; use another --out")
    else:
        split = pool.split(config.seed, config.search_val)
    config = config.with_defaults(space, train_images=len(split.train))
    if write:  # only once everything is checked: bad input leaves no folder behind
        out.mkdir(parents=True, exist_ok=True)
        if not in_memory and not (out / IMAGE_INDEX).is_file():
            save_index(pool, out / IMAGE_INDEX)
        if not (out / SPLIT).is_file():
            split.save(out / SPLIT)
        atomic_write_json(out / CONFIG, config.to_dict())
        atomic_write_json(out / SPACE, space.spec.to_dict())
    return space, config, pool, split, state


def train(config: TrainConfig, out: Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the supernet of `config.space` into the run folder `out`; under torchrun,
    data-parallel over the ranks."""
    world = join_world()
    try:
        return _train(world, config, out, resume, progress and world.is_main)
    finally:
        world.close()


def _train(world: World, config: TrainConfig, out: Path, resume: bool, progress: bool) -> dict[str, Any]:
    # rank 0 lists the data and draws the split; the other ranks read both
    device = world.device()  # before the first collective: NCCL's barrier needs this rank's GPU set
    space, config, pool, split, state = world.main_first(lambda: prepare_run(config, out, resume, write=world.is_main))
    if progress:  # what the defaults chose, before any time is spent
        tqdm.write(
            f"train {space.key} on {pool.name} ({len(split.train):,} train, {len(split.search_val):,} search-val "
            f"images): {config.describe()}",
            file=sys.stderr,
        )
    seed_everything(config.seed)  # torch (init, DropPath, shifts), numpy (timm's Mixup/CutMix), python
    supernet = build_supernet(space, drop_path_rate=config.drop_path, weight_sharing=config.weight_sharing).to(device)
    loader, sampler = train_loader(space, config, pool, split, world, device)
    steps = len(loader)
    recipe = build_recipe(supernet, config, steps, space.spec.num_classes)
    sampling = get_sampling(config.sampling)
    model = step_model(supernet, sampling.per_example, world.distributed)
    val_loader = split_loader(space, config, pool, split, "search_val")
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    draw_rank = config.draw_rank(world.rank)  # None: every rank draws the same subnets
    metrics: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None:
        metrics, start_epoch = restore(state, supernet, recipe, scaler, world.size, draw_rank is not None)
    probes = {"largest": space.largest(), "smallest": space.smallest(), "middle": space.middle()}
    # decoded once, kept in host memory (not beside the training on the GPU); moved per batch when used
    calibration = batchnorm_calibration(space, config, pool, split) if world.is_main else None

    draw_kind = config.draw_kind(space)

    def archs_of(draws: SearchSpace, step: int, rank: int | None) -> list[Arch]:
        return step_archs(
            draws,
            config.sampling,
            config.seed,
            step,
            config.sandwich_random,
            config.archs_per_batch,
            config.alike_share,
            draw_kind,
            rank,
            config.spreads,
        )

    # timm's Mixup pairs a batch with its reverse; multi-architectural sampling slices it per subnet
    batch_multiple = math.lcm(2 if recipe.mixup else 1, config.archs_per_batch if sampling.per_example else 1)
    for epoch in range(start_epoch, config.epochs):
        began = time.perf_counter()
        # the family's warm-up (ViT-ResNAS: rewired weights, the largest choices first); from the epoch and weights alone
        draws = supernet.on_epoch(epoch, config.epochs, recipe.optimizer) if config.warmup_choices else space
        model.train()
        sampler.set_epoch(epoch)
        losses, trained, failed = [], hashlib.sha256(), 0
        for i, (x, y) in enumerate(
            tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, disable=not progress)
        ):
            global_step = epoch * steps + i
            if (y == FAILED).any():  # images that did not decode: skipped, counted
                failed += int((y == FAILED).sum())
                x, y = without_failed(x, y, batch_multiple)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if recipe.mixup:
                x, y = recipe.mixup(x, y)
            archs = archs_of(draws, global_step, draw_rank)
            trained.update("".join(a.digest for a in archs).encode())
            with torch.autocast(device.type, enabled=amp):
                logits = model(x, archs)  # one tensor per subnet, or one for all that share the batch
                loss = recipe.criterion(logits[0], y)
                for other in logits[1:]:  # students learn from the first subnet's logits, or all from the labels
                    loss = loss + (distill(other, logits[0]) if sampling.distils else recipe.criterion(other, y))
            recipe.step(loss, scaler, global_step)
            losses.append(float(loss.detach()))
        archs_sha = trained.hexdigest()[:16]
        if draw_rank is None:
            world.agree(archs_sha, f"the archs trained in epoch {epoch + 1}")
        else:  # each rank trained its own: the ranks agree on what every rank draws, and the row holds all
            first = [archs_of(draws, epoch * steps, r) for r in range(world.size)]
            world.agree(digest(a.digest for archs in first for a in archs), f"the archs drawn in epoch {epoch + 1}")
            archs_sha = digest(world.gather(archs_sha))
        failed = world.total(failed)
        if world.is_main:
            scoring = calibration.for_new_weights() if calibration else None  # this epoch's weights
            row = {
                "epoch": epoch + 1,
                "loss": sum(losses) / max(len(losses), 1),
                "lr": recipe.optimizer.param_groups[0]["lr"],
                "archs_sha": archs_sha,
                "failed_images": failed,
                **{f"val_top1_{name}": top1(supernet, arch, val_loader, scoring) for name, arch in probes.items()},
                "seconds": round(time.perf_counter() - began, 2),
            }
            metrics.append(row)
            if progress:
                tqdm.write(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
            save_weights(out, supernet, space)
            write_metrics(out, metrics)
            save_checkpoint(
                out,
                {
                    "space": space.key,
                    "space_digest": space.digest,
                    "config": config.to_dict(),
                    "epoch": epoch,
                    "processes": world.size,
                    "model": supernet.state_dict(),
                    "optimizer": recipe.optimizer.state_dict(),
                    "scheduler": recipe.scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": rng_state(),
                    "metrics": metrics,
                },
            )
        world.barrier()
    return {
        "run": str(out),
        "space": space.key,
        "config": config.to_dict(),
        "epochs_run": config.epochs - start_epoch,
        "processes": world.size,
        "rank": world.rank,
        "final": metrics[-1] if metrics else None,
        "metrics": str(out / METRICS_CSV),
        "plot": str(out / CURVE),
    }


def train_loader(
    space: SearchSpace, config: TrainConfig, pool: ImagePool, split: Split, world: World, device: torch.device
) -> tuple[DataLoader, DistributedSampler]:
    """The augmented train part in batches; the shuffle of every epoch is fixed by (seed, epoch):
    resumable, and sharded over the ranks (`sampler.set_epoch` before each epoch)."""
    train_set = PoolDataset(
        pool,
        split.train,
        space.spec.img_size,
        space.spec.in_chans,
        training=True,
        augment=AUGMENTS[config.aug],
        hflip=config.hflip,
        seed=config.seed,
    )
    sampler = DistributedSampler(
        train_set, num_replicas=world.size, rank=world.rank, shuffle=True, seed=config.seed, drop_last=True
    )
    loader = DataLoader(
        train_set,
        batch_size=config.batch_size,
        sampler=EpochIndices(sampler),
        drop_last=True,
        **loader_settings(config.workers, device),
    )
    if len(loader) == 0:
        raise DataError(
            f"the train split has {len(train_set)} images, too few for --batch-size {config.batch_size} "
            f"on {world.size} process(es)"
        )
    return loader, sampler


def restore(
    state: dict[str, Any],
    model: torch.nn.Module,
    recipe: Recipe,
    scaler: torch.amp.GradScaler,
    processes: int,
    per_rank: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """Load a checkpoint's model, optimiser, scheduler, scaler and RNG; its metrics and next epoch.
    Refused on another number of processes: the global batch and the schedule's steps would change,
    and where every rank draws its own subnets (`per_rank`) the subnets of every step."""
    saved = state.get("processes")  # not recorded in older checkpoints
    if saved is not None and int(saved) != processes:
        changes = "global batch and learning-rate schedule"
        if per_rank:
            changes = "global batch, learning-rate schedule and subnets of every step"
        raise HwnasError(
            f"the checkpoint was written by {saved} process(es) and this resume runs {processes}; the "
            f"{changes} would change: resume with `torchrun --nproc_per_node {saved}`"
        )
    model.load_state_dict(state["model"])
    recipe.optimizer.load_state_dict(state["optimizer"])
    recipe.scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return list(state["metrics"]), int(state["epoch"]) + 1


def digest(parts: Iterable[str]) -> str:
    """16 hex digits of sha256 over `parts` in order (an epoch's archs, the ranks' digests)."""
    return hashlib.sha256("".join(parts).encode()).hexdigest()[:16]


def without_failed(x: torch.Tensor, y: torch.Tensor, multiple: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch without its images that failed to decode, cut to a multiple of `multiple`; a batch
    left empty means the data, not a file, is broken (every rank must step, so it cannot be skipped)."""
    keep = y != FAILED
    x, y = x[keep], y[keep]
    x, y = x[: len(y) // multiple * multiple], y[: len(y) // multiple * multiple]
    if len(y) == 0:
        raise DataError("no image of a training batch decoded; check that the data folder's files are readable images")
    return x, y


def write_metrics(out: Path, metrics: list[dict[str, Any]], curves: dict[str, str] | None = None) -> None:
    """metrics.jsonl and .csv (rewritten whole, atomically) and the learning-curve PNG: the loss,
    and beside it the search-val top-1 columns `curves` names (label -> column; default: the
    supernet's largest, middle and smallest subnets)."""
    curves = curves or {name: f"val_top1_{name}" for name in ("largest", "middle", "smallest")}
    atomic_write_bytes(out / METRICS_JSONL, "".join(json.dumps(m) + "\n" for m in metrics))
    df = pd.DataFrame(metrics)
    atomic_write_bytes(out / METRICS_CSV, df.to_csv(index=False))
    fig, (ax_loss, ax_acc) = figure(10, 4, ncols=2)
    ax_loss.plot(df["epoch"], df["loss"], label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    for label, column in curves.items():
        ax_acc.plot(df["epoch"], df[column], label=label)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("search-val top-1 (%)")
    ax_acc.legend()
    save_figure(fig, out / CURVE)
