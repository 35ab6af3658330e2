"""Supernet training: config, sampling, the loop, checkpoints and inherited-weight evaluation."""

from hwnas.training.config import TrainConfig
from hwnas.training.evaluate import TrainedRun
from hwnas.training.trainer import train

__all__ = ["TrainConfig", "TrainedRun", "train"]
