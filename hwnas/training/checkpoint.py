"""Checkpoints: everything an exact resume needs, written atomically, loaded without unpickling.

`checkpoint.pt` (torch.save, read back with `weights_only=True`) holds the model, optimiser,
scheduler, RNG states, epoch, config and metrics; `supernet.safetensors` holds the weights alone
for search and export, with the space in its metadata.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from hwnas.errors import HwnasError
from hwnas.io import atomic_write_bytes
from hwnas.spaces import SearchSpace

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "supernet.safetensors"
FORMAT = 1


class CheckpointError(HwnasError):
    """A corrupted checkpoint, or one from another space or run."""


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buf)
    return atomic_write_bytes(run_dir / CHECKPOINT, buf.getvalue())


def _same_space(recorded: dict[str, Any], space: SearchSpace) -> bool:
    """Whether a file's recorded space is `space`: by content digest (older files: by name)."""
    if recorded.get("space_digest"):
        return recorded["space_digest"] == space.digest
    return recorded.get("space") == space.key


def load_checkpoint(path: Path, space: SearchSpace) -> dict[str, Any]:
    """A checkpoint of `space`, or a one-line refusal (corrupted, foreign, other space)."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; start the run without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"{path} is corrupted or not a hwnas checkpoint ({type(exc).__name__}); delete it to start over"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a hwnas checkpoint (format {FORMAT}); delete it to start over")
    if not _same_space(state, space):
        raise CheckpointError(
            f"{path} is a checkpoint of space {state.get('space')!r} (content {state.get('space_digest')}), "
            f"not {space.ref!r}; resume with the run's space or use another --out"
        )
    return state


def save_weights(run_dir: Path, model: nn.Module, space: SearchSpace) -> Path:
    """The supernet's weights as safetensors (what search and export load)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"space": space.key, "space_digest": space.digest, "format": str(FORMAT)}
    return atomic_write_bytes(run_dir / WEIGHTS, save(tensors, metadata=meta))


def load_weights(path: Path, model: nn.Module, space: SearchSpace) -> None:
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"no trained weights at {path}; train with `hwnas train --out {path.parent}`")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path} is corrupted or not safetensors ({type(exc).__name__}); train again") from exc
    if not _same_space(meta, space):
        raise CheckpointError(
            f"{path} holds a supernet of space {meta.get('space')!r} (content {meta.get('space_digest')}), "
            f"not {space.ref!r}"
        )
    model.load_state_dict(tensors)
