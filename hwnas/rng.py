"""Random state: seeded work that leaves the caller's random state alone, and the process-wide
state a training run seeds, saves in its checkpoint and restores on resume."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(tuple(s if not isinstance(s, list) else tuple(s) for s in state["python"]))
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
