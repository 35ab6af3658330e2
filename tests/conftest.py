from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hwnas import build_supernet, get_space
from hwnas.latency.local import CALIBRATION_DIR_ENV
from hwnas.supernet import Supernet
from tests.helpers import toy_space_yaml
from tests.wheel import InstalledWheel, install_wheel


@pytest.fixture(scope="session", autouse=True)
def local_calibrations(tmp_path_factory):
    """Spot checks of the shipped table (on a machine whose setup differs from it) store their local
    calibrations in a session folder, never beside the checkout's tables; CLI subprocesses inherit it."""
    before = os.environ.get(CALIBRATION_DIR_ENV)
    os.environ[CALIBRATION_DIR_ENV] = str(tmp_path_factory.mktemp("local-calibrations"))
    yield
    if before is None:
        os.environ.pop(CALIBRATION_DIR_ENV)
    else:
        os.environ[CALIBRATION_DIR_ENV] = before


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory) -> InstalledWheel:
    """hwnas built as a wheel and installed into a fresh environment outside the checkout."""
    return install_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def toy_yaml(tmp_path_factory) -> Path:
    """A tiny user space (a YAML file), for tests that profile or train a whole space; modules may override it."""
    return toy_space_yaml(tmp_path_factory.mktemp("spaces"))


@pytest.fixture(scope="module")
def toy(toy_yaml):
    return get_space(toy_yaml)


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
