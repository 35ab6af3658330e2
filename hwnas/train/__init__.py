"""Supernet training: config, sampling, the loop, checkpoints and inherited-weight evaluation."""

from hwnas.train.config import TrainConfig
from hwnas.train.evaluate import TrainedRun
from hwnas.train.trainer import train

__all__ = ["TrainConfig", "TrainedRun", "train"]
