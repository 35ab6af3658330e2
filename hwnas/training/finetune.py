"""`hwnas finetune`: the searched subnet trained alone, as ViTAS, ViT-ResNAS and GLiT retrain theirs
(AutoFormer uses the inherited weights; its users ask for a recipe, Cream#95, #120).

The subnet is extracted with its inherited weights (BatchNorm recalibrated where the family needs
it) and trained on the run's train part with the run's augmentation, optionally distilled from the
supernet's largest subnet; `from_scratch` starts it from a fresh initialisation instead (what
`benchmarks/ranking.py` compares inherited accuracy with). The folder it writes is a run of its
own: a checkpoint every epoch (`resume` continues exactly), metrics, a learning curve, the
model's weights, and search-val and test top-1 before and after; `hwnas export --run FOLDER`
exports the fine-tuned weights. Under torchrun the ranks train data-parallel (DDP, each on its own
shard of the train part, so the global batch is the per-process `batch_size` x ranks); rank 0
scores, writes the folder and reports.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from hwnas.data import FAILED
from hwnas.errors import ArchError, HwnasError, cli_message
from hwnas.families.registry import build_model
from hwnas.io import atomic_write_bytes, atomic_write_json
from hwnas.rng import isolated_rng, rng_state, seed_everything
from hwnas.spaces import Arch
from hwnas.training.checkpoint import CHECKPOINT, CheckpointError, save_checkpoint
from hwnas.training.config import SMALL_DATA, TrainConfig
from hwnas.training.distributed import World, join_world
from hwnas.training.evaluate import Score, score_model, split_loader
from hwnas.training.run import TrainedRun
from hwnas.training.trainer import (
    CURVE,
    METRICS_CSV,
    build_recipe,
    distill,
    restore,
    train_loader,
    without_failed,
    write_metrics,
)

FINETUNE, MODEL, REPORT = "finetune.json", "model.safetensors", "finetune_report.json"
PARTS = ("search_val", "test")


@dataclass(frozen=True)
class FinetuneConfig:
    """What a fine-tuning is; None: the default below, from the run's budget."""

    run: str
    arch: dict[str, Any]
    epochs: int | None = None
    lr: float | None = None
    warmup_epochs: int | None = None
    batch_size: int | None = None
    distill: bool = False
    from_scratch: bool = False
    seed: int = 0

    def with_defaults(self, run: TrainedRun) -> FinetuneConfig:
        """Fine-tuning: a quarter of the supernet's epochs at a quarter of its peak learning rate,
        1 warm-up epoch on small data (5 on large); from scratch: the supernet's own budget."""
        c = run.config
        small = len(run.split.train) <= SMALL_DATA
        if self.from_scratch:
            budget = dict(epochs=c.epochs, lr=c.lr, warmup_epochs=c.warmup_epochs)
        else:
            budget = dict(epochs=max(1, c.epochs // 4), lr=c.lr / 4, warmup_epochs=1 if small else 5)
        budget["batch_size"] = c.batch_size
        filled = replace(self, **{k: v for k, v in budget.items() if getattr(self, k) is None})
        if filled.epochs < 1 or filled.batch_size < 1 or filled.lr <= 0 or filled.warmup_epochs < 0:
            raise HwnasError("--epochs and --batch-size must be at least 1, --lr positive, warm-up epochs at least 0")
        return filled

    def recipe(self, run: TrainedRun) -> TrainConfig:
        """The run's training settings with this fine-tuning's budget (no DropPath: one network)."""
        return replace(
            run.config,
            epochs=self.epochs,
            lr=self.lr,
            warmup_epochs=self.warmup_epochs,
            batch_size=self.batch_size,
            seed=self.seed,
            drop_path=0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _subnet(run: TrainedRun, arch: Arch | dict[str, Any]) -> Arch:
    try:
        found = arch if isinstance(arch, Arch) else Arch.from_dict(arch, run.space)
    except ArchError as exc:
        raise ArchError(f"{cli_message(exc)} (the run trained {run.space.key}: fine-tune one of its archs)") from None
    if found.space != run.space:
        raise ArchError(
            f"arch is from space {found.space.key!r}, but the run trained {run.space.key!r}; "
            f"fine-tune an arch of {run.space.key}"
        )
    return found


def finetune(config: FinetuneConfig, out: str | Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Fine-tune (or, `from_scratch`, train) subnet `config.arch` of the run `config.run` into `out`;
    under torchrun, data-parallel over the ranks (rank 0's report holds the results)."""
    world = join_world()
    try:
        return _finetune(world, config, Path(out), resume, progress and world.is_main)
    finally:
        world.close()


def _finetune(world: World, config: FinetuneConfig, out: Path, resume: bool, progress: bool) -> dict[str, Any]:
    run = TrainedRun(config.run)
    arch = _subnet(run, config.arch)
    config = replace(config, arch=arch.to_dict()).with_defaults(run)
    state = None
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise CheckpointError(f"no checkpoint at {out / CHECKPOINT}; start the fine-tuning without --resume")
        saved = FinetuneConfig.from_dict(json.loads((out / FINETUNE).read_text()))
        if saved != config:
            diff = [
                f"{k}={getattr(config, k)!r} (run: {getattr(saved, k)!r})"
                for k in config.to_dict()
                if getattr(config, k) != getattr(saved, k)
            ]
            raise HwnasError(
                f"--resume with other settings than the fine-tuning's: {', '.join(diff)}; "
                f"resume with its settings or use another --out"
            )
        state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    elif (out / CHECKPOINT).exists():
        raise HwnasError(f"{out} already holds a fine-tuning; pass --resume to continue it or use another --out")
    device = world.device()  # before the first collective: NCCL's barrier needs this rank's GPU set
    world.barrier()  # every rank has looked at the folder before rank 0 writes into it
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / FINETUNE, config.to_dict())

    recipe_config = config.recipe(run)
    seed_everything(config.seed)
    supernet = run.supernet()
    model = build_model(arch) if config.from_scratch else run.extract(arch, supernet)
    teacher = run.extract(run.space.largest(), supernet).to(device).eval() if config.distill else None
    del supernet
    model = model.to(device)
    # every rank starts from the same weights (extracted, or seeded alike); DDP keeps them in step
    trained = DistributedDataParallel(model) if world.distributed else model
    loader, sampler = train_loader(run.space, recipe_config, run.pool, run.split, world, device)
    steps = len(loader)
    recipe = build_recipe(model, recipe_config, steps, run.space.spec.num_classes)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    loaders = (
        {part: split_loader(run.space, run.config, run.pool, run.split, part) for part in PARTS}
        if world.is_main
        else {}
    )
    metrics: list[dict[str, Any]] = []
    start_epoch, before = 0, None
    if state is not None:
        metrics, start_epoch = restore(state, model, recipe, scaler, world.size)
        before = state["before"]
    elif world.is_main:
        before = {part: asdict(score_model(model, loaders[part])) for part in PARTS}
    batch_multiple = 2 if recipe.mixup else 1
    for epoch in range(start_epoch, config.epochs):
        began = time.perf_counter()
        model.train()
        sampler.set_epoch(epoch)
        losses, failed = [], 0
        for i, (x, y) in enumerate(
            tqdm(loader, desc=f"finetune {epoch + 1}/{config.epochs}", leave=False, disable=not progress)
        ):
            if (y == FAILED).any():
                failed += int((y == FAILED).sum())
                x, y = without_failed(x, y, batch_multiple)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if recipe.mixup:
                x, y = recipe.mixup(x, y)
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                logits = trained(x)
                loss = recipe.criterion(logits, y)
                if teacher is not None:
                    with torch.no_grad():
                        target = teacher(x)
                    loss = loss + distill(logits, target)
            recipe.step(loss, scaler, epoch * steps + i)
            losses.append(float(loss.detach()))
        failed = world.total(failed)
        if world.is_main:
            val = score_model(model, loaders["search_val"])
            row = {
                "epoch": epoch + 1,
                "loss": sum(losses) / max(len(losses), 1),
                "lr": recipe.optimizer.param_groups[0]["lr"],
                "failed_images": failed,
                "val_top1": val.top1,
                "val_loss": val.loss,
                "seconds": round(time.perf_counter() - began, 2),
            }
            metrics.append(row)
            if progress:
                tqdm.write(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
            atomic_write_bytes(
                out / MODEL,
                save(
                    {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                    metadata={"space": run.space.key, "space_digest": run.space.digest, "arch": arch.digest},
                ),
            )
            write_metrics(out, metrics, {"search-val": "val_top1"})
            save_checkpoint(
                out,
                {
                    "space": run.space.key,
                    "space_digest": run.space.digest,
                    "epoch": epoch,
                    "processes": world.size,
                    "model": model.state_dict(),
                    "optimizer": recipe.optimizer.state_dict(),
                    "scheduler": recipe.scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": rng_state(),
                    "metrics": metrics,
                    "before": before,
                },
            )
        world.barrier()
    if not world.is_main:
        return {"rank": world.rank, "processes": world.size, "out": str(out)}
    after = {part: asdict(score_model(model, loaders[part])) for part in PARTS}
    report = {
        "run": str(run.dir),
        "out": str(out),
        "arch": arch.to_dict(),
        "digest": arch.digest,
        "config": config.to_dict(),
        "epochs_run": config.epochs - start_epoch,
        "rank": 0,
        "processes": world.size,
        "before": before,
        "after": after,
        "metrics": str(out / METRICS_CSV),
        "plot": str(out / CURVE),
    }
    atomic_write_json(out / REPORT, report)
    return report


class FinetunedRun:
    """A fine-tuning folder as export reads a run: its space, split and data are the source run's;
    its one subnet has its own weights (no supernet)."""

    def __init__(self, folder: str | Path):
        self.dir = Path(folder)
        try:
            self.settings = FinetuneConfig.from_dict(json.loads((self.dir / FINETUNE).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"{self.dir} is not a fine-tuning folder ({cli_message(exc)}); make one with `hwnas finetune`"
            ) from exc
        self.source = TrainedRun(self.settings.run)
        self.space, self.split, self.config = self.source.space, self.source.split, self.source.config
        self.arch = Arch.from_dict(self.settings.arch, self.space)
        self.weights = self.dir / MODEL

    @cached_property
    def pool(self) -> Any:
        return self.source.pool

    def supernet(self) -> None:
        """No supernet: `extract` and `top1` use the fine-tuned weights."""
        return None

    def extract(self, arch: Arch, supernet: None = None) -> torch.nn.Module:
        if arch != self.arch:
            raise ArchError(
                f"{self.dir} fine-tuned arch {self.arch.digest}, not {arch.digest}; give its arch "
                f"({self.dir / FINETUNE}) or export from the supernet's run"
            )
        if not self.weights.is_file():
            raise CheckpointError(
                f"{self.dir} has no fine-tuned weights ({MODEL}) yet; finish `hwnas finetune --out {self.dir}`"
            )
        with isolated_rng():  # the initialisation is overwritten by the weights
            model = build_model(arch)
        model.load_state_dict(load_file(str(self.weights)), strict=True)
        return model.eval()

    def score(self, arch: Arch, part: str = "search_val") -> Score:
        return score_model(self.extract(arch), split_loader(self.space, self.config, self.pool, self.split, part))

    def top1(self, arch: Arch, part: str = "search_val", supernet: None = None) -> float:
        return self.score(arch, part).top1


def open_run(folder: str | Path) -> TrainedRun | FinetunedRun:
    """A supernet run, or a fine-tuning folder (which `hwnas finetune` wrote)."""
    return FinetunedRun(folder) if (Path(folder) / FINETUNE).is_file() else TrainedRun(folder)
