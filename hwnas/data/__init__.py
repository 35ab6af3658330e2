"""Datasets: the embedded digits default (real images, no download), synthetic images for tests,
ImageFolder trees, and the train / search-val / test split every later stage reuses."""

from hwnas.data.datasets import AUGMENTS, Augment, PoolDataset
from hwnas.data.digits import load_digits_tensors
from hwnas.data.sources import ImagePool, load_pool
from hwnas.data.split import DataError, Split

__all__ = ["AUGMENTS", "Augment", "DataError", "ImagePool", "PoolDataset", "Split", "load_digits_tensors", "load_pool"]
