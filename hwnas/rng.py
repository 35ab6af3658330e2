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


@contextmanager
def seeded_host_rng(*key: int) -> Iterator[None]:
    """Run the body with torch's CPU RNG, Python's `random` and NumPy's global RNG all seeded from
    `key`, and restore the three afterwards. Augmenting one image under the key (seed, epoch,
    index) makes its randomness independent of which loader process draws it and in what order."""
    import random

    import numpy as np

    state = np.random.SeedSequence(list(key)).generate_state(2)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(state[0]))
            random.seed(int(state[1]))
            np.random.seed(int(state[1]))
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
