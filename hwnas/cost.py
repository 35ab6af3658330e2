"""Parameter and FLOP counts of an arch (analytic, fast: what search uses) or of a model (fvcore).

FLOPs follow the ViT literature: multiply-accumulates (DeiT-Tiny = 1.25 G), attention's two matrix
products included, norms/activations/additions excluded. fvcore (and torch's FlopCounterMode on CPU)
silently count 0 for fused `scaled_dot_product_attention`, which timm uses by default, so the model
count registers a handler for it; both counts then agree exactly.
"""

from __future__ import annotations

import warnings
from math import prod
from typing import Any

import torch
from torch import nn

from hwnas.errors import HwnasError
from hwnas.spaces import Arch

# fvcore counts these by default; the MAC convention leaves them out. (A `None` handle does not
# remove fvcore's default handler, it only marks the op ignored, so they get a zero handler.)
_NOT_COUNTED = (
    "aten::layer_norm",
    "aten::batch_norm",
    "aten::group_norm",
    "aten::instance_norm",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
    "aten::adaptive_avg_pool2d",
)


def _sdpa_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """MACs of fused attention: q @ k^T (B*H*Tq*Tk*d) plus attn @ v (B*H*Tq*Tk*dv)."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(t) for t in inputs[:3])
    scores = prod(q[:-1]) * k[-2]
    return scores * q[-1] + scores * v[-1]


def _zero(inputs: list[Any], outputs: list[Any]) -> int:
    return 0


def count_params(arch_or_model: Arch | nn.Module) -> int:
    """Trainable parameters: analytic for an Arch, summed over tensors for a module."""
    if isinstance(arch_or_model, Arch):
        return arch_or_model.params()
    return sum(p.numel() for p in arch_or_model.parameters())


def count_flops(arch_or_model: Arch | nn.Module, input_size: tuple[int, int, int] | None = None) -> int:
    """Multiply-accumulates for one image. An Arch is counted analytically from its blocks; a module
    is traced by fvcore on a (1, *input_size) input (if not given: the model's `input_size`, or a timm
    ViT's patch embedding)."""
    if isinstance(arch_or_model, Arch):
        return arch_or_model.macs()
    model = arch_or_model
    if input_size is None:
        input_size = _input_size(model)
    inputs = torch.zeros(1, *input_size, device=next(model.parameters()).device)
    return flops_by_module(model, inputs)[""]


def flops_by_module(model: nn.Module, inputs: torch.Tensor) -> dict[str, int]:
    """Multiply-accumulates of `model` on `inputs`, per submodule name ("" is the whole), traced by
    fvcore with the MAC convention of `count_flops`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore imports the deprecated torch.jit
        from fvcore.nn import FlopCountAnalysis

    was_training = model.training
    model.eval()
    try:
        analysis = FlopCountAnalysis(model, inputs)
        analysis.set_op_handle("aten::scaled_dot_product_attention", _sdpa_macs)
        analysis.set_op_handle(**{op: _zero for op in _NOT_COUNTED})
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fvcore traces with the deprecated torch.jit
            return {name: int(count) for name, count in analysis.by_module().items()}
    finally:
        model.train(was_training)


def _input_size(model: nn.Module) -> tuple[int, int, int]:
    declared = getattr(model, "input_size", None)  # models that say it (a family's own static model)
    if declared is not None:
        return tuple(declared)  # type: ignore[return-value]
    embed = getattr(model, "patch_embed", None)
    proj = getattr(embed, "proj", None)
    img_size = getattr(embed, "img_size", None)
    if not isinstance(proj, nn.Conv2d) or img_size is None:
        raise HwnasError(f"cannot tell the input size of {type(model).__name__}; pass input_size=(C, H, W)")
    return (proj.in_channels, *img_size)
