"""Seeded work that leaves the caller's random state alone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def isolated_rng(seed: int = 0, device: torch.device | str | None = None) -> Iterator[None]:
    """Run the body with torch's CPU RNG (and `device`'s, when it is a GPU) seeded with `seed`, and
    restore both afterwards: building throwaway modules must not move a caller's random stream."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    gpus = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(seed)
        yield
