"""Data: the embedded digits, synthetic images, ImageFolder trees, and the saved split."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hwnas.data.datasets import AUGMENTS, FAILED, EpochIndices, PoolDataset, RandomShift, model_input
from hwnas.data.sources import IMAGE_INDEX, digits_pool, folder_pool, load_pool, save_index, synthetic_pool
from hwnas.data.split import DataError, Split, search_val_counts, stratified_split


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


def test_folder_is_listed_once_without_decoding_and_bad_images_fail_at_load(tmp_path):
    root = make_folder(tmp_path / "data", corrupt=2)
    index = tmp_path / "run" / IMAGE_INDEX
    index.parent.mkdir()
    pool = folder_pool(root, index)
    save_index(pool, index)
    assert pool.classes == ["cat", "dog"] and len(pool) == 2 * 6 + 2 + 2 * 3  # listed by name: the broken ones too
    split = pool.split(seed=0)
    assert sorted(pool.files[i].decode().split("/")[0] for i in split.test) == ["val"] * 6
    assert all(pool.files[i].decode().startswith("train/") for i in split.train + split.search_val)
    broken = [i for i in range(len(pool)) if b"broken" in pool.files[i]]
    train = PoolDataset(
        pool, tuple(broken) + split.train, img_size=32, training=True, augment=AUGMENTS["deit"], hflip=0.5
    )
    assert train[0][1] == FAILED and train[0][0].shape == (3, 32, 32)  # a blank the loops skip and count
    x, y = train[2]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32) and y in (0, 1)
    image, label = PoolDataset(pool, split.test, img_size=32)[0]
    assert image.dtype == torch.uint8 and image.shape == (
        3,
        32,
        32,
    )  # evaluation images stay uint8 (a quarter of the memory)
    assert model_input(image[None]).dtype == torch.float32 and model_input(image[None]).abs().max() < 3
    # the listing is reused: files added later are not seen, and changed class folders are refused
    (root / "train" / "cat" / "late.png").write_bytes((root / "train" / "cat" / "0.png").read_bytes())
    reread = folder_pool(root, index)
    assert len(reread) == len(pool) and (reread.files == pool.files).all() and (reread.labels == pool.labels).all()
    (root / "train" / "bird").mkdir()
    (root / "val" / "bird").mkdir()
    with pytest.raises(DataError, match="class folders of .* differ from the run's .*'bird'"):
        folder_pool(root, index)


def test_small_folder_images_are_padded_and_cropped_not_zoomed(tmp_path):
    root = make_folder(tmp_path / "data", per_class=(2, 1))
    pool = folder_pool(root)
    plain = PoolDataset(pool, (0,), img_size=32, training=True, augment=AUGMENTS["none"])[0][0]
    weak = PoolDataset(pool, (0,), img_size=32, training=True, augment=AUGMENTS["weak"], hflip=0.0)
    for epoch in range(4):  # each crop is the resized image shifted by at most 32 / 8 pixels: no zoom, no flip
        x = weak[(epoch, 0)][0]
        assert any(
            torch.allclose(
                x[:, max(dy, 0) : 32 + min(dy, 0), max(dx, 0) : 32 + min(dx, 0)],
                plain[:, max(-dy, 0) : 32 + min(-dy, 0), max(-dx, 0) : 32 + min(-dx, 0)],
                atol=1e-5,
            )
            for dy in range(-4, 5)
            for dx in range(-4, 5)
        )


def test_folder_augmentation_is_seeded_by_seed_epoch_and_image(tmp_path):
    root = make_folder(tmp_path / "data", per_class=(3, 1))
    pool = folder_pool(root)
    data = PoolDataset(pool, (0, 1, 2), img_size=96, training=True, augment=AUGMENTS["deit"], hflip=0.5, seed=3)
    first = [data[(0, i)][0] for i in (2, 1, 0)]
    torch.manual_seed(123)  # the caller's RNG neither matters nor moves
    before = torch.get_rng_state()
    again = [data[(0, i)][0] for i in (0, 1, 2)][::-1]
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # any order, any loader process
    assert not torch.equal(data[(1, 0)][0], first[2])  # another epoch, another crop
    other_seed = PoolDataset(pool, (0, 1, 2), img_size=96, training=True, augment=AUGMENTS["deit"], hflip=0.5, seed=4)
    assert not torch.equal(other_seed[(0, 0)][0], first[2])
    posterize = [
        op
        for step in data.transform.transforms[1].transforms
        for op in getattr(step, "ops", [])
        if op.name == "PosterizeIncreasing"
    ][0]
    posterize.magnitude, posterize.magnitude_std = 10, 0  # timm's 0 bits, which Pillow refuses: capped to 1
    assert posterize(Image.new("RGB", (8, 8))).size == (8, 8)
    sampler = torch.utils.data.DistributedSampler(data, num_replicas=1, rank=0, seed=0)
    sampler.set_epoch(5)
    assert {epoch for epoch, _ in EpochIndices(sampler)} == {5}


def test_search_val_rules():
    sizes = np.array([1000, 500, 300])
    assert list(search_val_counts("auto", sizes, sizes)) == [150, 75, 45]  # 15% of small data
    big = np.full(1000, 1280)  # ImageNet-sized: 15% would be 192,000 images
    assert search_val_counts("auto", big, big).sum() == 10_000
    assert list(search_val_counts("25/class", sizes, sizes)) == [25, 25, 25]
    assert list(search_val_counts("180", sizes, sizes)) == [100, 50, 30]
    assert list(search_val_counts("10%", sizes, sizes)) == [100, 50, 30]
    with pytest.raises(
        DataError, match="`search_val` 300/class takes 900 .* leaving a class with none .* smallest class has 300"
    ):
        search_val_counts("300/class", sizes, sizes)
    with pytest.raises(DataError, match="`search_val` 'lots' is not a size; use auto"):
        search_val_counts("lots", sizes, sizes)
    labels = np.repeat(np.arange(3), 40)
    split = stratified_split(labels, "x", 0, search_val="5/class", test=0.0)
    assert len(split.search_val) == 15 and split.search_val_rule == "5/class"
    assert Split.load(split.save(Path(tempfile.mkdtemp()) / "split.json")) == split


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: None, "does not exist"),
        (lambda root: make_folder(root) and shutil.rmtree(root / "val"), "val does not exist"),
        (lambda root: [(root / p).mkdir(parents=True) for p in ("train", "val")], "no class folders"),
        (lambda root: make_folder(root) and (root / "val" / "bird").mkdir(), "differ .*'bird'"),
        (lambda root: make_folder(root, per_class=(4, 0)), "val has no images"),
    ],
)
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
