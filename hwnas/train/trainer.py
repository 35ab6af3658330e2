"""`hwnas train`: one weight-sharing supernet trained with timm's recipe pieces.

Each epoch ends with the supernet scored on the search-val split (largest, smallest and middle
subnets), the metrics files and plot rewritten, and a checkpoint written atomically; `resume`
continues from the last one exactly (model, optimiser, scheduler, RNG, epoch).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from hwnas.data import AUGMENTS, ImagePool, PoolDataset, Split, load_pool
from hwnas.data.split import DataError
from hwnas.errors import HwnasError
from hwnas.io import atomic_write_bytes, atomic_write_json
from hwnas.plots import figure, save_figure
from hwnas.spaces import SearchSpace, get_space
from hwnas.supernet import Supernet, build_supernet
from hwnas.train.checkpoint import (CHECKPOINT, load_checkpoint, rng_state, save_checkpoint, save_weights,
                                   seed_everything, set_rng_state)
from hwnas.train.config import TrainConfig
from hwnas.train.distributed import MultiArch, World, join_world
from hwnas.train.evaluate import CONFIG, SPACE, SPLIT, batchnorm_calibration, check_run_space, split_loader, top1
from hwnas.train.sampling import step_archs

METRICS_JSONL, METRICS_CSV, CURVE = "metrics.jsonl", "metrics.csv", "learning_curve.png"


@dataclass
class Recipe:
    """The optimisation pieces of a run, built from its config."""

    optimizer: torch.optim.Optimizer
    scheduler: CosineLRScheduler
    mixup: Mixup | None
    criterion: torch.nn.Module


def build_recipe(supernet: Supernet, config: TrainConfig, steps_per_epoch: int, num_classes: int) -> Recipe:
    aug = AUGMENTS[config.aug]
    optimizer = create_optimizer_v2(supernet, "adamw", lr=config.lr, weight_decay=config.weight_decay)
    scheduler = CosineLRScheduler(optimizer, t_initial=config.epochs * steps_per_epoch, lr_min=config.min_lr,
                                  warmup_t=config.warmup_epochs * steps_per_epoch, warmup_lr_init=config.lr / 100,
                                  t_in_epochs=False)
    mixup = Mixup(mixup_alpha=aug.mixup, cutmix_alpha=aug.cutmix, label_smoothing=aug.label_smoothing,
                  num_classes=num_classes) if aug.mixes else None
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


def prepare_run(config: TrainConfig, out: Path, resume: bool,
                write: bool = True) -> tuple[SearchSpace, TrainConfig, ImagePool, Split, dict[str, Any] | None]:
    """Check the run folder, then load or draw (and, if `write`, save) the split; the checkpoint when
    resuming. Every rank draws the same split; only the writing one saves it."""
    space = get_space(config.space)
    config = config.with_defaults(space)
    state = None
    if resume:
        check_run_space(out, space)
        state = load_checkpoint(out / CHECKPOINT, space)
        saved = replace(TrainConfig.from_dict(state["config"]), space=config.space)  # the content was compared above
        if saved != config:
            diff = [f"{k}={getattr(config, k)!r} (run: {getattr(saved, k)!r})" for k in config.to_dict()
                    if getattr(config, k) != getattr(saved, k)]
            raise HwnasError(f"--resume with other settings than the run's: {', '.join(diff)}; "
                             f"resume with the run's settings or use another --out")
    elif (out / CHECKPOINT).exists():
        raise HwnasError(f"{out} already holds a training run; pass --resume to continue it or use another --out")
    if write:
        out.mkdir(parents=True, exist_ok=True)
    pool = load_pool(config.data, space.spec.img_size, space.spec.in_chans, space.spec.num_classes)
    if (out / SPLIT).exists():
        split = Split.load(out / SPLIT)
        if split.source != pool.name:
            raise DataError(f"{out}/{SPLIT} splits {split.source}, not {pool.name}; use another --out")
    else:
        split = pool.split(config.seed)
        if write:
            split.save(out / SPLIT)
    if write:
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
    space, config, pool, split, state = prepare_run(config, out, resume, write=world.is_main)
    device = world.device()
    seed_everything(config.seed)  # torch (init, DropPath, shifts), numpy (timm's Mixup/CutMix), python
    supernet = build_supernet(space, drop_path_rate=config.drop_path, weight_sharing=config.weight_sharing).to(device)
    aug = AUGMENTS[config.aug]
    train_set = PoolDataset(pool, split.train, space.spec.img_size, training=True, augment=aug)
    # the shuffle of every epoch is fixed by (seed, epoch): resumable, and sharded over the ranks
    sampler = DistributedSampler(train_set, num_replicas=world.size, rank=world.rank, shuffle=True, seed=config.seed,
                                 drop_last=True)
    loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler, drop_last=True,
                        num_workers=config.workers)
    steps = len(loader)
    if steps == 0:
        raise DataError(f"the train split has {len(train_set)} images, too few for --batch-size {config.batch_size} "
                        f"on {world.size} process(es)")
    recipe = build_recipe(supernet, config, steps, space.spec.num_classes)
    model: torch.nn.Module = MultiArch(supernet, per_example=config.sampling == "multi")
    if world.distributed:
        model = DistributedDataParallel(model, find_unused_parameters=True)  # skipped layers get no gradient
    val_loader = split_loader(space, config, pool, split, "search_val")
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    metrics: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None:
        supernet.load_state_dict(state["model"])
        recipe.optimizer.load_state_dict(state["optimizer"])
        recipe.scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        metrics, start_epoch = list(state["metrics"]), int(state["epoch"]) + 1
    probes = {"largest": space.largest(), "smallest": space.smallest(), "middle": space.middle()}
    # decoded once, kept in host memory (not beside the training on the GPU); moved per batch when used
    calibration = batchnorm_calibration(space, config, pool, split) if world.is_main else None

    for epoch in range(start_epoch, config.epochs):
        began = time.perf_counter()
        model.train()
        sampler.set_epoch(epoch)
        losses, trained = [], hashlib.sha256()
        for i, (x, y) in enumerate(tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                                        disable=not progress)):
            global_step = epoch * steps + i
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if recipe.mixup:
                x, y = recipe.mixup(x, y)
            archs = step_archs(space, config.sampling, config.seed, global_step, config.sandwich_random,
                               config.archs_per_batch, config.alike_share)
            trained.update("".join(a.digest for a in archs).encode())
            with torch.autocast(device.type, enabled=amp):
                teacher, *students = model(x, archs)
                loss = recipe.criterion(teacher, y)
                for student in students:
                    loss = loss + distill(student, teacher)
            recipe.optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(recipe.optimizer)
            scaler.update()
            recipe.scheduler.step_update(global_step + 1)
            losses.append(float(loss.detach()))
        archs_sha = trained.hexdigest()[:16]
        world.agree(archs_sha, f"the archs trained in epoch {epoch + 1}")
        if world.is_main:
            scoring = calibration.for_new_weights() if calibration else None  # this epoch's weights
            row = {"epoch": epoch + 1, "loss": sum(losses) / len(losses), "lr": recipe.optimizer.param_groups[0]["lr"],
                   "archs_sha": archs_sha,
                   **{f"val_top1_{name}": top1(supernet, arch, val_loader, scoring) for name, arch in probes.items()},
                   "seconds": round(time.perf_counter() - began, 2)}
            metrics.append(row)
            if progress:
                tqdm.write(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
            save_weights(out, supernet, space)
            write_metrics(out, metrics)
            save_checkpoint(out, {"space": space.key, "space_digest": space.digest, "config": config.to_dict(), "epoch": epoch,
                                  "model": supernet.state_dict(), "optimizer": recipe.optimizer.state_dict(),
                                  "scheduler": recipe.scheduler.state_dict(), "scaler": scaler.state_dict(),
                                  "rng": rng_state(), "metrics": metrics})
        world.barrier()
    return {"run": str(out), "space": space.key, "config": config.to_dict(), "epochs_run": config.epochs - start_epoch,
            "processes": world.size, "rank": world.rank, "final": metrics[-1] if metrics else None, "metrics": str(out / METRICS_CSV),
            "plot": str(out / CURVE)}


def write_metrics(out: Path, metrics: list[dict[str, Any]]) -> None:
    """metrics.jsonl and .csv (rewritten whole, atomically) and the learning-curve PNG."""
    atomic_write_bytes(out / METRICS_JSONL, "".join(json.dumps(m) + "\n" for m in metrics))
    df = pd.DataFrame(metrics)
    atomic_write_bytes(out / METRICS_CSV, df.to_csv(index=False))
    fig, (ax_loss, ax_acc) = figure(10, 4, ncols=2)
    ax_loss.plot(df["epoch"], df["loss"], label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    for name in ("largest", "middle", "smallest"):
        ax_acc.plot(df["epoch"], df[f"val_top1_{name}"], label=name)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("search-val top-1 (%)")
    ax_acc.legend()
    save_figure(fig, out / CURVE)
