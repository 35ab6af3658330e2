"""Shared test helpers: running the CLI as a user does, and small spaces that export in seconds."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any


def hwnas(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hwnas", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def hwnas_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """`hwnas` run through the same entry point in this process, for refusals: no interpreter start or
    torch import per call (seconds each on a 2-core CI machine). The CLI's warning format is undone after."""
    from hwnas.cli import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return subprocess.CompletedProcess(["hwnas", *args], code, out.getvalue(), err.getvalue())


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess[str]:
    """`torchrun --standalone --nproc_per_node NPROC ARGS` (say `-m hwnas train ...` or a script and
    its arguments) on the CPU with gloo, also on a GPU machine; one thread per process."""
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def toy_space_yaml(folder: Path, name: str = "toy-space", **choices: Any) -> Path:
    """A user space of a handful of blocks (16 px, patch 4, 17 tokens): profiling it takes seconds."""
    spec = {
        "family": "autoformer",
        "img_size": 16,
        "patch_size": 4,
        "in_chans": 3,
        "num_classes": 10,
        "head_dim": 16,
        "choices": {"embed_dim": [32, 48], "depth": [1, 2], "num_heads": [1, 2], "mlp_ratio": [2.0], **choices},
    }
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def killed_after_first_checkpoint(module: Any, call: Any, monkeypatch: Any) -> None:
    """Run `call()` as a run killed right after its first checkpoint (`module.save_checkpoint`'s
    first write, epoch 0), for resume tests."""
    import pytest

    real_save = module.save_checkpoint

    def save_then_die(run_dir: Path, state: dict[str, Any]) -> Path:
        path = real_save(run_dir, state)
        if state["epoch"] == 0:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        call()
    monkeypatch.setattr(module, "save_checkpoint", real_save)


def train_killed_after_first_epoch(config: Any, out: Path, monkeypatch: Any) -> None:
    """Train `config` into `out` as a run killed right after its first checkpoint (for resume tests)."""
    import hwnas.training.trainer as trainer_mod
    from hwnas.training import train

    killed_after_first_checkpoint(trainer_mod, lambda: train(config, out, progress=False), monkeypatch)
