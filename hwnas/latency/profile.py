"""`hwnas profile`: measure every block of a space (and calibration subnets) into a latency table.

The flow is the same on every backend: plan the models the table lacks, measure them in a work
folder beside the table (rows reach the table after every group, so a killed run loses at most
one group and resumes there), then fit the space's calibration on the measured subnets.
ONNX backends go through a bundle and the very profilers a device runs (`profilers/`).
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

from hwnas.errors import HwnasError, HwnasNotice
from hwnas.latency.bundle import BLOCK, NETWORK, OPSET, Plan, block_plans, network_plans, write_bundle
from hwnas.latency.calibration_subnets import calibration_archs
from hwnas.latency.device import (
    ONNXRUNTIME,
    PRECISIONS,
    TENSORRT,
    TORCH,
    Device,
    check_local_gpu,
    choose_backend,
    parse_device,
)
from hwnas.latency.sampled import profile_sampled, refit
from hwnas.latency.table import (
    STATISTICS,
    Calibration,
    LatencyTable,
    TableError,
    profile_command,
    stats_from_row,
    table_filename,
)
from hwnas.profilers import ort_profile
from hwnas.profilers.protocol import (
    FINGERPRINT,
    MEASUREMENTS,
    Entry,
    Protocol,
    measure_entries,
    read_manifest,
    read_measurements,
    text_progress,
)
from hwnas.spaces import SearchSpace, get_space, space_from_dict
from hwnas.spaces.blocks import BlockConfig


@dataclass(frozen=True)
class ProfileSettings:
    """How a table is measured; everything here is recorded in its fingerprint."""

    device: str = "cpu"
    backend: str | None = None  # None: the device's default
    precision: str = "fp32"
    batch_size: int = 1
    threads: int = 1  # CPU backends only
    calibration_archs: int = 12
    cuda_graphs: bool = False  # torch backend only
    protocol: Protocol | None = field(default_factory=Protocol)  # None: the existing table's (see `adding_to`)

    def resolve(self) -> tuple[Device, str]:
        if self.precision not in PRECISIONS:
            raise HwnasError(f"unknown precision {self.precision!r}; use {' or '.join(PRECISIONS)}")
        if self.batch_size < 1 or self.threads < 1:
            what = "--batch-size" if self.batch_size < 1 else "--threads"
            raise HwnasError(f"{what} must be at least 1")
        if self.calibration_archs < 1:
            raise HwnasError("--calibration-archs must be at least 1: the table's calibration needs measured subnets")
        device = parse_device(self.device)
        return device, choose_backend(device, self.backend, self.precision)

    @classmethod
    def of_table(cls, fingerprint: dict[str, Any]) -> ProfileSettings:
        """The settings a table was measured with, its timing protocol included (to measure more,
        or whole networks, the way the table was measured)."""
        protocol = Protocol.from_dict(fingerprint["protocol"]) if fingerprint.get("protocol") else Protocol()
        return cls(
            device=fingerprint["device"],
            backend=fingerprint["backend"],
            precision=fingerprint["precision"],
            batch_size=int(fingerprint["batch_size"]),
            threads=int(fingerprint.get("threads") or 1),
            cuda_graphs=bool(fingerprint.get("cuda_graphs", False)),
            protocol=protocol,
        )

    def adding_to(self, path: Path) -> ProfileSettings:
        """These settings, with the timing protocol of the table at `path` when none is set: rows
        added to a table are timed as its other rows were (a new table gets the default protocol)."""
        if self.protocol is not None:
            return self
        return replace(
            self, protocol=self.of_table(LatencyTable.load(path).fingerprint).protocol if path.exists() else Protocol()
        )

    def model_info(self, backend: str) -> dict[str, Any]:
        """How the measured models are made and run (heads a bundle's manifest; part of a fingerprint)."""
        return {
            "device": self.device,
            "backend": backend,
            "precision": self.precision,
            "batch_size": self.batch_size,
            "threads": self.threads if backend == ONNXRUNTIME else None,
            "exporter": "torch.onnx dynamo",
            "torch": torch.__version__,
            "hwnas": version("hwnas"),
        }

    def bundle_info(self, space: SearchSpace, backend: str) -> dict[str, Any]:
        return {"space": space.key, "space_spec": space.spec.to_dict(), **self.model_info(backend)}


def default_table_path(settings: ProfileSettings, backend: str) -> Path:
    threads = settings.threads if backend == ONNXRUNTIME else None
    return Path("latency_tables") / table_filename(
        settings.device, backend, settings.precision, settings.batch_size, threads
    )


def plans_for(
    space: SearchSpace, settings: ProfileSettings, blocks: Sequence[BlockConfig], calibrate: bool
) -> list[Plan]:
    plans = block_plans(blocks, settings.batch_size, settings.precision)
    if calibrate:
        archs = calibration_archs(space, settings.calibration_archs)
        plans += network_plans(archs, settings.batch_size, settings.precision)
    return plans


def export_bundle(space: SearchSpace, settings: ProfileSettings, folder: Path, progress: bool = True) -> Path:
    """Write every block of `space` plus the calibration subnets as ONNX for a device to measure."""
    device, backend = settings.resolve()
    if backend == TORCH:
        raise HwnasError(
            "--export-blocks writes ONNX for onnxruntime or tensorrt; pick --backend tensorrt for a GPU target"
        )
    plans = plans_for(space, settings, space.block_configs(), calibrate=True)
    return write_bundle(folder, plans, settings.bundle_info(space, backend), progress)


def measured_fingerprint(profiler_fp: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """A table's fingerprint: the measuring machine and runtime plus how the models were made."""
    keep = ("precision", "batch_size", "exporter", "torch", "hwnas")
    return {
        **profiler_fp,
        **{k: info[k] for k in keep if k in info},
        "opset": OPSET,
        "created": profiler_fp.get("date") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def merge_measurements(
    table: LatencyTable,
    entries: Sequence[Entry],
    rows: Sequence[dict[str, Any]],
    space: SearchSpace,
    statistics: Sequence[str] = tuple(STATISTICS.values()),
) -> int:
    """Add the measured block rows to the table; once every calibration subnet is measured (and its
    blocks are rows), fit the space's calibration of each of `statistics` (the sum of that
    statistic's rows against the subnets' measured statistic). Returns the number of rows added."""
    by_file = {r["file"]: r for r in rows}
    blocks = [(BlockConfig.from_key(e.key), by_file[e.file]) for e in entries if e.kind == BLOCK and e.file in by_file]
    added = table.add_rows((b, stats_from_row(r)) for b, r in blocks)
    networks = [e for e in entries if e.kind == NETWORK]
    if statistics and networks and all(e.file in by_file for e in networks):
        for e in networks:
            missing = [k for k in e.blocks if k not in table]
            if missing:
                raise TableError(
                    f"calibration subnet {e.key} uses block {missing[0]}, which the bundle did not measure"
                )
        for statistic in statistics:
            sums = [float(table.rows.loc[list(e.blocks), statistic].sum()) for e in networks]
            table.set_calibration(
                space, Calibration.fit(sums, [float(by_file[e.file][statistic]) for e in networks]), statistic
            )
    return added


def _profile_sampled(
    space: SearchSpace,
    settings: ProfileSettings,
    table: LatencyTable,
    path: Path,
    backend: str,
    info: dict[str, Any],
    progress: bool,
    budget_min: float | None,
    source: LatencyTable | None,
    max_rows: int | None,
) -> dict[str, Any]:
    """`profile_space` on a sample of the rows: see `hwnas.latency.sampled`."""
    if budget_min is not None and not budget_min > 0:
        raise HwnasError(f"--budget-min must be a positive number of minutes, got {budget_min}")
    _check_source(source, space)
    summary = _summary(path, space, settings.device, backend)
    measured = table.measured_rows().index
    if table.covers(space) and all(b.key in measured for b in space.block_configs()):
        return {
            **summary,
            "blocks_measured": 0,
            "calibration_subnets": 0,
            "calibrated_statistics": [],
            "up_to_date": True,
        }
    work = _work_folder(path, space)
    shutil.rmtree(work, ignore_errors=True)  # rows of a killed run are in the table; timings must be this run's
    calibration = plans_for(space, settings, [], calibrate=True)

    def measure(plans: Sequence[Plan], name: str, show: bool) -> list[dict[str, Any]]:
        entries = [p.entry for p in plans]

        def on_rows(rows: list[dict[str, Any]]) -> None:
            merge_measurements(table, entries, rows, space, statistics=())  # rows only: calibrated at the end
            table.save(path)

        label = f"profile {space.key}: {name}" if progress and show else None
        rows = measure_plans(plans, backend, settings, work / name.replace(" ", "-"), info, label, on_rows=on_rows)
        on_rows(rows)
        return rows

    result = profile_sampled(
        space,
        table,
        calibration,
        lambda blocks: block_plans(blocks, settings.batch_size, settings.precision),
        measure,
        None if budget_min is None else 60 * budget_min,
        source,
        max_rows,
        frozenset(table.rows_of_other_spaces(space)),
    )
    calibration = calibration[: result["calibration_subnets"]]  # a tight budget measures fewer
    merge_measurements(table, [p.entry for p in calibration], result.pop("measured"), space)
    table.save(path)
    shutil.rmtree(work, ignore_errors=True)
    return {
        **summary,
        "blocks_measured": result["rows_measured"],
        "blocks_fitted": result["rows_fitted"],
        "fit_error_pct": result["fit_error_pct"],
        "from_table": source.name if source is not None else None,
        "calibration_subnets": len(calibration),
        "calibrated_statistics": list(STATISTICS.values()),
        "up_to_date": False,
        "calibration": table.calibration(space).to_dict(),
    }


def _summary(path: Path | None, space: SearchSpace, device: str, backend: str) -> dict[str, Any]:
    """What every profile summary starts with."""
    return {
        "table": str(path),
        "space": space.key,
        "device": device,
        "backend": backend,
        "blocks_in_space": len(space.block_configs()),
    }


def _check_source(source: LatencyTable | None, space: SearchSpace) -> None:
    """A `--from` table must hold every row of `space` (a fitted one is said, not refused)."""
    if source is None:
        return
    if not source.covers(space) or source.missing(space.block_configs()):
        raise TableError(f"--from table {source.name} does not cover {space.key}; give a table profiled for it")
    blocks = {b.key for b in space.block_configs()}
    fitted = blocks & set(source.filled_rows)
    if fitted:
        warnings.warn(
            f"--from table {source.name} has {len(fitted)} of {len(blocks)} rows of {space.key} fitted, not "
            f"measured: they serve as the basis of the per-kind factors all the same, with their own fit error",
            HwnasNotice,
            stacklevel=4,
        )


def refit_space(space: SearchSpace, table: LatencyTable, source: LatencyTable | None = None) -> dict[str, Any]:
    """`hwnas profile --refit`: `space`'s fitted rows and calibration fitted again, in place, on what
    `table` holds (`hwnas.latency.sampled.refit`; with `source`, on that table's rows, as `--from`
    fits them); nothing is measured. A table that fitted no row of the space is left as it is."""
    if not table.covers(space):
        raise TableError(
            f"latency table {table.name} does not calibrate {space.key}, so it has nothing of it to refit; "
            f"profile it with `{profile_command(table.fingerprint, space.key, table.path)}`"
        )
    _check_source(source, space)
    summary = {
        **_summary(table.path, space, table.device, table.fingerprint["backend"]),
        "from_table": source.name if source is not None else None,
    }
    fitted = table.filled_rows
    if not any(b.key in fitted for b in space.block_configs()):
        return {**summary, "rows_refitted": 0, "up_to_date": True}
    result = refit(table, space, source, frozenset(table.rows_of_other_spaces(space)))
    table.save()
    return {**summary, **result, "up_to_date": False}


def setup_here(settings: ProfileSettings, backend: str) -> dict[str, Any]:
    """The fingerprint a table measured on this machine with `settings` would record."""
    return measured_fingerprint(local_fingerprint(backend, settings), settings.model_info(backend))


def open_table(path: Path, fingerprint: dict[str, Any]) -> LatencyTable:
    """The table at `path` to add to (new if absent); refused when measured on another setup,
    since mixing two machines' rows in one table would be silently wrong."""
    if not path.exists():
        return LatencyTable.empty(fingerprint)
    table = LatencyTable.load(path)
    diffs = table.setup_differences(fingerprint)
    if diffs:
        raise TableError(
            f"{path} was measured on another setup ({'; '.join(diffs)}); write this one elsewhere with --out NEW.csv"
        )
    return table


def _work_folder(table_path: Path, space: SearchSpace) -> Path:
    return table_path.with_name(f".{table_path.stem}.{re.sub(r'[^A-Za-z0-9_.-]', '_', space.ref)}.work")


def profile_space(
    space: SearchSpace,
    settings: ProfileSettings,
    out: Path | None = None,
    progress: bool = True,
    budget_min: float | None = None,
    source: LatencyTable | None = None,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """Measure what the table at `out` lacks for `space` on this machine; returns a summary. With
    `budget_min` (minutes), `max_rows` or `source` (a table of the space from another device), only
    a sample of the rows is measured and the rest fitted (`hwnas.latency.sampled`)."""
    device, backend = settings.resolve()
    if device.is_gpu:
        check_local_gpu(device)
    path = out or default_table_path(settings, backend)
    settings = settings.adding_to(path)
    info = settings.bundle_info(space, backend)
    table = open_table(path, setup_here(settings, backend))
    if budget_min is not None or source is not None or max_rows is not None:
        return _profile_sampled(space, settings, table, path, backend, info, progress, budget_min, source, max_rows)
    filled = table.filled_rows
    fitted = list(dict.fromkeys(b for b in space.block_configs() if b.key in filled))  # a full profile measures them
    blocks = table.missing(space.block_configs()) + fitted
    # a new space, or fitted rows measured now: every statistic's calibration; a covered one profiled
    # before tail statistics: theirs
    fresh = not table.covers(space) or fitted
    statistics = list(STATISTICS.values()) if fresh else table.missing_statistics(space)
    calibrate = bool(statistics)
    summary = {
        **_summary(path, space, settings.device, backend),
        "blocks_measured": len(blocks),
        "calibration_subnets": settings.calibration_archs if calibrate else 0,
        "calibrated_statistics": statistics,
    }
    if not blocks and not calibrate:
        return {**summary, "up_to_date": True}
    work = _work_folder(path, space)
    plans = plans_for(space, settings, blocks, calibrate)
    entries = [p.entry for p in plans]

    def on_rows(rows: list[dict[str, Any]]) -> None:
        merge_measurements(table, entries, rows, space, statistics)
        table.save(path)

    rows = measure_plans(
        plans, backend, settings, work, info, f"profile {space.key}" if progress else None, on_rows=on_rows
    )
    on_rows(rows)
    shutil.rmtree(work, ignore_errors=True)
    return {**summary, "up_to_date": False, "calibration": table.calibration(space).to_dict()}


def local_fingerprint(backend: str, settings: ProfileSettings) -> dict[str, Any]:
    if backend == ONNXRUNTIME:
        return ort_profile.fingerprint(settings.device, settings.threads, settings.protocol)
    if backend == TENSORRT:
        from hwnas.profilers import trt_profile

        return trt_profile.fingerprint(settings.device, settings.protocol)
    from hwnas.latency import torch_cuda

    return torch_cuda.fingerprint(settings.device, settings.cuda_graphs, settings.protocol)


def measure_plans(
    plans: Sequence[Plan],
    backend: str,
    settings: ProfileSettings,
    work: Path,
    info: dict[str, Any],
    progress: str | None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Measure `plans` on this machine with `backend`, resuming from `work` (the ONNX backends
    export a bundle there and run the device-side profiler on it). `kwargs`: on_rows, out."""
    kwargs["progress"] = text_progress(progress) if progress else None
    if backend == TORCH:
        from hwnas.latency import torch_cuda

        loader = torch_cuda.loader({p.entry.file: p for p in plans}, settings.protocol, settings.cuda_graphs)
        work.mkdir(parents=True, exist_ok=True)
        entries = [p.entry for p in plans]
        return measure_entries(work, entries, loader, settings.protocol, release=torch_cuda.release, **kwargs)
    write_bundle(work, plans, info, progress is not None)
    if backend == ONNXRUNTIME:
        return ort_profile.measure(work, settings.device, settings.threads, settings.protocol, **kwargs)
    from hwnas.profilers import trt_profile

    return trt_profile.measure(work, settings.device, settings.protocol, **kwargs)


def import_bundle(folder: Path, device: str | None = None, out: Path | None = None) -> tuple[LatencyTable, int]:
    """Turn a bundle measured on a device (`profilers/*.py`) into a table (or add to one)."""
    manifest, entries = read_manifest(folder)
    rows = read_measurements(folder / MEASUREMENTS)
    fp_path = folder / FINGERPRINT
    if not rows or not fp_path.is_file():
        raise TableError(
            f"bundle {folder} has not been measured yet; run profilers/ort_profile.py or "
            f"profilers/trt_profile.py on it on the target, then import it"
        )
    unmeasured = [e.file for e in entries if e.file not in rows]
    if unmeasured:
        raise TableError(
            f"bundle {folder} lacks measurements for {unmeasured[0]} (and {len(unmeasured) - 1} more); "
            f"rerun the profiler on it (it resumes)"
        )
    profiler_fp = json.loads(fp_path.read_text())
    label = profiler_fp.get("device")
    if device and label and device != label:
        raise TableError(f"bundle {folder} was measured as device {label!r}, not {device!r}; pass --device {label}")
    profiler_fp["device"] = device or label or manifest.get("device")
    parse_device(profiler_fp["device"])
    fingerprint = measured_fingerprint(profiler_fp, manifest)
    path = out or default_table_path(ProfileSettings.of_table(fingerprint), fingerprint["backend"])
    table = open_table(path, fingerprint)
    space = space_from_dict(manifest["space_spec"]) if "space_spec" in manifest else get_space(manifest["space"])
    added = merge_measurements(table, entries, list(rows.values()), space)
    table.save(path)
    return table, added
