"""Data: the embedded digits, synthetic images, ImageFolder trees, and the saved split."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from hwnas.data.datasets import AUGMENTS, PoolDataset, RandomShift
from hwnas.data.sources import SkippedImagesWarning, digits_pool, folder_pool, load_pool, synthetic_pool
from hwnas.data.split import DataError, Split, stratified_split


def make_folder(root, classes=("cat", "dog"), per_class=(6, 3), corrupt: int = 0):
    rng = np.random.default_rng(0)
    for part, n in zip(("train", "val"), per_class):
        for cls in classes:
            (root / part / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / part / cls / f"{i}.png")
    for i in range(corrupt):
        (root / "train" / classes[0] / f"broken{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_digits_split_is_stratified_disjoint_and_reproducible(tmp_path):
    pool = digits_pool(32, 3)
    assert len(pool) == 1797 and pool.images.shape == (1797, 3, 32, 32)
    split = pool.split(seed=0)
    parts = [set(split.train), set(split.search_val), set(split.test)]
    assert sum(map(len, parts)) == len(pool) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(split.test) == pytest.approx(0.2 * len(pool), abs=10)
    assert len(split.search_val) == pytest.approx(0.15 * len(pool), abs=10)
    for part in (split.train, split.search_val, split.test):  # every class in every part
        assert set(pool.labels[list(part)]) == set(range(10))
    assert pool.split(seed=0) == split and pool.split(seed=1) != split
    assert Split.load(split.save(tmp_path / "split.json")) == split


def test_split_file_errors(tmp_path):
    (tmp_path / "split.json").write_text("{")
    with pytest.raises(DataError, match="unreadable.*delete it"):
        Split.load(tmp_path / "split.json")
    with pytest.raises(DataError, match="in two parts"):
        Split("x", 0, (1, 2), (2,), (3,))
    assert stratified_split(np.array([0, 0, 1, 1, 1]), "x", 0).train


def test_folder_pool_uses_val_as_test_and_skips_broken_images(tmp_path):
    root = make_folder(tmp_path / "data", corrupt=2)
    with pytest.warns(SkippedImagesWarning, match="skipped 2 images .*failed to decode"):
        pool = folder_pool(root)
    assert pool.classes == ["cat", "dog"] and len(pool) == 2 * 6 + 2 * 3
    split = pool.split(seed=0)
    assert sorted(pool.paths[i].parent.parent.name for i in split.test) == ["val"] * 6
    assert all(pool.paths[i].parent.parent.name == "train" for i in split.train + split.search_val)
    train = PoolDataset(pool, split.train, img_size=32, training=True, augment=AUGMENTS["deit"])
    x, y = train[0]
    assert x.shape == (3, 32, 32) and y in (0, 1)
    assert PoolDataset(pool, split.test, img_size=32)[0][0].shape == (3, 32, 32)


@pytest.mark.parametrize("setup, message", [
    (lambda root: None, "does not exist"),
    (lambda root: make_folder(root) and shutil.rmtree(root / "val"), "val does not exist"),
    (lambda root: [(root / p).mkdir(parents=True) for p in ("train", "val")], "no class folders"),
    (lambda root: make_folder(root) and (root / "val" / "bird").mkdir(), "differ .*'bird'"),
    (lambda root: make_folder(root, per_class=(4, 0)), "val has no readable images"),
])
def test_bad_folders_are_clear_errors(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DataError, match=message):
        folder_pool(root)


def test_class_count_must_match_the_space(tmp_path):
    with pytest.raises(DataError, match="has 10 classes but the space has 4; .*num_classes=10"):
        load_pool("digits", 32, 3, num_classes=4)
    assert len(load_pool("synthetic", 16, 3, num_classes=4).classes) == 4


def test_tensor_augmentation_shifts_digits():
    pool = synthetic_pool(16, 3, 4)
    x = pool.images[0]
    shifted = RandomShift(2, torch.Generator().manual_seed(1))(x)
    assert shifted.shape == x.shape and not torch.equal(shifted, x)
    assert torch.equal(RandomShift(0)(x), x)
    item, label = PoolDataset(pool, (0, 1), 16, training=True, augment=AUGMENTS["weak"])[1]
    assert item.shape == (3, 16, 16) and label == 1
