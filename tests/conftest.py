from __future__ import annotations

import pytest
import torch

from hwnas import build_supernet, get_space
from hwnas.supernet import Supernet


def perturbed_supernet(space_name: str, seed: int = 0, **kwargs) -> Supernet:
    """A supernet whose every parameter (biases and norms too) is non-trivial, in eval mode.

    A fresh one has zero biases and unit norm weights, which would hide a wrong bias or norm slice.
    """
    torch.manual_seed(seed)
    net = build_supernet(get_space(space_name), **kwargs).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p), alpha=0.05)
    return net


@pytest.fixture(scope="session")
def digits_supernet() -> Supernet:
    return perturbed_supernet("autoformer-digits")
