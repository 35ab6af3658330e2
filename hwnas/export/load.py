"""`hwnas.load_model(folder)`: an exported subnet back as a PyTorch module, from its safetensors
weights and config.json (a plain ViT/DeiT arch through `timm.create_model`, others through hwnas's
own extraction skeleton). Weights load strictly and without unpickling."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file
from torch import nn

from hwnas.errors import HwnasError
from hwnas.spaces import Arch, space_from_dict

CONFIG, WEIGHTS = "config.json", "model.safetensors"


def load_model(folder: str | Path) -> nn.Module:
    """The exported model in `folder` (written by `hwnas export --formats safetensors`), in eval mode."""
    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG).read_text())
        weights = load_file(str(folder / WEIGHTS))
    except (OSError, ValueError) as exc:
        raise HwnasError(f"{folder} holds no exported model ({exc}); export one with "
                         f"`hwnas export --formats safetensors --out {folder}`") from exc
    if config.get("timm"):
        import timm

        model = timm.create_model(config["timm"]["model_name"], pretrained=False, **config["timm"]["kwargs"])
    else:
        from hwnas.supernet import build_supernet

        space = space_from_dict(config["space"])
        model = build_supernet(space).extract(Arch.from_dict(config["arch"], space))
    model.load_state_dict(weights, strict=True)
    return model.eval()
