"""Fitness: top-1 with inherited supernet weights on the run's search-val split.

Never the training images (AutoFormer's subImageNet was drawn from them) and never the test split,
which scores the final winner once. A search evaluates about a thousand subnets on the same
images, so they are decoded once and kept (up to `CACHE_BYTES`), then streamed.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from hwnas.spaces import Arch
from hwnas.train.evaluate import TrainedRun, batchnorm_calibration, split_loader, top1

CACHE_BYTES = 2 << 30
SEARCH_VAL, TEST = "search_val", "test"


class Fitness:
    """Scores subnets of a trained run on one split part (search-val unless told otherwise)."""

    def __init__(self, run: TrainedRun, device: str | torch.device | None = None):
        self.run = run
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.supernet = run.supernet().to(self.device).eval()
        self._cache: dict[str, list[tuple[Tensor, Tensor]]] = {}
        # per-subnet BatchNorm statistics (families that need them), kept per arch for the winner's rescoring
        self.calibration = batchnorm_calibration(run.space, run.config, run.pool, run.split, self.device)

    def _batches(self, part: str) -> Iterable[tuple[Tensor, Tensor]]:
        if part in self._cache:
            return self._cache[part]
        loader = split_loader(self.run.space, self.run.config, self.run.pool, self.run.split, part)
        s = self.run.space.spec
        size = len(loader.dataset) * s.in_chans * s.img_size**2 * 4  # type: ignore[arg-type]
        if size > CACHE_BYTES:
            return loader
        self._cache[part] = [(x.to(self.device), y.to(self.device)) for x, y in loader]
        return self._cache[part]

    def top1(self, arch: Arch, part: str = SEARCH_VAL) -> float:
        """Top-1 (percent) of `arch` on every image of `part`."""
        return top1(self.supernet, arch, self._batches(part), self.calibration)
