"""State dicts read from files without unpickling code, and checked against the model they load
into: weights that do not fit are refused in one line naming the first key that differs (torch
would list every key of every block), so weights of another arch are told apart at once."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from hwnas.errors import HwnasError

HINT = "are these the weights of another arch?"


class WeightsError(HwnasError, ValueError):
    """Weights that cannot be read, or that do not fit the arch's model."""


def _shape(tensor: Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)


def read_weights(path: str | Path) -> dict[str, Tensor]:
    """The state dict in a safetensors file, or in a torch file read with `weights_only=True`.

    A training checkpoint's weights under "model" are taken: the DeiT convention, which GLiT's
    release follows. Its checkpoints also pickle their `argparse.Namespace` of options, the one
    class allowed beside torch's tensors and plain containers (it restores attributes only)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        with torch.serialization.safe_globals([argparse.Namespace]):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated, foreign or unsafe files
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        reason = f"it pickles {unsafe[1]}, which hwnas does not unpickle" if unsafe else type(exc).__name__
        raise WeightsError(
            f"{path}: not weights hwnas can read ({reason}); save the state dict alone, with "
            f"safetensors or torch.save(model.state_dict(), path)"
        ) from exc
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"{path}: holds no state dict (names to tensors), nor one under 'model'")
    return {str(k): v for k, v in state.items()}


def check_fits(weights: Mapping[str, object], expected: Mapping[str, Tensor], what: str) -> None:
    """Raise `WeightsError` at the first key of `weights` (in its order) that `expected` lacks or
    holds in another shape, else at the first key of `expected` that `weights` lacks. `what` names
    the weights in the message."""
    for key, tensor in weights.items():
        if not isinstance(tensor, Tensor):
            raise WeightsError(f"{what}: {key!r} is a {type(tensor).__name__}, not a tensor")
        want = expected.get(key)
        if want is None:
            raise WeightsError(f"{what}: key {key!r} (shape {_shape(tensor)}) is not in the arch's model; {HINT}")
        if _shape(tensor) != _shape(want):
            raise WeightsError(
                f"{what}: key {key!r} has shape {_shape(tensor)} where the arch's model has {_shape(want)}; {HINT}"
            )
    missing = [key for key in expected if key not in weights]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise WeightsError(
            f"{what}: key {missing[0]!r} (shape {_shape(expected[missing[0]])}) of the arch's model is missing{more}; "
            f"{HINT}"
        )
