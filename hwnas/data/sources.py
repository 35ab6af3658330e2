"""Where images come from: the embedded digits, synthetic images for tests, or an ImageFolder tree.

Every source is one pool of examples with labels; the split (train / search-val / test) indexes it.
A folder's `train/` images are split into train and search-val, and its `val/` images are the test.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hwnas.data.digits import load_digits_tensors
from hwnas.data.split import DataError, Split, stratified_split
from hwnas.io import atomic_write_json

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
SYNTHETIC_SIZE = 600


IMAGE_INDEX = "images.json"  # a run's folder listing: class names and file names per part and class
INDEX_FORMAT = 1


@dataclass
class ImagePool:
    """A pool of labelled images. In-memory pools hold `images`; folder pools hold the files'
    paths relative to `root`, as one NumPy bytes array (1.28M Python strings would be copied page
    by page into every loader process as their reference counts change)."""

    name: str
    classes: list[str]
    labels: np.ndarray
    images: Tensor | None = None  # (N, C, H, W), normalised
    root: Path | None = None
    files: np.ndarray | None = None  # relative paths, bytes
    test_pool: np.ndarray | None = None  # indices fixed as the test part (a folder's val/)

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, seed: int, search_val: str = "auto") -> Split:
        if self.test_pool is None:
            return stratified_split(self.labels, self.name, seed, search_val=search_val)
        train_pool = np.setdiff1d(np.arange(len(self)), self.test_pool)
        drawn = stratified_split(self.labels, self.name, seed, search_val=search_val, test=0.0, pool=train_pool)
        return Split(
            self.name, seed, drawn.train, drawn.search_val, tuple(int(i) for i in self.test_pool), drawn.search_val_rule
        )

    def decode(self, index: int, mode: str = "RGB") -> Any:
        """Image `index` of a folder pool as a PIL image in `mode`, or None when it does not decode
        (a truncated or corrupt file: the caller skips and counts it)."""
        from PIL import Image

        assert self.root is not None and self.files is not None
        try:
            with Image.open(self.root / self.files[index].decode()) as img:
                return img.convert(mode)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
            return None


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
        raise DataError(
            f"data folder {root} does not exist; give an ImageFolder tree with train/ and val/ class folders"
        )
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(f"data folder {root} has no class folders; put each class's images in {root}/<class>/")
    return classes


def folder_classes(root: Path) -> list[str]:
    """The class folders of `root/train`, checked equal to those of `root/val` (no file is read)."""
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; give an ImageFolder tree with train/ and val/")
    train_classes, val_classes = _class_folders(root / "train"), _class_folders(root / "val")
    if train_classes != val_classes:
        only = sorted(set(train_classes) ^ set(val_classes))
        raise DataError(
            f"class folders of {root}/train and {root}/val differ (e.g. {only[0]!r}); "
            f"both need the same {len(set(train_classes) | set(val_classes))} class folders"
        )
    return train_classes


def scan_folder(root: str | Path) -> dict[str, Any]:
    """The listing of an ImageFolder tree: class names and, per part and class, the sorted names of
    its image files, by suffix (`os.scandir`: no file is opened, so a million files take seconds;
    files that do not decode are found, skipped and counted when they are loaded)."""
    root = Path(root)
    classes = folder_classes(root)
    listing: dict[str, Any] = {"format": INDEX_FORMAT, "root": str(root.resolve()), "classes": classes}
    for part in ("train", "val"):
        listing[part] = [
            sorted(
                e.name
                for e in os.scandir(root / part / cls)
                if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
            )
            for cls in classes
        ]
        if not any(listing[part]):
            raise DataError(f"{root}/{part} has no images; put images in its class folders")
    return listing


def folder_pool(root: str | Path, index: Path | None = None) -> ImagePool:
    """`root/train/<class>/*` and `root/val/<class>/*`, listed once: from a run's `index` file when
    it exists (`save_index` writes it), so eval, search and export never list again."""
    root = Path(root)
    if index is not None and index.is_file():
        listing = json.loads(index.read_text())
        if listing.get("format") != INDEX_FORMAT:
            raise DataError(f"{index} has another format; delete it to list {root} again")
        classes = folder_classes(root)
        if classes != listing["classes"]:
            only = sorted(set(classes) ^ set(listing["classes"]))
            raise DataError(
                f"the class folders of {root} differ from the run's ({len(classes)} vs "
                f"{len(listing['classes'])}, e.g. {only[0]!r}); give the run's data or use another --out"
            )
    else:
        listing = scan_folder(root)
    files: list[bytes] = []
    labels: list[int] = []
    test_start = 0
    for part in ("train", "val"):
        if part == "val":
            test_start = len(files)
        for label, (cls, names) in enumerate(zip(listing["classes"], listing[part])):
            files += [f"{part}/{cls}/{name}".encode() for name in names]
            labels += [label] * len(names)
    return ImagePool(
        f"folder:{root.resolve()}",
        list(listing["classes"]),
        np.asarray(labels),
        root=root.resolve(),
        files=np.asarray(files, dtype=np.bytes_),
        test_pool=np.arange(test_start, len(files)),
    )


def save_index(pool: ImagePool, path: Path) -> Path:
    """A folder pool's listing (class names, file names per part and class) as a run keeps it."""
    assert pool.root is not None and pool.files is not None
    listing: dict[str, Any] = {
        "format": INDEX_FORMAT,
        "root": str(pool.root),
        "classes": pool.classes,
        "train": [[] for _ in pool.classes],
        "val": [[] for _ in pool.classes],
    }
    for name, label in zip(pool.files, pool.labels):
        part, _, file = name.decode().split("/", 2)
        listing[part][int(label)].append(file)
    return atomic_write_json(path, listing)


IN_MEMORY = ("digits", "synthetic")


def load_pool(data: str, img_size: int, in_chans: int, num_classes: int | None, index: Path | None = None) -> ImagePool:
    """`digits`, `synthetic` or an ImageFolder path (listed once, into `index`); the class count
    must match the space's (None: a folder's own count)."""
    if data == "digits":
        pool = digits_pool(img_size, in_chans)
    elif data == "synthetic":
        pool = synthetic_pool(img_size, in_chans, num_classes)
    else:
        pool = folder_pool(data, index)
    if num_classes is not None and len(pool.classes) != num_classes:
        raise DataError(
            f"{data} has {len(pool.classes)} classes but the space has {num_classes}; "
            f"use a space with num_classes={len(pool.classes)} (get_space(name, num_classes=...))"
        )
    return pool
