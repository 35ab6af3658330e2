"""Supernet training: config, sampling, the loop, checkpoints and inherited-weight evaluation.

The names below load on first use, so that the torch-free parts (`hwnas.training.sampling`, read by
the CLI to list the samplings) import without torch."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hwnas.training.config import TrainConfig
    from hwnas.training.run import TrainedRun
    from hwnas.training.trainer import train

__all__ = ["TrainConfig", "TrainedRun", "train"]
_WHERE = {"TrainConfig": "config", "TrainedRun": "run", "train": "trainer"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"hwnas.training.{_WHERE[name]}"), name)
