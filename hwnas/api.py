"""The Python API: one function per stage, keyword arguments named as the CLI's options.

    import hwnas
    run = hwnas.train("autoformer-digits", "runs/digits")
    result = hwnas.search("runs/digits", latency_ms=0.8, device="cpu")
    report = hwnas.export("runs/digits", result.best, "export/")
    model = hwnas.load_model("export/")

The `hwnas` command calls these same functions and prints their reports. Every function writes
its results atomically into the folder it is given and resumes where a killed call stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwnas.deploy.exporter import export as _export
from hwnas.deploy.load import load_model
from hwnas.errors import HwnasError
from hwnas.profilers.protocol import Protocol
from hwnas.reports import DevicePrediction, ExportReport, FinetuneReport, PredictReport, ProfileReport, TrainReport
from hwnas.spaces import Arch, SearchSpace, get_space
from hwnas.subnet_search.runner import SearchResult, search

__all__ = ["SearchResult", "export", "finetune", "load_model", "predict", "profile", "search", "train"]

PathLike = str | Path


def _fitted_among(table: Any, keys: Sequence[str]) -> dict[str, float | None]:
    """The table's fitted rows among `keys`, with their fits' errors."""
    filled = table.filled_rows
    return {k: filled[k] for k in dict.fromkeys(keys) if k in filled}


def _space(space: str | Path | SearchSpace) -> SearchSpace:
    return space if isinstance(space, SearchSpace) else get_space(space)


def train(
    space: str | Path,
    out: PathLike,
    *,
    data: str = "digits",
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    sampling: str | None = None,
    archs_per_batch: int = 2,
    shared_draws: bool | None = None,
    alike_share: float | None = None,
    warmup_choices: bool | None = None,
    weight_sharing: str = "prefix",
    aug: str = "weak",
    hflip: float | None = None,
    img_size: int | None = None,
    search_val: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> TrainReport:
    """Train the weight-sharing supernet of `space` (a shipped space's name or a YAML path) into the run folder `out`.

    Options left at None take the budget of the data's size and the space's family (printed before
    the first epoch). A checkpoint is written every epoch; `resume=True` continues exactly. Under
    `torchrun`, data-parallel over the processes (only rank 0 writes; `rank` says which one this is).

    Example:
        ```python
        # not run in the tests: trains for minutes on a CPU
        import hwnas
        run = hwnas.train("autoformer-digits", "runs/digits")
        print(run.search_val_top1)  # {"largest": ..., "smallest": ...}
        ```
    """
    from hwnas.training import TrainConfig
    from hwnas.training import train as train_run

    config = TrainConfig(
        space=str(space),
        data=data,
        img_size=img_size,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        sampling=sampling,
        archs_per_batch=archs_per_batch,
        shared_draws=shared_draws,
        alike_share=alike_share,
        warmup_choices=warmup_choices,
        weight_sharing=weight_sharing,
        aug=aug,
        hflip=hflip,
        search_val=search_val,
        seed=seed,
        workers=workers,
    )
    return TrainReport.from_dict(train_run(config, Path(out), resume=resume, progress=progress))


def finetune(
    run: PathLike,
    arch: Arch | PathLike | dict[str, Any],
    out: PathLike,
    *,
    epochs: int | None = None,
    lr: float | None = None,
    distill: bool = False,
    from_scratch: bool = False,
    resume: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> FinetuneReport:
    """Train subnet `arch` of the supernet in `run` alone, from its inherited weights (or `from_scratch`).

    `arch` is an `Arch`, its dict, an arch JSON or a search's best.json. Defaults: a quarter of the
    supernet's epochs at a quarter of its learning rate. `export(out, ...)` then exports the
    fine-tuned weights.

    Example:
        ```python
        # not run in the tests: needs a trained run and a search
        import hwnas
        report = hwnas.finetune("runs/digits", "runs/digits/search/best.json", "runs/digits-ft")  # search --out runs/digits/search
        print(report.before["test"]["top1"], report.after["test"]["top1"])
        ```
    """
    from hwnas.training import TrainedRun
    from hwnas.training.finetune import FinetuneConfig
    from hwnas.training.finetune import finetune as finetune_run

    if not isinstance(arch, (Arch, dict)):
        arch = Arch.from_json(Path(arch), TrainedRun(run).space)
    arch_dict = arch.to_dict() if isinstance(arch, Arch) else arch
    config = FinetuneConfig(
        run=str(run), arch=arch_dict, epochs=epochs, lr=lr, distill=distill, from_scratch=from_scratch, seed=seed
    )
    return FinetuneReport.from_dict(finetune_run(config, out, resume=resume, progress=progress))


def profile(
    space: str | Path | SearchSpace,
    device: str,
    *,
    backend: str | None = None,
    precision: str = "fp32",
    batch_size: int = 1,
    threads: int = 1,
    out: PathLike | None = None,
    export_blocks: PathLike | None = None,
    calibration_archs: int = 12,
    cuda_graphs: bool = False,
    quick: bool = False,
    budget_min: float | None = None,
    from_table: PathLike | None = None,
    progress: bool = True,
) -> ProfileReport:
    """Measure every block configuration of `space` on this machine into the latency table of `device`.

    Rows are saved as they finish and a rerun resumes; blocks already measured in the table (from
    any space) are not measured again, fitted ones are. With `budget_min`, only what fits in that many minutes is measured (the
    calibration subnets, then a sample of rows spread over each block kind's costs) and the other
    rows are fitted per kind, each stored with its fit's cross-validated error. With `from_table`
    (a table of the space measured on another device), a few rows per kind measured here fit
    per-kind factors from that table's rows. With `export_blocks`, nothing is measured: the blocks
    are written as ONNX models with a manifest for `profilers/*.py` on a target that cannot run hwnas.

    Example:
        ```python
        # not run in the tests: takes minutes (quick=True: seconds, rough numbers)
        import hwnas
        report = hwnas.profile("autoformer-digits", "cpu", out="latency_tables/cpu_mine.csv")
        print(report.blocks_measured, report.calibration)
        ```
    """
    import time

    from hwnas.latency.profile import ProfileSettings, export_bundle, profile_space

    space = _space(space)
    settings = ProfileSettings(
        device=device,
        backend=backend,
        precision=precision,
        batch_size=batch_size,
        threads=threads,
        calibration_archs=calibration_archs,
        cuda_graphs=cuda_graphs,
        protocol=Protocol.quick() if quick else None,
    )
    if export_blocks is not None and (budget_min is not None or from_table is not None):
        raise HwnasError("--export-blocks writes every block for a target; it excludes --budget-min and --from")
    if export_blocks is not None:
        folder = export_bundle(space, settings, Path(export_blocks), progress=progress)
        _, used = settings.resolve()
        script = f"ort_profile.py {folder} --threads {threads}" if used == "onnxruntime" else f"trt_profile.py {folder}"
        return ProfileReport(
            space=space.key,
            device=device,
            backend=used,
            bundle=folder,
            next=[f"python profilers/{script} --device {device}", f"hwnas import-table {folder} --device {device}"],
        )
    from hwnas.latency.table import LatencyTable

    start = time.perf_counter()
    source = LatencyTable.load(from_table) if from_table is not None else None
    summary = profile_space(space, settings, Path(out) if out is not None else None, progress, budget_min, source)
    return ProfileReport.from_dict({**summary, "seconds": round(time.perf_counter() - start, 1)})


def predict(
    arch: Arch | PathLike,
    device: str | Sequence[str] = (),
    *,
    table: PathLike | Sequence[PathLike] = (),
    space: str | Path | None = None,
    latency_stat: str = "p50",
    drift: str = "refit",
    progress: bool = False,
) -> PredictReport:
    """Predict the latency of `arch` (an `Arch` or an arch JSON file) on one device or several.

    Each device's table (found by label, or given as `table`) sums the arch's block rows and
    applies its calibration for the space; `latency_stat` p90 predicts the tail. `space` is the
    YAML of a user space whose arch file is given. `drift` says what to do when this machine runs
    a table's setup differently: refit, fail or ignore.

    Example:
        ```python
        import hwnas
        arch = hwnas.get_space("autoformer-digits").smallest()
        report = hwnas.predict(arch, "cpu", drift="ignore")
        print(f"{report.latency_ms:.3f} ms")
        ```
    """
    from hwnas.latency.predict import LatencyPredictor
    from hwnas.latency.resolve import resolve_tables
    from hwnas.latency.table import STATISTICS, TableError, fingerprint_summary

    if latency_stat not in STATISTICS:
        raise TableError(f"unknown latency statistic {latency_stat!r}; use {' or '.join(STATISTICS)}")
    devices = [device] if isinstance(device, str) else list(device)
    tables = [table] if isinstance(table, (str, Path)) else list(table)
    if not devices and not tables:
        raise TableError("name the latency table to predict with: --device LABEL (repeatable) or --table PATH")
    if not isinstance(arch, Arch):
        arch = Arch.from_json(Path(arch), get_space(space) if space else None)
    found = resolve_tables(arch.space, devices=devices, tables=tables, drift=drift, progress=progress)
    statistic = STATISTICS[latency_stat]
    rows = []
    for t in found:
        p = LatencyPredictor(t, arch.space, statistic).predict(arch).to_dict()
        rows.append(
            DevicePrediction(
                device=t.device,
                table=t.name,
                setup=fingerprint_summary(t.fingerprint),
                latency_ms=p["latency_ms"],
                statistic=p["statistic"],
                sum_ms=p["sum_ms"],
                blocks=p["blocks"],
                calibration=t.calibration(arch.space, statistic).to_dict(),
                calibration_source=t.calibration_source(arch.space),
                filled_rows=_fitted_among(t, [b["key"] for b in p["blocks"]]),
                rows_here=[k for k in dict.fromkeys(b["key"] for b in p["blocks"]) if k in t.rows_here],
            )
        )
    return PredictReport(arch=arch.to_dict(), devices=rows)


def export(
    run: PathLike,
    arch: Arch | PathLike,
    out: PathLike,
    *,
    formats: str | Sequence[str] = "onnx,pt2,safetensors",
    precision: str = "fp32",
    batch_size: int = 1,
    opset: int = 20,
    device: str | None = None,
    table: PathLike | None = None,
    measure: bool = True,
    max_latency_error: float | None = None,
    drift: str = "refit",
    progress: bool = True,
) -> ExportReport:
    """Export subnet `arch` of the run (a `hwnas train` or `hwnas finetune` folder) as deployable artifacts.

    Every artifact is loaded back and compared with PyTorch before it is moved into `out`, beside a
    manifest.json. Latency is predicted from the table of `device` (default: the CPU table, when one
    covers the space) and, unless `measure=False` (`--no-measure`), the written model is timed here.
    With `max_latency_error` (percent) the report's `passed` says whether the measured latency kept
    within that much above the prediction.

    Example:
        ```python
        # not run in the tests: needs a trained run
        import hwnas
        report = hwnas.export("runs/digits", "runs/digits/search/best.json", "export/", formats="onnx,safetensors")
        model = hwnas.load_model("export/")
        ```
    """
    manifest = _export(
        run,
        arch,
        out,
        formats,
        precision,
        batch_size,
        device,
        table,
        opset=opset,
        measure=measure,
        drift=drift,
        progress=progress,
        max_latency_error=max_latency_error,
    )
    return ExportReport.from_dict(manifest)
