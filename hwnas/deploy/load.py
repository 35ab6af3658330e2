"""`hwnas.load_model(folder)`: an exported subnet back as a PyTorch module, from its safetensors
weights and config.json: the family's static model (`hwnas.build_model`, no supernet) with the
weights loaded strictly and without unpickling. A plain ViT/DeiT arch's config also holds the
`timm.create_model` call that builds the same model without hwnas."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file
from torch import nn

from hwnas.errors import HwnasError
from hwnas.families.registry import build_model
from hwnas.rng import isolated_rng
from hwnas.spaces import Arch, space_from_dict

CONFIG, WEIGHTS = "config.json", "model.safetensors"


def load_model(folder: str | Path) -> nn.Module:
    """The exported model in `folder` (written by `hwnas export --formats safetensors`), in eval mode.

    Example:
        ```python
        # not run in the tests: needs an export folder
        import torch, hwnas
        model = hwnas.load_model("export/")
        logits = model(torch.randn(1, 3, 32, 32))
        ```
    """
    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG).read_text())
        weights = load_file(str(folder / WEIGHTS))
    except (OSError, ValueError) as exc:
        raise HwnasError(
            f"{folder} holds no exported model ({exc}); export one with "
            f"`hwnas export --formats safetensors --out {folder}`"
        ) from exc
    space = space_from_dict(config["space"])
    with isolated_rng():  # the initialisation is overwritten by the weights
        model = build_model(Arch.from_dict(config["arch"], space))
    model.load_state_dict(weights, strict=True)
    return model.eval()
