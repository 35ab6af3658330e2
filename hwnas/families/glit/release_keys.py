"""GLiT's release names against hwnas's, both ways: a checkpoint trained with the release loads
into `build_model(arch)`, and an hwnas model saves as a state dict the release loads.

The release (bychen515/GLiT, `glit_models.py`: `RetrainTransformer`, `Block_mix`; `mix_attention.py`:
`Vit_Attention`, `Mix_Attention`, `Conv_Attention`) differs from timm's names in two places:

- each block is a one-candidate `nn.ModuleList`, so its tensors sit under `blocks.{i}.0.`;
- the locality module is an `nn.Sequential` `attn.net` (Rearrange, Conv1d, GLU, DepthWiseConv1d,
  BatchNorm1d, Swish, Conv1d, Rearrange) whose tensors are `net.1`, `net.3.conv`, `net.4`, `net.6`:
  hwnas's `attn.local.{pw1,dw,bn,pw2}`.

The stem, class token, position embedding, final norm, head, LayerNorms, MLPs and attention
(`attn.qkv`, `attn.proj`) have timm's names on both sides. Every tensor keeps its shape and layout:
both fuse q, k and v in one linear (same order, same head split), both hold the 1x1 convs as
`Conv1d` weights (out, in, 1), and the BatchNorm buffers, `num_batches_tracked` included, carry
over as they are. The map therefore renames and converts nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor, nn

from hwnas.weights import check_fits

LOCAL = {"pw1": "net.1", "dw": "net.3.conv", "bn": "net.4", "pw2": "net.6"}  # hwnas -> release
TO_RELEASE = {f"attn.local.{ours}.": f"attn.{theirs}." for ours, theirs in LOCAL.items()}
FROM_RELEASE = {theirs: ours for ours, theirs in TO_RELEASE.items()}
HWNAS_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")
RELEASE_BLOCK = re.compile(r"blocks\.(\d+)\.0\.(.+)")  # only the release nests a candidate index


def _renamed(rest: str, prefixes: Mapping[str, str]) -> str:
    """`rest` (a name inside one block) with its first matching prefix replaced."""
    for old, new in prefixes.items():
        if rest.startswith(old):
            return new + rest[len(old) :]
    return rest


def release_key(name: str) -> str:
    """The release's name of the tensor hwnas names `name`."""
    m = HWNAS_BLOCK.fullmatch(name)
    return name if m is None else f"blocks.{m[1]}.0.{_renamed(m[2], TO_RELEASE)}"


def hwnas_key(name: str) -> str:
    """hwnas's name of the tensor the release names `name`."""
    m = RELEASE_BLOCK.fullmatch(name)
    return name if m is None else f"blocks.{m[1]}.{_renamed(m[2], FROM_RELEASE)}"


def to_release(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An hwnas GLiT state dict in the release's names (saved as `{"model": ...}`, it is what the
    release's `main.py --resume` reads, its `RetrainTransformer` set to the same arch)."""
    return {release_key(k): v for k, v in state_dict.items()}


def from_release(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A release state dict in hwnas's names (unchecked: `release_weights` checks it against an arch)."""
    return {hwnas_key(k): v for k, v in state_dict.items()}


def is_release_layout(state_dict: Mapping[str, object]) -> bool:
    return any(RELEASE_BLOCK.fullmatch(k) for k in state_dict)


def release_weights(state_dict: Mapping[str, Tensor], model: nn.Module) -> dict[str, Tensor] | None:
    """The family's `foreign_weights` hook: a release state dict renamed for `model`, or None when it
    is not in the release's layout. It is checked in the release's names first, so that an error
    names the key as the checkpoint has it."""
    if not is_release_layout(state_dict):
        return None
    check_fits(state_dict, to_release(model.state_dict()), "in the GLiT release's names")
    return from_release(state_dict)
