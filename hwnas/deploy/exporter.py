"""`hwnas export`: a searched subnet as deployable artifacts plus a manifest that says what they are.

Everything is written into a staging folder next to `out` and checked there; only then is each
file moved into `out` (a rename), so a failed export leaves earlier artifacts intact.
"""

from __future__ import annotations

import copy
import os
import platform
import shutil
import tempfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from hwnas.deploy.artifacts import (
    CONFIG,
    DEFAULT_OPSET,
    FILES,
    FORMATS,
    ExportError,
    check_onnx,
    check_pt2,
    check_safetensors,
    check_tensorrt,
    fresh_inputs,
    tensorrt_unavailable,
    write_onnx,
    write_pt2,
    write_safetensors,
    write_tensorrt,
)
from hwnas.errors import ArchError
from hwnas.io import atomic_write_json, sha256_file
from hwnas.latency.drift import DriftPolicy, check_drift
from hwnas.latency.measure import measure_model, why_not_here
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.resolve import optional_table
from hwnas.latency.table import LatencyTable
from hwnas.spaces import Arch
from hwnas.training.checkpoint import CheckpointError
from hwnas.training.finetune import FinetunedRun, open_run
from hwnas.training.run import TrainedRun

MANIFEST = "manifest.json"
DEFAULT_FORMATS = ("onnx", "pt2", "safetensors")
PRECISIONS = ("fp32", "fp16")


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    names = [f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    unknown = [f for f in names if f not in FORMATS]
    if unknown or not names:
        raise ExportError(f"unknown format {unknown[0] if unknown else '(none)'!r}; choose from {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(names))


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("hwnas", "torch", "timm", "onnx", "onnxruntime", "onnxscript", "safetensors", "tensorrt"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            continue
    return out


def _staging(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    except OSError as exc:
        raise ExportError(f"cannot write to {out} ({exc.strerror}); choose a writable --out") from None


def export(
    run: str | Path,
    arch: str | Path | Arch,
    out: str | Path,
    formats: str | Sequence[str] = DEFAULT_FORMATS,
    precision: str = "fp32",
    batch_size: int = 1,
    device: str | None = None,
    table: str | Path | LatencyTable | None = None,
    opset: int = DEFAULT_OPSET,
    measure: bool = True,
    drift: str = "refit",
    progress: bool = True,
    max_latency_error: float | None = None,
) -> dict[str, Any]:
    """Export subnet `arch` (an Arch, an arch JSON or a search's best.json) of the supernet in `run`
    (or, when `run` is a `hwnas finetune` folder, its fine-tuned weights).

    Returns the manifest. Latency is predicted from the table of `device` (default: the CPU table,
    when one covers the space; `drift` says what to do when it is off here) and, with `measure`,
    the written `model.onnx` is timed here with that table's backend and protocol, at the export's
    precision and batch size (on the torch backend: the PyTorch model). Where this machine cannot
    run the table's setup, the manifest says so instead.

    `max_latency_error` (percent) gates the export: the manifest's `gate` says whether the measured
    latency is within that much above the prediction (the artifacts are written either way; the
    CLI exits 1 when it is not). The gate needs the model timed here at the table's precision and
    batch size, so it is refused up front where it could not be judged."""
    formats = parse_formats(formats)
    if max_latency_error is not None and not (max_latency_error >= 0):
        raise ExportError(f"--max-latency-error must be a percentage >= 0, got {max_latency_error}")
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; use fp32 or fp16")
    if batch_size < 1:
        raise ExportError(f"--batch-size must be at least 1, got {batch_size}")
    if "tensorrt" in formats and (why := tensorrt_unavailable()):
        raise ExportError(f"tensorrt was requested but {why}; drop it from --formats or export on a GPU machine")
    trained = open_run(run)
    if not trained.weights.is_file():
        raise CheckpointError(
            f"{trained.dir} has no trained weights ({trained.weights.name}); finish the training "
            f"(`hwnas train` or `hwnas finetune` with --out {trained.dir}) first"
        )
    arch = arch if isinstance(arch, Arch) else Arch.from_json(arch, trained.space)
    if arch.space != trained.space:
        raise ArchError(f"arch is from space {arch.space.key!r}, but the run trained {trained.space.key!r}")
    out = Path(out)
    staging = _staging(out)  # an unwritable --out is refused before any measuring
    try:
        # the table's setup decides what can be timed and gated: refused before its drift spot check measures
        found = optional_table(trained.space, device=device, table=table, drift="ignore", progress=progress)
        untimed = _why_untimed(found, measure, formats, precision)  # decided before anything is built
        if max_latency_error is not None:
            _check_gate_possible(found, untimed, precision, batch_size)
        if found is not None:  # the table covers the space (checked above): only its drift is left
            found = check_drift(found, trained.space, DriftPolicy(mode=drift), progress)
        manifest = _export(trained, arch, staging, formats, precision, batch_size, opset, found, untimed, progress)
        if max_latency_error is not None:
            manifest["gate"] = latency_gate(manifest["latency"]["measured"], max_latency_error)
        for name in manifest["artifacts"]:
            os.chmod(staging / name, 0o644)
            os.replace(staging / name, out / name)
        manifest["out"] = str(out)
        atomic_write_json(out / MANIFEST, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _check_gate_possible(table: LatencyTable | None, untimed: str | None, precision: str, batch_size: int) -> None:
    """Refuse a latency gate that this export could not judge."""
    if untimed is not None:
        raise ExportError(f"--max-latency-error needs the model timed here, but it will not be: {untimed}")
    if table is None:
        raise ExportError(
            "--max-latency-error compares the measured latency with a prediction, and no latency table covers "
            "this space; pass --device or --table"
        )
    fp = table.fingerprint
    if (fp["precision"], int(fp["batch_size"])) != (precision, batch_size):
        raise ExportError(
            f"--max-latency-error compares with {table.name}, which predicts batch {fp['batch_size']} in "
            f"{fp['precision']}; export with --batch-size {fp['batch_size']} --precision {fp['precision']}"
        )


def latency_gate(measured: dict[str, Any], max_error_pct: float) -> dict[str, Any]:
    """Whether the measured latency is at most `max_error_pct` percent above the prediction."""
    over = float(measured["vs_predicted_pct"])
    passed = over <= max_error_pct
    reason = f"measured {measured['latency_ms']:.4g} ms is {over:+.1f}% vs the prediction, " + (
        f"within the {max_error_pct:g}% allowed"
        if passed
        else f"more than the {max_error_pct:g}% allowed: the table does not hold for this model here "
        f"(check `hwnas validate-table`, or re-profile)"
    )
    return {
        "max_latency_error_pct": max_error_pct,
        "measured_vs_predicted_pct": over,
        "passed": passed,
        "reason": reason,
    }


def _why_untimed(table: LatencyTable | None, measure: bool, formats: tuple[str, ...], precision: str) -> str | None:
    """Why the written model will not be timed here (None: it will be; without a table, model.onnx
    with onnxruntime on this CPU)."""
    if not measure:
        return "not asked for (--no-measure)"
    if table is None:
        if not {"onnx", "tensorrt"} & set(formats):
            return "no latency table covers this space, and no model.onnx was written to time on this CPU"
        if precision != "fp32":
            return f"no latency table covers this space, and {precision} is not timed on this CPU (pass --device)"
        return None
    why = why_not_here(table.fingerprint)
    if why:
        return f"this machine cannot run the setup of {table.name} ({why}); time model.onnx on the {table.device}"
    if table.fingerprint["backend"] != "torch" and not {"onnx", "tensorrt"} & set(formats):
        return "no model.onnx was written (add onnx to --formats)"
    return None


def _export(
    run: TrainedRun | FinetunedRun,
    arch: Arch,
    folder: Path,
    formats: tuple[str, ...],
    precision: str,
    batch_size: int,
    opset: int,
    table: LatencyTable | None,
    untimed: str | None,
    progress: bool,
) -> dict[str, Any]:
    supernet = run.supernet()
    fp32 = run.extract(arch, supernet).eval()
    model = fp32 if precision == "fp32" else copy.deepcopy(fp32).half()
    inputs = fresh_inputs(arch, batch_size)
    example = inputs[0].to(next(model.parameters()).dtype)
    checks: dict[str, Any] = {}
    if "onnx" in formats or "tensorrt" in formats:
        write_onnx(model, example, folder / FILES["onnx"], opset)
        checks["onnx"] = check_onnx(folder / FILES["onnx"], fp32, inputs, precision)
    if "pt2" in formats:
        write_pt2(model, example, folder / FILES["pt2"])
        checks["pt2"] = check_pt2(folder / FILES["pt2"], fp32, inputs, precision)
    if "safetensors" in formats:
        write_safetensors(fp32, arch, folder / FILES["safetensors"])
        checks["safetensors"] = check_safetensors(folder / FILES["safetensors"], fp32, inputs, "fp32")
    if "tensorrt" in formats:
        write_tensorrt(folder / FILES["onnx"], folder / FILES["tensorrt"])
        checks["tensorrt"] = check_tensorrt(folder / FILES["tensorrt"], fp32, inputs, precision)
    names = [FILES[f] for f in FORMATS if f in formats or (f == "onnx" and "tensorrt" in formats)]
    if "safetensors" in formats:
        names.append(CONFIG)
    skipped = (
        {}
        if "tensorrt" in formats
        else {
            "tensorrt": "not requested"
            + (f"; it could not be built here: {why}" if (why := tensorrt_unavailable()) else "")
        }
    )

    accuracy = {part: run.top1(arch, part, supernet) for part in ("search_val", "test")}
    latency: dict[str, Any] = {"predicted": None, "measured": None, "not_measured": untimed}
    if table is not None:
        predictor, keys = LatencyPredictor(table, arch.space), {b.key for b in arch.blocks()}
        latency["predicted"] = {
            "device": table.device,
            "table": table.name,
            "fingerprint": table.fingerprint,
            "calibration": predictor.calibration.to_dict(),
            "calibration_source": table.calibration_source(arch.space),
            "filled_rows": {k: e for k, e in table.filled_rows.items() if k in keys},
            "rows_here": [k for k in table.rows_here if k in keys],
            **predictor.predict(arch).to_dict(),
        }
    if untimed is None:
        onnx_file = folder / FILES["onnx"]
        measured = measure_model(
            model,
            onnx_file if onnx_file.is_file() else None,
            arch,
            table,
            precision,
            batch_size,
            folder / "measure",
            progress,
        )
        fp = table.fingerprint if table is not None else {}
        comparable = table is not None and (fp["precision"], int(fp["batch_size"])) == (precision, batch_size)
        predicted = latency["predicted"]["latency_ms"] if table is not None else None  # type: ignore[index]
        latency["measured"] = {
            **measured,
            "vs_predicted_pct": 100 * (measured["latency_ms"] / predicted - 1) if comparable else None,
            "comparable": comparable,
        }
        if table is None:
            latency["measured"]["note"] = "no latency table covers this space: nothing to compare with"
        elif not comparable:
            latency["measured"]["note"] = (
                f"the table predicts batch {fp['batch_size']} in {fp['precision']}; this "
                f"export runs batch {batch_size} in {precision}"
            )
    return {
        "arch": arch.to_dict(),
        "digest": arch.digest,
        "space": arch.space.key,
        "run": str(run.dir),
        "weights": "fine-tuned" if isinstance(run, FinetunedRun) else "inherited from the supernet",
        "precision": precision,
        "batch_size": batch_size,
        "input_shape": list(example.shape),
        "accuracy_top1": accuracy,
        "flops_g": arch.macs() / 1e9,
        "macs": arch.macs(),
        "params": arch.params(),
        "latency": latency,
        "checks": checks,
        "skipped": skipped,
        "artifacts": {
            name: {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size} for name in names
        },
        "versions": versions(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
