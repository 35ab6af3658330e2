"""scikit-learn's bundled `digits`: 1,797 real 8x8 grey images of 10 classes, shipped with the
library, so the default pipeline needs no download. Images are upscaled to the space's resolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Mean and std of the 0..16 pixel values scaled to [0, 1], over the whole set.
DIGITS_MEAN, DIGITS_STD = 0.3053, 0.3760


def load_digits_tensors(img_size: int = 32, in_chans: int = 3) -> tuple[Tensor, Tensor]:
    """All digits as normalised float images (N, in_chans, img_size, img_size) and int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images).float().div_(16.0).unsqueeze(1)
    x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
    x = ((x - DIGITS_MEAN) / DIGITS_STD).expand(-1, in_chans, -1, -1).contiguous()
    return x, torch.from_numpy(digits.target).long()
