"""`hwnas.load_model`: a subnet as a PyTorch module, built from its arch alone (the family's static
model, `hwnas.build_model`, no supernet) with weights loaded strictly and without unpickling code.

The weights and arch come from an export folder (safetensors weights and config.json), or are
given: a weights file or state dict with the `Arch` it belongs to. Weights in a foreign layout the
family knows (a paper's released checkpoint) are renamed by the family's `foreign_weights` hook.
A plain ViT/DeiT arch's config also holds the `timm.create_model` call that builds the same model
without hwnas."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from safetensors.torch import load_file
from torch import Tensor, nn

from hwnas.errors import HwnasError, cli_message
from hwnas.families.registry import get_family
from hwnas.rng import isolated_rng
from hwnas.spaces import Arch, space_from_dict
from hwnas.weights import WeightsError, check_fits, read_weights

CONFIG, WEIGHTS = "config.json", "model.safetensors"


def _read_export(folder: Path) -> tuple[Arch, dict[str, Tensor]]:
    """The arch and weights of an export folder."""
    try:
        config = json.loads((folder / CONFIG).read_text())
        weights = load_file(str(folder / WEIGHTS))
    except (OSError, ValueError) as exc:
        raise HwnasError(
            f"{folder} holds no exported model ({cli_message(exc)}); export one with "
            f"`hwnas export --formats safetensors --out {folder}`, or pass a weights file with its arch: "
            f"`hwnas.load_model(path, arch=arch)`"
        ) from exc
    return Arch.from_dict(config["arch"], space_from_dict(config["space"])), weights


def load_model(source: str | Path | Mapping[str, Tensor], arch: Arch | None = None) -> nn.Module:
    """The model of an export folder, or of given weights and their arch, in eval mode.

    Without `arch`, `source` is a folder written by `hwnas export --formats safetensors`. With it,
    `source` is a state dict of that arch, or a file holding one: safetensors, or a torch file read
    with `weights_only=True` (a training checkpoint's "model" entry is taken). The weights may be
    in hwnas's names or in a layout the arch's family knows: a GLiT arch also takes the GLiT
    release's `RetrainTransformer` checkpoints. Weights of another arch are refused in one line
    naming the first key that differs.

    Example:
        ```python
        # not run in the tests: needs an export folder and a GLiT release checkpoint
        import torch, hwnas
        model = hwnas.load_model("export/")
        logits = model(torch.randn(1, 3, 32, 32))
        tiny = hwnas.get_space("glit-tiny").arch(
            base_arch=[3, 0, 1, 3, 0, 1, 3, 1, 0, 3, 0, 3], arch=[1, 4, 8, 4, 8, 8, 3, 6, 8, 4, 5, 8]
        )
        glit = hwnas.load_model("glit_tiny.pth.tar", arch=tiny)
        ```
    """
    if arch is None:
        if isinstance(source, Mapping):
            raise HwnasError("a state dict needs the arch it belongs to: `hwnas.load_model(state_dict, arch=arch)`")
        arch, weights = _read_export(Path(source))
        what = f"{Path(source) / WEIGHTS}"
    elif isinstance(source, Mapping):
        weights, what = dict(source), "the state dict"
    else:
        weights, what = read_weights(source), f"{source}"
    family = get_family(arch.space.family)
    with isolated_rng():  # the initialisation is overwritten by the weights
        model = family.build_model(arch)
    what = f"{what} (for {arch.space.key})"
    try:
        weights = family.native_weights(weights, model)
    except WeightsError as exc:  # the family's message names the key as the weights have it
        raise WeightsError(f"{what}, {cli_message(exc)}") from exc
    check_fits(weights, model.state_dict(), what)
    model.load_state_dict(weights, strict=True)
    return model.eval()
