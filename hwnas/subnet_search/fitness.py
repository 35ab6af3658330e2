"""Fitness: top-1 (and loss, which breaks top-1 ties) with inherited supernet weights on the run's
search-val split.

Never the training images (AutoFormer's subImageNet was drawn from them) and never the test split,
which scores the final winner once. A search scores about a thousand subnets on the same images,
so they are decoded once and kept as they load (uint8 for folders: 10,000 ImageNet images at 224 px
are 1.5 GB, a quarter of float32) on the GPU when they fit in `GPU_SHARE` of its free memory, in
host memory within `HOST_CACHE_BYTES` otherwise; past that they are streamed (and decoded) again
for every evaluation. On CUDA the batches are large and run under autocast.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from hwnas.spaces import Arch
from hwnas.training.evaluate import EVAL_BATCH, Score, batchnorm_calibration, score, split_loader
from hwnas.training.run import TrainedRun

HOST_CACHE_BYTES = 4 << 30
GPU_SHARE = 0.25  # of the free GPU memory, for the cached images
CUDA_EVAL_BATCH = 1024
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

    def cache_device(self, nbytes: int) -> torch.device | None:
        """Where `nbytes` of images are kept: this GPU if they fit its share, else the host if they
        fit its bound, else nowhere (streamed)."""
        if self.device.type == "cuda" and nbytes <= GPU_SHARE * torch.cuda.mem_get_info(self.device)[0]:
            return self.device
        return torch.device("cpu") if nbytes <= HOST_CACHE_BYTES else None

    def _batches(self, part: str) -> Iterable[tuple[Tensor, Tensor]]:
        if part in self._cache:
            return self._cache[part]
        batch = CUDA_EVAL_BATCH if self.device.type == "cuda" else EVAL_BATCH
        loader = split_loader(self.run.space, self.run.config, self.run.pool, self.run.split, part, batch)
        s = self.run.space.spec
        item_bytes = 1 if self.run.pool.images is None else 4  # folders load as uint8
        where = self.cache_device(len(loader.dataset) * s.in_chans * s.img_size**2 * item_bytes)  # type: ignore[arg-type]
        if where is None:
            return loader
        pin = where.type == "cpu" and self.device.type == "cuda"
        self._cache[part] = [((x.pin_memory() if pin else x).to(where), y.to(where)) for x, y in loader]
        return self._cache[part]

    def cached(self, part: str = SEARCH_VAL) -> list[tuple[Tensor, Tensor]] | None:
        """The decoded batches of `part` as kept (None: not scored yet, or streamed)."""
        return self._cache.get(part)

    def score(self, arch: Arch, part: str = SEARCH_VAL) -> Score:
        """Top-1 (percent) and loss of `arch` on every image of `part`."""
        return score(self.supernet, arch, self._batches(part), self.calibration)

    def top1(self, arch: Arch, part: str = SEARCH_VAL) -> float:
        return self.score(arch, part).top1
