"""Datasets over one part of a split, with the augmentation presets of supernet training.

`weak` is our reading of ViTAS's weaker augmentation and regularisation for stable supernet
training: crops (shifts) and flips, label smoothing, and no RandAugment, Mixup, CutMix or random
erasing (ViTAS's released config keeps CutMix and erasing; on 32-pixel digits they kept the supernet
from learning in our runs); `deit` is DeiT's (and AutoFormer's) recipe: RandAugment,
Mixup 0.8 / CutMix 1.0, label smoothing 0.1, random erasing 0.25. In-memory pools (digits,
synthetic) are small grey or synthetic images: they get random shifts instead of resized crops and
no flips (a flipped digit is another symbol).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from hwnas.data.sources import ImagePool

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


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
        out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = \
            x[..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
        return out


def _folder_transform(img_size: int, training: bool, augment: Augment) -> Any:
    from timm.data import create_transform

    if not training:
        return create_transform(img_size, is_training=False, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return create_transform(img_size, is_training=True, auto_augment=augment.rand_augment,
                            re_prob=augment.random_erasing, mean=IMAGENET_MEAN, std=IMAGENET_STD)


class PoolDataset(Dataset):
    """The examples `indices` of `pool`, as (image tensor, label); training ones augmented."""

    def __init__(self, pool: ImagePool, indices: tuple[int, ...], img_size: int, training: bool = False,
                 augment: Augment = AUGMENTS["none"]):
        self.pool, self.indices = pool, list(indices)
        if pool.images is not None:
            self.transform: Any = RandomShift(img_size // 8) if training and augment.name != "none" else None
        else:
            self.transform = _folder_transform(img_size, training, augment)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        index = self.indices[i]
        label = int(self.pool.labels[index])
        if self.pool.images is not None:
            x = self.pool.images[index]
            return (self.transform(x) if self.transform else x), label
        from PIL import Image

        with Image.open(self.pool.paths[index]) as img:
            return self.transform(img.convert("RGB")), label
