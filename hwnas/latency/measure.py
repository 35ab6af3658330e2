"""Whole models measured end to end on this machine, with a table's backend, settings and protocol.

What checks a table (validation, the drift spot check, recalibration) and what times an exported
artifact. `measure_archs` measures in this process. `measure_archs_apart` measures in fresh
processes, one after the other: a process's memory layout and thread placement move a median by
several percent, so only process-against-process comparisons show the noise a prediction faces.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from hwnas.errors import HwnasError
from hwnas.latency.bundle import DTYPE_NAMES, NETWORK, Plan, network_plans, write_bundle
from hwnas.latency.device import ONNXRUNTIME, TENSORRT, local_gpu_problem, parse_device, tensorrt_available
from hwnas.latency.profile import ProfileSettings, measure_plans, setup_here
from hwnas.latency.table import LATENCY, LatencyTable
from hwnas.profilers.protocol import Entry, Protocol, cpu_identity, cpu_model, read_measurements
from hwnas.spaces import Arch, SearchSpace, space_from_dict, spec_dict

# The fingerprint fields that say where and how a figure was measured (recorded beside it).
SETUP_SUMMARY = (
    "device",
    "backend",
    "backend_version",
    "precision",
    "batch_size",
    "threads",
    "cpu_model",
    "cpu_id",
    "gpu_model",
    "cuda_graphs",
    "torch",
    "protocol",
)


class MeasureError(HwnasError):
    """A measurement this machine cannot make, or one that failed in its own process."""


def table_settings(table: LatencyTable, protocol: Protocol | None = None) -> ProfileSettings:
    """The settings and timing protocol the table was measured with. A `protocol` given instead
    (shorter, for a spot check) keeps the table's round filter: the statistic its rows hold."""
    settings = ProfileSettings.of_table(table.fingerprint)
    if protocol is None:
        return settings
    return replace(settings, protocol=replace(protocol, round_tolerance=settings.protocol.round_tolerance))


def why_not_here(fingerprint: dict[str, Any]) -> str | None:
    """Why this machine cannot run the setup a table was measured on (None when it can).

    `cpu` means "this machine"; a named target (`cpu-<name>`, `gpu-<name>`) is this machine only
    when its processor is the one recorded; a known GPU label needs that GPU here."""
    device, backend = parse_device(str(fingerprint["device"])), fingerprint.get("backend")
    if backend == ONNXRUNTIME:
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed"
        here = {"cpu_model": cpu_model(), **cpu_identity()}
        other = [k for k in ("cpu_model", "cpu_id") if fingerprint.get(k) not in (None, here[k])]
        if device.label != "cpu" and other:
            return f"{device.label} is a CPU {fingerprint[other[0]]!r}, and this machine's is {here[other[0]]!r}"
        return None
    problem = local_gpu_problem(device)
    if problem:
        return problem
    if device.gpu_name is None and fingerprint.get("gpu_model") not in (None, _gpu_name()):
        return f"{device.label} is a {fingerprint['gpu_model']!r}, and this machine's GPU is a {_gpu_name()!r}"
    if backend == TENSORRT and not tensorrt_available():
        return "tensorrt is not installed"
    return None


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def require_here(table: LatencyTable, doing: str) -> None:
    why = why_not_here(table.fingerprint)
    if why:
        raise MeasureError(
            f"cannot {doing} with latency table {table.name} on this machine: {why}; "
            f"run it on the {table.device} itself"
        )


def setup_of(table: LatencyTable, settings: ProfileSettings | None = None) -> dict[str, Any]:
    """This machine's fingerprint for `table`'s settings (or `settings`): what a table measured here would record."""
    settings = settings or table_settings(table)
    return setup_here(settings, str(settings.backend))


def measure_archs(
    space: SearchSpace,
    table: LatencyTable,
    archs: Sequence[Arch],
    work: Path | None = None,
    protocol: Protocol | None = None,
    progress: bool = True,
    statistic: str = LATENCY,
) -> np.ndarray:
    """The latency (ms; `statistic`, p50 by default) of each arch, measured end to end in this process
    with `table`'s setup. `work` (a scratch folder by default) holds the exported models and the
    rows until all are measured (a rerun resumes)."""
    require_here(table, "measure subnets")
    settings = table_settings(table, protocol)
    plans = network_plans(archs, settings.batch_size, settings.precision)
    label = f"measure {len(archs)} {space.key} subnets" if progress else None
    return statistic_by_plan(plans, measure_here(space, settings, plans, label, work), statistic)


def measure_here(
    space: SearchSpace, settings: ProfileSettings, plans: Sequence[Plan], label: str | None, work: Path | None = None
) -> list[dict[str, Any]]:
    """Measure `plans` in this process with `settings` (their rows, in no set order). `work` (a
    scratch folder by default) holds the models and the rows until all are measured, so a rerun
    with the same `work` resumes; it is removed afterwards."""
    work = work or Path(tempfile.mkdtemp(prefix="hwnas-measure-"))
    try:
        return measure_plans(
            plans,
            str(settings.backend),
            settings,
            work,
            measurement_info(space, settings),
            label,
            out=work / "measured.csv",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure_archs_apart(
    space: SearchSpace,
    table: LatencyTable,
    archs: Sequence[Arch],
    work: Path,
    protocols: Sequence[Protocol | None] = (None, None),
    progress: bool = True,
    statistic: str = LATENCY,
) -> list[np.ndarray]:
    """One array of latencies (ms; `statistic`) per entry of `protocols`: process i, fresh, measures every
    arch with `protocols[i]` (None: the table's), the processes run one after another. The models are
    exported once, here; each process only loads and times them (and resumes)."""
    if not protocols:
        raise MeasureError("measuring needs at least one process")
    require_here(table, "measure subnets")
    settings = table_settings(table)
    plans = network_plans(archs, settings.batch_size, settings.precision)
    info = measurement_info(space, settings)
    work.mkdir(parents=True, exist_ok=True)
    if settings.backend != "torch":
        write_bundle(work, plans, info, progress)
    job = {
        "space": spec_dict(space),
        "archs": [a.to_dict() for a in archs],
        "fingerprint": table.fingerprint,
        "work": str(work),
        "info": info,
    }
    results = []
    for i, protocol in enumerate(protocols, start=1):
        out = work / f"process{i}.csv"
        label = f"measure {space.key} in process {i}/{len(protocols)}" if progress else None
        job_file = work / f"process{i}.job.json"
        job_file.write_text(
            json.dumps({**job, "protocol": (protocol or settings.protocol).to_dict(), "out": str(out), "label": label})
        )
        done = subprocess.run(
            [sys.executable, "-m", "hwnas.latency.measure", str(job_file)],
            stdout=subprocess.DEVNULL,
            stderr=None if progress else subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        if done.returncode != 0:
            tail = (done.stderr or "").strip().splitlines()[-1:] or ["its error is printed above"]
            raise MeasureError(f"measuring in process {i} failed (exit code {done.returncode}): {tail[0]}")
        results.append(statistic_by_plan(plans, list(read_measurements(out).values()), statistic))
    shutil.rmtree(work, ignore_errors=True)
    return results


def measure_model(
    model: nn.Module,
    onnx_file: Path | None,
    arch: Arch,
    table: LatencyTable | None,
    precision: str,
    batch_size: int,
    work: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Time one exported model with `table`'s backend and protocol at the export's precision and batch
    size: `onnx_file` itself on the ONNX backends, `model` on the torch backend. Without a table,
    `onnx_file` with onnxruntime on this CPU (1 thread, the default protocol): a file needs no table
    to be timed. Returns its stats and the setup they were measured on."""
    if table is not None:
        require_here(table, "time the export")
        settings = replace(table_settings(table), precision=precision, batch_size=batch_size)
    else:
        settings = ProfileSettings(device="cpu", backend=ONNXRUNTIME, precision=precision, batch_size=batch_size)
    backend = str(settings.backend)
    s = arch.space.spec
    entry = Entry(
        file="model.onnx",
        key=f"export/{arch.digest}",
        kind=NETWORK,
        input_shape=(batch_size, s.in_chans, s.img_size, s.img_size),
        input_dtype=DTYPE_NAMES[precision],
    )
    if backend != "torch":
        if onnx_file is None:
            raise MeasureError("timing with an ONNX backend needs the exported model.onnx; add onnx to --formats")
        work.mkdir(parents=True, exist_ok=True)
        _link_or_copy(onnx_file, work / entry.file)
    plans = [Plan(entry, lambda: copy.deepcopy(model).eval())]
    label = "time the export" if progress else None
    (row,) = measure_plans(
        plans, backend, settings, work, measurement_info(arch.space, settings), label, out=work / "measured.csv"
    )
    shutil.rmtree(work, ignore_errors=True)
    setup = setup_here(settings, backend)
    return {
        "latency_ms": float(row["p50_ms"]),
        "p10_ms": float(row["p10_ms"]),
        "p90_ms": float(row["p90_ms"]),
        "file": entry.file if backend != "torch" else None,
        "setup": {k: setup[k] for k in SETUP_SUMMARY if k in setup},
    }


def measurement_info(space: SearchSpace, settings: ProfileSettings) -> dict[str, Any]:
    """The manifest header of an end-to-end measurement bundle."""
    return {**settings.bundle_info(space, str(settings.backend)), "purpose": "end-to-end measurement"}


def statistic_by_plan(plans: Sequence[Plan], rows: Sequence[dict[str, Any]], statistic: str = LATENCY) -> np.ndarray:
    """The `statistic` (ms, p50 by default) of each plan's model, in the order of `plans`, from measured rows."""
    by_file = {r["file"]: float(r[statistic]) for r in rows}
    return np.array([by_file[p.entry.file] for p in plans])


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure a job of `measure_archs_apart` in this (fresh) process."""
    (job_file,) = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(job_file).read_text())
    space = space_from_dict(job["space"])
    archs = [Arch.from_dict(a, space) for a in job["archs"]]
    settings = replace(ProfileSettings.of_table(job["fingerprint"]), protocol=Protocol.from_dict(job["protocol"]))
    plans = network_plans(archs, settings.batch_size, settings.precision)
    measure_plans(
        plans, str(settings.backend), settings, Path(job["work"]), job["info"], job["label"], out=Path(job["out"])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
