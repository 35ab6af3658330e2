"""Datasets: the embedded digits default (real images, no download), synthetic images for tests,
ImageFolder trees (listed once per run), and the train / search-val / test split every later
stage reuses."""

from hwnas.data.datasets import AUGMENTS, FAILED, Augment, EpochIndices, PoolDataset, model_input
from hwnas.data.digits import load_digits_tensors
from hwnas.data.sources import IMAGE_INDEX, IN_MEMORY, ImagePool, load_pool, save_index
from hwnas.data.split import DataError, Split

__all__ = [
    "AUGMENTS",
    "FAILED",
    "IMAGE_INDEX",
    "IN_MEMORY",
    "Augment",
    "DataError",
    "EpochIndices",
    "ImagePool",
    "PoolDataset",
    "Split",
    "load_digits_tensors",
    "load_pool",
    "model_input",
    "save_index",
]
