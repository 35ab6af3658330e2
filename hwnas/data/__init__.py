"""Datasets: the embedded digits default (real images, no download)."""

from hwnas.data.digits import load_digits_tensors

__all__ = ["load_digits_tensors"]
