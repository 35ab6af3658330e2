"""Datasets over one part of a split, with the augmentation presets of supernet training.

`weak` is our reading of ViTAS's weaker augmentation and regularisation for stable supernet
training: crops (shifts) and flips, label smoothing, and no RandAugment, Mixup, CutMix or random
erasing (ViTAS's released config keeps CutMix and erasing; on 32-pixel digits they kept the supernet
from learning in our runs); `deit` is DeiT's (and AutoFormer's) recipe: RandAugment,
Mixup 0.8 / CutMix 1.0, label smoothing 0.1, random erasing 0.25.

Crops follow the resolution. Folder images at or below `SMALL_IMAGE` pixels are resized to the
square and pad-and-random-cropped (an eighth of the side, as CIFAR recipes do); above it they get
timm's RandomResizedCrop, of 8-100% of the area under `deit` (ImageNet's) and 35-100% under
`weak`, which has no colour jitter. In-memory pools (digits, synthetic) are already at the
space's resolution: random shifts of an eighth of the side. Flips (`hflip`, a probability) are off
for the digits, where a flipped digit is another symbol, and on (0.5) for folders.

Folder training images are augmented under an RNG seeded by (seed, epoch, image), so a run's
augmentation does not depend on how many loader processes decode it, and a resumed run repeats it.
Folder evaluation images come as uint8 (a quarter of float32's memory, what a search keeps);
`model_input` normalises them where they are used. An image that fails to decode comes back as a
blank with label `FAILED`: the loops skip and count those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from hwnas.data.sources import ImagePool
from hwnas.rng import seeded_host_rng

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SMALL_IMAGE = 64  # folder images at or below this size are padded and cropped, not resized-and-cropped
WEAK_SCALE = (0.35, 1.0)
FAILED = -1  # the label of an image that did not decode
POSTERIZE_MAX_MAGNITUDE = 9.99


@dataclass(frozen=True)
class Augment:
    name: str
    rand_augment: str | None  # timm auto-augment spec, folder data only
    mixup: float
    cutmix: float
    label_smoothing: float
    random_erasing: float

    @property
    def mixes(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0


AUGMENTS = {
    "weak": Augment("weak", None, mixup=0.0, cutmix=0.0, label_smoothing=0.1, random_erasing=0.0),
    "deit": Augment("deit", "rand-m9-mstd0.5-inc1", mixup=0.8, cutmix=1.0, label_smoothing=0.1, random_erasing=0.25),
    "none": Augment("none", None, mixup=0.0, cutmix=0.0, label_smoothing=0.0, random_erasing=0.0),
}


def norm_stats(in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's mean and std (their averages for one grey channel)."""
    if in_chans == 1:
        return (sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,)
    return IMAGENET_MEAN, IMAGENET_STD


def model_input(x: Tensor) -> Tensor:
    """Batches as the model takes them: uint8 folder images normalised (on whatever device they
    are), float ones as they come."""
    if x.dtype != torch.uint8:
        return x
    mean, std = (torch.tensor(s, device=x.device).view(1, -1, 1, 1) for s in norm_stats(x.shape[1]))
    return (x.float() / 255 - mean) / std


class RandomShift:
    """Shift a (C, H, W) tensor by up to `max_shift` pixels each way, filling with the minimum."""

    def __init__(self, max_shift: int, generator: torch.Generator | None = None):
        self.max_shift, self.generator = max_shift, generator

    def __call__(self, x: Tensor) -> Tensor:
        if self.max_shift == 0:
            return x
        dy, dx = (torch.randint(-self.max_shift, self.max_shift + 1, (2,), generator=self.generator)).tolist()
        out = torch.full_like(x, float(x.min()))
        h, w = x.shape[-2:]
        out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
            ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
        ]
        return out


class RandomFlip:
    """Flip a (C, H, W) tensor left-right with probability `p` (in-memory pools)."""

    def __init__(self, p: float):
        self.p = p

    def __call__(self, x: Tensor) -> Tensor:
        return x.flip(-1) if self.p and float(torch.rand(())) < self.p else x


def folder_transform(img_size: int, in_chans: int, training: bool, augment: Augment, hflip: float) -> Any:
    """timm's transforms for folder images at `img_size` (see the module docstring): training ones
    end in a normalised float tensor, evaluation ones in a uint8 tensor."""
    from timm.data import create_transform
    from torchvision import transforms as T

    mean, std = norm_stats(in_chans)
    small = img_size <= SMALL_IMAGE
    if not training or augment.name == "none":
        if small:
            resize: Any = T.Resize((img_size, img_size))
        else:  # timm's evaluation resize and centre crop
            resize = create_transform(img_size, is_training=False, normalize=False).transforms[:2]
            resize = T.Compose(resize)
        if training:
            return T.Compose([resize, T.ToTensor(), T.Normalize(mean, std)])
        return T.Compose([resize, T.PILToTensor()])
    weak = augment.rand_augment is None
    primary, secondary, final = create_transform(
        img_size,
        is_training=True,
        scale=WEAK_SCALE if weak else None,
        hflip=hflip,
        color_jitter=None if weak else 0.4,
        auto_augment=augment.rand_augment,
        re_prob=augment.random_erasing,
        mean=mean,
        std=std,
        separate=True,
    )
    if small:
        primary = T.Compose(
            [
                T.Resize((img_size, img_size)),
                T.RandomCrop(img_size, padding=img_size // 8),
                *([T.RandomHorizontalFlip(hflip)] if hflip else []),
            ]
        )
    for step in secondary.transforms:
        for op in getattr(step, "ops", []):  # timm's RandAugment
            if op.name == "PosterizeIncreasing":
                # at magnitude 10 it keeps 0 bits, which Pillow >= 10 refuses (it raised in our folder
                # tests); the cap makes that 1 bit and leaves every other draw as it was
                op.magnitude_max = POSTERIZE_MAX_MAGNITUDE
    return T.Compose([primary, secondary, final])


class EpochIndices(Sampler):
    """The indices of `sampler` as (epoch, index) pairs, so that each dataset item knows its epoch
    (also in persistent loader processes, which never see `set_epoch`)."""

    def __init__(self, sampler: Any):
        self.sampler = sampler

    def __iter__(self):  # type: ignore[no-untyped-def]
        epoch = int(getattr(self.sampler, "epoch", 0))
        return ((epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class PoolDataset(Dataset):
    """The examples `indices` of `pool`, as (image tensor, label); training ones augmented.

    Items are taken by position, or by (epoch, position) (`EpochIndices`): folder augmentation is
    then seeded by (`seed`, epoch, image)."""

    def __init__(
        self,
        pool: ImagePool,
        indices: tuple[int, ...],
        img_size: int,
        in_chans: int = 3,
        training: bool = False,
        augment: Augment = AUGMENTS["none"],
        hflip: float = 0.0,
        seed: int = 0,
    ):
        self.pool, self.indices, self.seed = pool, np.asarray(indices, dtype=np.int64), seed
        self.shape = (in_chans, img_size, img_size)
        self.training = training
        if pool.images is not None:
            augmenting = training and augment.name != "none"
            self.transform: Any = [RandomShift(img_size // 8), RandomFlip(hflip)] if augmenting else []
        else:
            self.transform = folder_transform(img_size, in_chans, training, augment, hflip)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, int]:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        index = int(self.indices[i])
        label = int(self.pool.labels[index])
        if self.pool.images is not None:
            x = self.pool.images[index]
            for step in self.transform:
                x = step(x)
            return x, label
        image = self.pool.decode(index, "L" if self.shape[0] == 1 else "RGB")
        if image is None:
            dtype = torch.float32 if self.training else torch.uint8
            return torch.zeros(self.shape, dtype=dtype), FAILED
        if not self.training:
            return self.transform(image), label
        with seeded_host_rng(self.seed, epoch, index):
            return self.transform(image), label
