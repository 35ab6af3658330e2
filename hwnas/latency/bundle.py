"""What a profile measures, and the bundle format that carries it to a device.

A *plan* is one model to measure: a single block (a table row) or a whole calibration network
(an extracted subnet whose end-to-end time fits the table's calibration). A *bundle* is a folder
with every planned model as ONNX plus `manifest.json`; `profilers/*.py` measure it anywhere.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import random
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn
from tqdm import tqdm

from hwnas.errors import HwnasError
from hwnas.families.registry import build_model
from hwnas.io import atomic_write_bytes, atomic_write_json
from hwnas.profilers.protocol import MANIFEST, MANIFEST_VERSION, Entry
from hwnas.resources import available_cores, available_memory_bytes
from hwnas.rng import isolated_rng
from hwnas.spaces import Arch, SearchSpace
from hwnas.spaces.blocks import BlockConfig

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
DTYPE_NAMES = {"fp32": "float32", "fp16": "float16"}  # as numpy and the manifest spell them
BLOCK, NETWORK = "block", "network"
OPSET = 20


class BundleError(HwnasError):
    """A bundle that could not be written."""


@dataclass(frozen=True)
class Plan:
    """One model to measure: its manifest entry and how to build it (eval mode, right dtype)."""

    entry: Entry
    build: Callable[[], nn.Module]


def _fresh(build: Callable[[], nn.Module], precision: str) -> nn.Module:
    """A module built with its own seeded RNG (latency does not depend on the weights, and the
    caller's random stream must not move), in eval mode and the measured precision."""
    with isolated_rng(0):
        return build().eval().to(DTYPES[precision])


def block_plans(configs: Iterable[BlockConfig], batch_size: int, precision: str) -> list[Plan]:
    plans = []
    for cfg in configs:
        name = cfg.key.replace("/", "_").replace("=", "")
        entry = Entry(
            file=f"blocks/{name}.onnx",
            key=cfg.key,
            kind=BLOCK,
            input_shape=cfg.definition.input_shape(cfg, batch_size),
            input_dtype=DTYPE_NAMES[precision],
            extra={"block": cfg.to_dict()},
        )
        plans.append(Plan(entry, lambda cfg=cfg: _fresh(lambda: cfg.definition.module(cfg), precision)))
    return plans


def network_plans(archs: Sequence[Arch], batch_size: int, precision: str) -> list[Plan]:
    plans = []
    for arch in archs:
        s = arch.space.spec
        entry = Entry(
            file=f"networks/{arch.space.key}-{arch.digest}.onnx",
            key=f"net/{arch.space.key}/{arch.digest}",
            kind=NETWORK,
            input_shape=(batch_size, s.in_chans, s.img_size, s.img_size),
            input_dtype=DTYPE_NAMES[precision],
            blocks=tuple(b.key for b in arch.blocks()),
            extra={"space": arch.space.key, "arch": arch.to_dict()},
        )
        plans.append(Plan(entry, lambda arch=arch: _fresh(lambda: build_model(arch), precision)))
    return plans


def sample_archs(space: SearchSpace, n: int, seed: int, extremes: bool = False) -> list[Arch]:
    """`n` distinct archs drawn with `seed` (with `extremes`, the smallest and largest among them)."""
    rng = random.Random(seed)
    archs: dict[str, Arch] = {}
    if extremes:
        for arch in (space.smallest(), space.largest())[:n]:
            archs[arch.digest] = arch
    for _ in range(100 * n):
        if len(archs) >= n:
            break
        arch = space.sample(rng)
        archs.setdefault(arch.digest, arch)
    return list(archs.values())


def example_input(entry: Entry) -> torch.Tensor:
    return torch.randn(entry.input_shape, generator=torch.Generator().manual_seed(0)).to(
        getattr(torch, entry.input_dtype)
    )


def export_onnx(
    module: nn.Module, example: torch.Tensor, path: str | Path, opset: int = OPSET, check: bool = True
) -> Path:
    """Export with the dynamo exporter into one self-contained file (no external data, so
    TensorRT can parse it), without the exporter's metadata (stack traces with local paths).
    `check`: run `onnx.checker` on it (it serializes the model once more: 3 s of a 620-MB
    resnas-small subnet's 19-s export; a bundle's profiler loads every file anyway)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            external_data=False,
            verbose=False,
            opset_version=opset,
            input_names=["x"],
            output_names=["y"],
        )
    model = program.model_proto
    del model.metadata_props[:]
    for node in model.graph.node:
        del node.metadata_props[:]
    if check:
        onnx.checker.check_model(model)
    return atomic_write_bytes(path, model.SerializeToString())


# An export process's peak memory: the exporter holds the module, its traced program and the
# serialized model at once, about four copies of the weights, over what the process holds already
# (torch and hwnas loaded, about 1 GB). `benchmarks/export_workers.py` compares it with the
# measured peak (resnas-small's largest subnet, 621 MB of fp32 weights: about 3 GB).
EXPORT_BASE_BYTES = 2**30
EXPORT_WEIGHT_COPIES = 4


def write_bundle(
    folder: str | Path, plans: Sequence[Plan], info: dict[str, Any], progress: bool = True, workers: int | None = None
) -> Path:
    """Export every plan (files already there are kept: an interrupted export resumes) and write
    the manifest, which `info` (space, precision, batch size, ...) heads. The exports run in
    `workers` processes at once (None: `export_workers`); each file is the same whichever runs it."""
    folder = Path(folder)
    todo = [p for p in plans if not (folder / p.entry.file).is_file()]
    workers = export_workers(todo) if workers is None else max(1, min(workers, len(todo)))
    with tqdm(total=len(todo), desc="export ONNX", unit="model", disable=not progress or not todo) as bar:
        if workers == 1:
            for plan in todo:
                _export_plan(folder, plan)
                bar.update()
        else:
            _export_in_processes(folder, todo, workers, bar)
    models = [manifest_entry(p.entry) for p in plans]
    atomic_write_json(folder / MANIFEST, {"version": MANIFEST_VERSION, **info, "opset": OPSET, "models": models})
    return folder


def export_workers(plans: Sequence[Plan]) -> int:
    """How many of `plans` to export at once: one per core, as many as the free memory holds at the
    largest one's peak (`export_peak_bytes`), one where processes cannot be forked (the plans build
    their modules from closures, which only a forked process inherits) or this one is a daemon
    (which may not have children)."""
    if len(plans) < 2 or "fork" not in mp.get_all_start_methods() or mp.current_process().daemon:
        return 1
    memory = available_memory_bytes()
    fit = available_cores() if memory is None else memory // max(map(export_peak_bytes, plans))
    return max(1, min(len(plans), available_cores(), fit))


def export_peak_bytes(plan: Plan) -> int:
    """What exporting `plan` may take at its peak, from its weights (its blocks' parameters)."""
    params = sum(BlockConfig.from_key(k).params() for k in plan.entry.blocks or (plan.entry.key,))
    return EXPORT_BASE_BYTES + EXPORT_WEIGHT_COPIES * params * np.dtype(plan.entry.input_dtype).itemsize


def _export_plan(folder: Path, plan: Plan) -> None:
    export_onnx(plan.build(), example_input(plan.entry), folder / plan.entry.file, check=False)


_WORKER_PLANS: dict[str, Any] = {}  # in an export process only: what `_init_export_worker` was given


def _init_export_worker(folder: Path, plans: Sequence[Plan]) -> None:
    torch.set_num_threads(1)  # one export per core (and OpenMP's pool is not the parent's after a fork)
    _WORKER_PLANS.update(folder=folder, plans=plans)


def _export_nth(i: int) -> None:
    _export_plan(_WORKER_PLANS["folder"], _WORKER_PLANS["plans"][i])


def _export_in_processes(folder: Path, plans: Sequence[Plan], workers: int, bar: tqdm) -> None:
    """Export `plans` in `workers` forked processes (the exporter is single-threaded Python: a
    process per core is what makes it faster), each file written atomically as it finishes."""
    context = mp.get_context("fork")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_export_worker, initargs=(folder, plans)
    ) as pool:
        futures = [pool.submit(_export_nth, i) for i in range(len(plans))]
        try:
            for future in as_completed(futures):
                future.result()
                bar.update()
        except BrokenProcessPool as e:
            peak = max(map(export_peak_bytes, plans)) / 2**30
            raise BundleError(
                f"an ONNX export process died (out of memory?) exporting into {folder}; rerun to resume "
                f"(finished files are kept), or free memory: each export may take up to {peak:.1f} GB"
            ) from e
        finally:
            for future in futures:
                future.cancel()


def manifest_entry(e: Entry) -> dict[str, Any]:
    row: dict[str, Any] = {
        "file": e.file,
        "key": e.key,
        "kind": e.kind,
        "input": {"name": e.input_name, "shape": list(e.input_shape), "dtype": e.input_dtype},
    }
    if e.blocks:
        row["blocks"] = list(e.blocks)
    return {**row, **e.extra}
