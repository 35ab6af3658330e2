"""Where images come from: the embedded digits, synthetic images for tests, or an ImageFolder tree.

Every source is one pool of examples with labels; the split (train / search-val / test) indexes it.
A folder's `train/` images are split into train and search-val, and its `val/` images are the test.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hwnas.data.digits import load_digits_tensors
from hwnas.data.split import DataError, Split, stratified_split
from hwnas.errors import HwnasWarning

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
SYNTHETIC_SIZE = 600


class SkippedImagesWarning(HwnasWarning):
    """Some images of a folder could not be decoded and were left out."""


@dataclass
class ImagePool:
    """A pool of labelled images. In-memory pools hold `images`; folder pools hold `paths`."""

    name: str
    classes: list[str]
    labels: np.ndarray
    images: Tensor | None = None  # (N, C, H, W), normalised
    paths: list[Path] = field(default_factory=list)
    test_pool: np.ndarray | None = None  # indices fixed as the test part (a folder's val/)

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, seed: int) -> Split:
        if self.test_pool is None:
            return stratified_split(self.labels, self.name, seed)
        train_pool = np.setdiff1d(np.arange(len(self)), self.test_pool)
        drawn = stratified_split(self.labels, self.name, seed, test=0.0, pool=train_pool)
        return Split(self.name, seed, drawn.train, drawn.search_val, tuple(int(i) for i in self.test_pool))


def digits_pool(img_size: int, in_chans: int) -> ImagePool:
    images, labels = load_digits_tensors(img_size, in_chans)
    return ImagePool("digits", [str(i) for i in range(10)], labels.numpy(), images=images)


def synthetic_pool(img_size: int, in_chans: int, num_classes: int, n: int = SYNTHETIC_SIZE, seed: int = 0) -> ImagePool:
    """Learnable random images: each class is a fixed smooth template plus noise (for tests)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(num_classes, in_chans, 4, 4, generator=g)
    templates = torch.nn.functional.interpolate(coarse, size=(img_size, img_size), mode="bilinear", align_corners=False)
    labels = torch.arange(n) % num_classes
    images = templates[labels] + 0.5 * torch.randn(n, in_chans, img_size, img_size, generator=g)
    return ImagePool("synthetic", [str(i) for i in range(num_classes)], labels.numpy(), images=images)


def _class_folders(root: Path) -> list[str]:
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; give an ImageFolder tree with train/ and val/ class folders")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"data folder {root} has no class folders; put each class's images in {root}/<class>/")
    return classes


def _decodes(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except Exception:  # PIL raises many types for bad files; any of them means "skip"
        return False


def folder_pool(root: str | Path, progress: Callable[[int], None] | None = None) -> ImagePool:
    """`root/train/<class>/*` and `root/val/<class>/*`; images that do not decode are skipped with a
    warning that counts them. The two class lists must be equal."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; give an ImageFolder tree with train/ and val/")
    train_classes, val_classes = _class_folders(root / "train"), _class_folders(root / "val")
    if train_classes != val_classes:
        only = sorted(set(train_classes) ^ set(val_classes))
        raise DataError(f"class folders of {root}/train and {root}/val differ (e.g. {only[0]!r}); "
                        f"both need the same {len(set(train_classes) | set(val_classes))} class folders")
    paths: list[Path] = []
    labels: list[int] = []
    test: list[int] = []
    skipped: list[Path] = []
    for part in ("train", "val"):
        for label, cls in enumerate(train_classes):
            for path in sorted((root / part / cls).iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                if not _decodes(path):
                    skipped.append(path)
                    continue
                if part == "val":
                    test.append(len(paths))
                paths.append(path)
                labels.append(label)
                if progress:
                    progress(len(paths))
    for part, count in (("train", len(paths) - len(test)), ("val", len(test))):
        if count == 0:
            raise DataError(f"{root}/{part} has no readable images; put images in its class folders")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} images of {root} that failed to decode (first: {skipped[0]})",
                      SkippedImagesWarning, stacklevel=2)
    return ImagePool(f"folder:{root.resolve()}", train_classes, np.asarray(labels), paths=paths,
                     test_pool=np.asarray(test))


def load_pool(data: str, img_size: int, in_chans: int, num_classes: int) -> ImagePool:
    """`digits`, `synthetic` or an ImageFolder path; the class count must match the space's."""
    if data == "digits":
        pool = digits_pool(img_size, in_chans)
    elif data == "synthetic":
        pool = synthetic_pool(img_size, in_chans, num_classes)
    else:
        pool = folder_pool(data)
    if len(pool.classes) != num_classes:
        raise DataError(f"{data} has {len(pool.classes)} classes but the space has {num_classes}; "
                        f"use a space with num_classes={len(pool.classes)} (get_space(name, num_classes=...))")
    return pool
