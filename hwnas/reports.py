"""What each stage of the Python API returns: a dataclass per stage, with `to_dict()` for JSON.

The CLI prints these same objects (`--json` prints `to_dict()`), so a script and a shell user see
the same fields. Paths are `pathlib.Path` here and strings in `to_dict()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "DevicePrediction",
    "ExportReport",
    "FinetuneReport",
    "PredictReport",
    "ProfileReport",
    "Report",
    "SearchReport",
    "TrainReport",
]


def _plain(value: Any) -> Any:
    """`value` with Paths as strings, recursively (what `json.dumps` takes)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Report:
    """Shared `to_dict` / `from_dict` of the report dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        """The report from `to_dict()` output (a stage's JSON); keys it does not know are ignored,
        and fields typed as paths get `Path`s back."""
        paths = {f.name for f in fields(cls) if str(f.type).startswith("Path")}  # type: ignore[arg-type]
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: Path(v) if k in paths and v is not None else v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class TrainReport(Report):
    """A supernet training run: its folder, settings and last epoch's figures."""

    run: Path  # the run folder (checkpoint, weights, split, metrics)
    space: str
    config: dict[str, Any]  # the settings used, defaults filled in (the run's config.json)
    epochs_run: int  # epochs this call trained (fewer than the budget when it resumed)
    processes: int  # torchrun processes (1 without torchrun)
    rank: int  # this process's rank: only rank 0 writes and reports
    final: dict[str, float] | None  # the last epoch's metrics row (loss, search-val top-1 per probe subnet)
    metrics: Path  # metrics.csv
    plot: Path  # the learning-curve PNG

    @property
    def search_val_top1(self) -> dict[str, float]:
        """Search-val top-1 (%) of the probe subnets (largest, smallest, ...) after the last epoch."""
        return {k.removeprefix("val_top1_"): v for k, v in (self.final or {}).items() if k.startswith("val_top1_")}


@dataclass(frozen=True)
class FinetuneReport(Report):
    """A fine-tuned subnet: top-1 before and after, and where its weights are.

    On torchrun ranks other than 0 only `out`, `rank` and `processes` are set."""

    out: Path  # the fine-tuning folder; `hwnas export --run OUT` exports its weights
    rank: int
    processes: int
    run: Path | None = None  # the supernet's run folder
    arch: dict[str, Any] | None = None
    digest: str | None = None
    config: dict[str, Any] | None = None
    epochs_run: int | None = None
    before: dict[str, Any] | None = None  # {"search_val": {"top1": ...}, "test": {...}} with inherited weights
    after: dict[str, Any] | None = None  # the same after fine-tuning
    metrics: Path | None = None
    plot: Path | None = None


@dataclass(frozen=True)
class ProfileReport(Report):
    """What `profile` measured into a table, or the block bundle it wrote for a device elsewhere."""

    space: str
    device: str
    backend: str
    table: Path | None = None  # the table CSV (None when only a bundle was written)
    blocks_in_space: int = 0
    blocks_measured: int = 0
    calibration_subnets: int = 0
    calibrated_statistics: list[str] = field(default_factory=list)
    up_to_date: bool = False  # the table already had every block and calibration: nothing measured
    calibration: dict[str, Any] | None = None  # measured = a x sum of rows + b (ms)
    seconds: float | None = None
    bundle: Path | None = None  # with `export_blocks`: the folder of ONNX blocks for the target
    next: list[str] = field(default_factory=list)  # with `export_blocks`: the commands that finish the table
    blocks_fitted: int | None = None  # with a budget or a source table: rows fitted, not measured
    fit_error_pct: dict[str, float | None] | None = None  # per block kind: the fit's cross-validated error
    from_table: str | None = None  # the table measured elsewhere that the fits started from

    def to_dict(self) -> dict[str, Any]:
        """A bundle's fields, or a measurement's (`calibration` only when something was measured)."""
        d = super().to_dict()
        if self.bundle is not None:
            return {k: d[k] for k in ("bundle", "space", "device", "backend", "next")}
        sampled = ("blocks_fitted", "fit_error_pct", "from_table")
        return {
            k: v
            for k, v in d.items()
            if k not in ("bundle", "next") and not (k in ("calibration", *sampled) and v is None)
        }


@dataclass(frozen=True)
class DevicePrediction(Report):
    """One device's prediction of an arch's latency, with its breakdown and calibration."""

    device: str
    table: str
    setup: str  # what the table was measured on: device, processor, backend, precision, batch
    latency_ms: float  # calibrated: what the arch is expected to take end to end
    statistic: str  # p50_ms or p90_ms
    sum_ms: float  # plain sum of the block rows
    blocks: list[dict[str, Any]]  # [{"key", "latency_ms"}] in network order
    calibration: dict[str, Any]
    calibration_source: dict[str, Any] | None  # a local calibration of this setup, if one is used
    filled_rows: dict[str, float | None] = field(
        default_factory=dict
    )  # rows the table lacked, fitted: key -> error (%)
    rows_here: list[str] = field(default_factory=list)  # rows the table lacked, measured on this machine


@dataclass(frozen=True)
class PredictReport(Report):
    """An arch's predicted latency on one device or several."""

    arch: dict[str, Any]
    devices: list[DevicePrediction]

    @property
    def latency_ms(self) -> float:
        """The first device's predicted latency (ms)."""
        return self.devices[0].latency_ms

    def to_dict(self) -> dict[str, Any]:
        """One device: its prediction at the top level; several: a list under "devices"."""
        rows = [d.to_dict() for d in self.devices]
        return {"arch": self.arch, **rows[0]} if len(rows) == 1 else {"arch": self.arch, "devices": rows}


@dataclass(frozen=True)
class ExportReport(Report):
    """An export: the manifest.json written beside the artifacts."""

    out: Path
    arch: dict[str, Any]
    digest: str
    space: str
    run: str
    weights: str  # "inherited from the supernet" or "fine-tuned"
    precision: str
    batch_size: int
    input_shape: list[int]
    accuracy_top1: dict[str, float]  # search_val and test
    flops_g: float
    macs: int
    params: int
    latency: dict[str, Any]  # predicted (from the table), measured (here), not_measured (why not)
    checks: dict[str, Any]  # per format: max |diff| against PyTorch
    skipped: dict[str, str]
    artifacts: dict[str, Any]  # file name -> sha256, bytes
    versions: dict[str, str]
    cuda: str | None
    gate: dict[str, Any] | None = None  # with `max_latency_error`: passed and why

    @property
    def passed(self) -> bool:
        """False only when a latency gate was asked for and the measured latency failed it."""
        return self.gate is None or bool(self.gate["passed"])

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if d["gate"] is None:  # the manifest has a gate only when one was asked for
            del d["gate"]
        return d


@dataclass(frozen=True)
class SearchReport(Report):
    """best.json: the most accurate subnet found within the budget, what it was predicted with and
    how the search ran. On torchrun ranks other than 0 only `rank` is set; the fields a search does
    not produce (`per_budget` without several budgets, `measured_*` without `measure`) stay None
    and are left out of `to_dict()`."""

    rank: int = 0
    arch: dict[str, Any] | None = None
    digest: str | None = None
    space: str | None = None
    top1_search_val: float | None = None
    loss_search_val: float | None = None
    top1_test: float | None = None
    predicted_latency: dict[str, Any] | None = None  # on the first (primary) device
    predicted_latency_by_device: dict[str, Any] = field(default_factory=dict)
    flops_g: float | None = None  # GMACs
    macs: int | None = None
    params: int | None = None
    params_m: float | None = None
    budget: dict[str, Any] = field(default_factory=dict)  # per metric: limit and the space's min and max
    budget_binds: bool | None = None  # False: every arch met the budget (the largest was returned)
    table: dict[str, Any] | None = None  # the first device's table: path, fingerprint, calibration
    tables_by_device: dict[str, Any] = field(default_factory=dict)
    latency_stat: str | None = None
    strategy: str | None = None
    preset: str | None = None  # the search preset: default, or a family's (paper)
    min_fraction: float | None = None  # the lower window: every evaluated arch within min_fraction..1 x the budget
    seed: int | None = None
    settings: dict[str, Any] | None = None
    evaluations: int | None = None
    generations_run: int | None = None
    run: Path | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float | None = None
    processes: int | None = None
    per_budget: list[dict[str, Any]] | None = None  # nsga2 with several budgets: each one's winner
    measured_latency_ms: float | None = None  # with `measure`: timed here on the first device
    measured_over_budget_pct: float | None = None
    measured_by_device: dict[str, Any] | None = None
    outputs: dict[str, str] | None = None  # the files written (best.json, history.csv, ...)

    OPTIONAL = (
        "per_budget",
        "measured_latency_ms",
        "measured_over_budget_pct",
        "measured_by_device",
        "outputs",
        "min_fraction",
    )

    def to_dict(self) -> dict[str, Any]:
        if self.arch is None and self.rank != 0:
            return {"rank": self.rank}
        return {k: v for k, v in super().to_dict().items() if not (k in self.OPTIONAL and v is None)}
