"""Inherited-weight accuracy: a subnet scored on a split part with the supernet's weights as they
are, after its BatchNorm statistics are recalibrated when the family's supernet needs it."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from hwnas.data import FAILED, ImagePool, PoolDataset, Split, model_input
from hwnas.data.split import DataError
from hwnas.families.registry import get_family
from hwnas.spaces import Arch, SearchSpace
from hwnas.supernet import Supernet
from hwnas.supernet.batchnorm import BatchNormCalibration
from hwnas.training.config import TrainConfig, local_workers

EVAL_BATCH = 256
BN_CALIBRATION_IMAGES = 2000  # OFA's `set_running_statistics` subset; ImageNet: 16 batches of 128 per subnet


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
