"""Inherited-weight accuracy: a subnet scored on a split part with the supernet's weights as they
are, after its BatchNorm statistics are recalibrated when the family's supernet needs it."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from hwnas.data import FAILED, IMAGE_INDEX, ImagePool, PoolDataset, Split, load_pool, model_input
from hwnas.data.split import DataError
from hwnas.family import get_family
from hwnas.spaces import Arch, SearchSpace, get_space, space_from_dict, spec_difference
from hwnas.supernet import Supernet, build_supernet
from hwnas.supernet.batchnorm import BatchNormCalibration
from hwnas.training.checkpoint import WEIGHTS, load_weights
from hwnas.training.config import TrainConfig, local_workers

CONFIG, SPLIT, SPACE = "config.json", "split.json", "space.json"
EVAL_BATCH = 256
BN_CALIBRATION_IMAGES = 2000  # OFA's `set_running_statistics` subset; ImageNet: 16 batches of 128 per subnet


def run_space(run_dir: Path, config: TrainConfig) -> SearchSpace:
    """The space a run trained: the declaration it stored (so the run works after its YAML is moved
    or edited), or for runs older than that, the space its config names."""
    stored = run_dir / SPACE
    return space_from_dict(json.loads(stored.read_text())) if stored.is_file() else get_space(config.space)


def check_run_space(run_dir: Path, space: SearchSpace) -> None:
    """Refuse to continue a run with a space whose content differs from the one it trained."""
    stored = run_dir / SPACE
    if not stored.is_file():
        return
    trained = json.loads(stored.read_text())
    differs = spec_difference(trained, space.spec.to_dict())
    if differs:
        raise DataError(
            f"the run in {run_dir} trained another space named {trained['name']!r} than {space.key!r} "
            f"({differs}, run's vs given); give the run's space (its declaration is {stored})"
        )


@dataclass(frozen=True)
class Score:
    """A subnet's top-1 (percent) and mean cross-entropy on one split part: the loss separates
    subnets whose top-1 ties (on 269 digits most of a search's candidates do)."""

    top1: float
    loss: float


@torch.no_grad()
def score(
    supernet: Supernet,
    arch: Arch,
    loader: Iterable[tuple[Tensor, Tensor]],
    calibration: BatchNormCalibration | None = None,
) -> Score:
    """Top-1 and loss of subnet `arch` on every (images, labels) batch of `loader` (see
    `score_model`), with its BatchNorm statistics recalibrated by `calibration` first (when the
    supernet needs it)."""
    if calibration is not None and supernet.arch_dependent_batchnorm:
        with calibration.applied(supernet, arch):
            return score(supernet, arch, loader)
    return score_model(supernet, loader, arch)


@torch.no_grad()
def score_model(model: torch.nn.Module, loader: Iterable[tuple[Tensor, Tensor]], *args: Any) -> Score:
    """Top-1 and loss of `model(x, *args)` (a static model, or a supernet and its arch) in eval
    mode on every batch of `loader`, images that failed to decode left out; on CUDA under autocast
    with channels-last input. The model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    correct = total = 0
    loss = 0.0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # labels may be cached anywhere
        if (y == FAILED).any():
            x, y = x[y != FAILED], y[y != FAILED]
        x = model_input(x)
        with torch.autocast(device.type, enabled=cuda):
            logits = model(x.contiguous(memory_format=torch.channels_last) if cuda else x, *args).float()
        correct += int((logits.argmax(1) == y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        total += len(y)
    model.train(was_training)
    return Score(100.0 * correct / max(total, 1), loss / max(total, 1))


def top1(
    supernet: Supernet,
    arch: Arch,
    loader: Iterable[tuple[Tensor, Tensor]],
    calibration: BatchNormCalibration | None = None,
) -> float:
    """Top-1 accuracy (percent) of subnet `arch` on `loader` (see `score`)."""
    return score(supernet, arch, loader, calibration).top1


def loader_settings(workers: int, device: torch.device | str = "cpu") -> dict[str, Any]:
    """DataLoader processes, and on CUDA pinned memory and processes kept between epochs."""
    cuda = torch.device(device).type == "cuda"
    return {"num_workers": workers, "pin_memory": cuda, "persistent_workers": cuda and workers > 0}


def split_loader(
    space: SearchSpace, config: TrainConfig, pool: ImagePool, split: Split, part: str, batch_size: int = EVAL_BATCH
) -> DataLoader:
    if pool.name != split.source:
        raise DataError(f"the run's split indexes {split.source}, but --data gives {pool.name}; use the run's data")
    dataset = PoolDataset(pool, getattr(split, part), space.spec.img_size, space.spec.in_chans)
    return DataLoader(dataset, batch_size=batch_size, **loader_settings(local_workers(config.data)))


def batchnorm_calibration(
    space: SearchSpace, config: TrainConfig, pool: ImagePool, split: Split, device: torch.device | str = "cpu"
) -> BatchNormCalibration | None:
    """Per-subnet BatchNorm recalibration on `BN_CALIBRATION_IMAGES` training images of the split,
    drawn once with the split's seed (split parts are sorted, so a prefix would be a few classes of a
    class-ordered folder), with evaluation transforms (the statistics the subnet sees when it is
    scored), kept as they load (uint8 for folders); None when the space's supernet has no
    arch-dependent BatchNorm."""
    if not get_family(space.family).supernet_class().arch_dependent_batchnorm:
        return None
    images = random.Random(split.seed).sample(split.train, min(BN_CALIBRATION_IMAGES, len(split.train)))
    dataset = PoolDataset(pool, tuple(sorted(images)), space.spec.img_size, space.spec.in_chans)
    loader = DataLoader(dataset, batch_size=EVAL_BATCH, **loader_settings(local_workers(config.data)))
    return BatchNormCalibration([x[y != FAILED].to(device) for x, y in loader])


class TrainedRun:
    """A finished (or running) training folder: its config, split, space and trained supernet."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        config_path = self.dir / CONFIG
        if not config_path.is_file():
            raise DataError(
                f"{self.dir} is not a training run (no {CONFIG}); train one with `hwnas train --out {self.dir}`"
            )
        self.config = TrainConfig.from_dict(json.loads(config_path.read_text()))
        self.space = run_space(self.dir, self.config)
        self.split = Split.load(self.dir / SPLIT)
        self.weights = self.dir / WEIGHTS

    @cached_property
    def pool(self) -> ImagePool:
        """The run's images: in memory, or a folder's listing as the run stored it."""
        s = self.space.spec
        return load_pool(self.config.data, s.img_size, s.in_chans, s.num_classes, index=self.dir / IMAGE_INDEX)

    def supernet(self) -> Supernet:
        net = build_supernet(self.space, weight_sharing=self.config.weight_sharing)
        load_weights(self.dir / WEIGHTS, net, self.space)
        return net.eval()

    @cached_property
    def calibration(self) -> BatchNormCalibration | None:
        """This run's per-subnet BatchNorm recalibration (None when its supernet needs none)."""
        return batchnorm_calibration(self.space, self.config, self.pool, self.split)

    def top1(self, arch: Arch, part: str = "search_val", supernet: Supernet | None = None) -> float:
        return top1(
            supernet or self.supernet(),
            arch,
            split_loader(self.space, self.config, self.pool, self.split, part),
            self.calibration,
        )

    def extract(self, arch: Arch, supernet: Supernet | None = None) -> torch.nn.Module:
        """The static model of `arch` with the run's weights (and, when the family needs them, the
        subnet's own BatchNorm statistics): what export writes and `top1` scores."""
        net = supernet or self.supernet()
        if self.calibration is None:
            return net.extract(arch)
        with self.calibration.applied(net, arch):
            return net.extract(arch)
