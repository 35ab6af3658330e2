"""Inherited-weight accuracy: a subnet scored on a split part with the supernet's weights as they
are, after its BatchNorm statistics are recalibrated when the family's supernet needs it."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from hwnas.data import ImagePool, PoolDataset, Split, load_pool
from hwnas.data.split import DataError
from hwnas.family import get_family
from hwnas.spaces import Arch, SearchSpace, get_space, space_from_dict, spec_difference
from hwnas.supernet import Supernet, build_supernet
from hwnas.supernet.batchnorm import BatchNormCalibration
from hwnas.train.checkpoint import WEIGHTS, load_weights
from hwnas.train.config import TrainConfig

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
        raise DataError(f"the run in {run_dir} trained another space named {trained['name']!r} than {space.key!r} "
                        f"({differs}, run's vs given); give the run's space (its declaration is {stored})")


@torch.no_grad()
def top1(supernet: Supernet, arch: Arch, loader: Iterable[tuple[Tensor, Tensor]],
         calibration: BatchNormCalibration | None = None) -> float:
    """Top-1 accuracy (percent) of subnet `arch` on every (images, labels) batch of `loader`, with
    its BatchNorm statistics recalibrated by `calibration` first (when the supernet needs it)."""
    if calibration is not None and supernet.arch_dependent_batchnorm:
        with calibration.applied(supernet, arch):
            return top1(supernet, arch, loader)
    was_training = supernet.training
    supernet.eval()
    device = next(supernet.parameters()).device
    correct = total = 0
    for x, y in loader:
        logits = supernet(x.to(device, non_blocking=True), arch)
        correct += int((logits.argmax(1) == y.to(device, non_blocking=True)).sum())  # labels may be cached anywhere
        total += len(y)
    supernet.train(was_training)
    return 100.0 * correct / max(total, 1)


def split_loader(space: SearchSpace, config: TrainConfig, pool: ImagePool, split: Split, part: str) -> DataLoader:
    if pool.name != split.source:
        raise DataError(f"the run's split indexes {split.source}, but --data gives {pool.name}; use the run's data")
    dataset = PoolDataset(pool, getattr(split, part), space.spec.img_size)
    return DataLoader(dataset, batch_size=EVAL_BATCH, num_workers=config.workers)


def batchnorm_calibration(space: SearchSpace, config: TrainConfig, pool: ImagePool, split: Split,
                          device: torch.device | str = "cpu") -> BatchNormCalibration | None:
    """Per-subnet BatchNorm recalibration on `BN_CALIBRATION_IMAGES` training images of the split,
    drawn once with the split's seed (split parts are sorted, so a prefix would be a few classes of a
    class-ordered folder), with evaluation transforms (the statistics the subnet sees when it is
    scored); None when the space's supernet has no arch-dependent BatchNorm."""
    if not get_family(space.family).supernet_class().arch_dependent_batchnorm:
        return None
    images = random.Random(split.seed).sample(split.train, min(BN_CALIBRATION_IMAGES, len(split.train)))
    dataset = PoolDataset(pool, tuple(sorted(images)), space.spec.img_size)
    loader = DataLoader(dataset, batch_size=EVAL_BATCH, num_workers=config.workers)
    return BatchNormCalibration([x.to(device) for x, _ in loader])


class TrainedRun:
    """A finished (or running) training folder: its config, split, space and trained supernet."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        config_path = self.dir / CONFIG
        if not config_path.is_file():
            raise DataError(f"{self.dir} is not a training run (no {CONFIG}); train one with `hwnas train --out {self.dir}`")
        self.config = TrainConfig.from_dict(json.loads(config_path.read_text()))
        self.space = run_space(self.dir, self.config)
        self.split = Split.load(self.dir / SPLIT)

    @cached_property
    def pool(self) -> ImagePool:
        """The run's images, loaded (a folder: scanned) once per run object."""
        s = self.space.spec
        return load_pool(self.config.data, s.img_size, s.in_chans, s.num_classes)

    def supernet(self) -> Supernet:
        net = build_supernet(self.space, weight_sharing=self.config.weight_sharing)
        load_weights(self.dir / WEIGHTS, net, self.space)
        return net.eval()

    @cached_property
    def calibration(self) -> BatchNormCalibration | None:
        """This run's per-subnet BatchNorm recalibration (None when its supernet needs none)."""
        return batchnorm_calibration(self.space, self.config, self.pool, self.split)

    def top1(self, arch: Arch, part: str = "search_val", supernet: Supernet | None = None) -> float:
        return top1(supernet or self.supernet(), arch, split_loader(self.space, self.config, self.pool, self.split, part),
                    self.calibration)

    def extract(self, arch: Arch, supernet: Supernet | None = None) -> torch.nn.Module:
        """The static model of `arch` with the run's weights (and, when the family needs them, the
        subnet's own BatchNorm statistics): what export writes and `top1` scores."""
        net = supernet or self.supernet()
        if self.calibration is None:
            return net.extract(arch)
        with self.calibration.applied(net, arch):
            return net.extract(arch)
