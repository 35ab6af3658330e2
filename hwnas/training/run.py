"""A training run's folder as the later stages use it: its config, split, space and supernet.

Search, fine-tuning and export open a run through `TrainedRun`; the files it reads are written by
`hwnas.training.trainer`."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import torch

from hwnas.data import IMAGE_INDEX, ImagePool, Split, load_pool
from hwnas.data.split import DataError
from hwnas.spaces import Arch, SearchSpace, get_space, space_from_dict, spec_difference
from hwnas.supernet import Supernet, build_supernet
from hwnas.supernet.batchnorm import BatchNormCalibration
from hwnas.training.checkpoint import WEIGHTS, load_weights
from hwnas.training.config import TrainConfig
from hwnas.training.evaluate import batchnorm_calibration, split_loader, top1

CONFIG, SPLIT, SPACE = "config.json", "split.json", "space.json"


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
