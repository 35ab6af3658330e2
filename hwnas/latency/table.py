"""Latency lookup tables: one CSV of block rows plus a JSON sidecar per measured setup.

A table belongs to one setup (device label, backend, precision, batch size, threads) and holds rows
for any number of spaces: identical blocks are one row. The sidecar records the setup's
fingerprint and, per space, the calibration fitted on end-to-end measured subnets.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwnas.errors import HwnasError, HwnasWarning
from hwnas.io import atomic_write_bytes, atomic_write_json
from hwnas.profilers.protocol import STAT_COLUMNS, cpu_model
from hwnas.spaces.blocks import BlockConfig

TABLE_FORMAT = 1
BLOCK_COLUMNS = tuple(f.name for f in fields(BlockConfig))
COLUMNS = ("key", *BLOCK_COLUMNS, *STAT_COLUMNS)
LATENCY = "p50_ms"  # the statistic that predictions sum
# Fingerprint fields that make two measurements comparable; the rest (date, platform) is context.
SETUP_FIELDS = ("device", "backend", "backend_version", "precision", "batch_size", "threads", "cpu_model", "gpu_model",
                "cuda_graphs", "protocol")
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "latency_tables"  # present in a source checkout
TABLES_ENV = "HWNAS_TABLES"


class TableError(HwnasError):
    """A missing, corrupted or mismatching latency table."""


class SetupMismatchWarning(HwnasWarning):
    """A table used on (or merged with) a setup other than the one it was measured on."""


def profile_command(fingerprint: Mapping[str, Any], space: str, out: Path | None) -> str:
    """The `hwnas profile` command that adds rows for `space` to a table measured with `fingerprint`."""
    fp = fingerprint
    cmd = f"hwnas profile --device {fp.get('device', 'DEVICE')} --space {space}"
    if fp.get("backend"):
        cmd += f" --backend {fp['backend']}"
    for option, key, default in (("--precision", "precision", "fp32"), ("--batch-size", "batch_size", 1),
                                 ("--threads", "threads", 1)):
        if fp.get(key) not in (None, default):
            cmd += f" {option} {fp[key]}"
    return cmd + (f" --out {out}" if out else "")


@dataclass(frozen=True)
class Calibration:
    """measured ~= a * (sum of block rows) + b, fitted on end-to-end measured subnets."""

    a: float
    b: float
    n: int
    points: tuple[tuple[float, float], ...] = ()  # (sum of rows, measured) per calibration subnet

    def __call__(self, total_ms: Any) -> Any:
        return self.a * total_ms + self.b

    @classmethod
    def fit(cls, sums: Sequence[float], measured: Sequence[float]) -> Calibration:
        """Least squares; with fewer than 3 points or a degenerate fit, a pure scale (b = 0)."""
        x, y = np.asarray(sums, dtype=float), np.asarray(measured, dtype=float)
        if x.size == 0:
            raise TableError("calibration needs at least one measured subnet")
        a, b = float(y.sum() / x.sum()), 0.0
        if x.size >= 3 and np.ptp(x) > 0:
            a2, b2 = np.polyfit(x, y, 1)
            if a2 > 0:
                a, b = float(a2), float(b2)
        return cls(a, b, int(x.size), tuple(zip(x.tolist(), y.tolist())))

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "n": self.n, "points": [list(p) for p in self.points]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        return cls(float(d["a"]), float(d["b"]), int(d["n"]), tuple(tuple(p) for p in d.get("points", ())))


@dataclass
class LatencyTable:
    """Block rows (a DataFrame indexed by block key) and the sidecar metadata."""

    rows: pd.DataFrame
    fingerprint: dict[str, Any]
    calibrations: dict[str, Calibration] = field(default_factory=dict)
    path: Path | None = None

    # ---- construction and files --------------------------------------------------------------
    @classmethod
    def empty(cls, fingerprint: Mapping[str, Any]) -> LatencyTable:
        return cls(pd.DataFrame(columns=COLUMNS).set_index("key"), dict(fingerprint))

    @staticmethod
    def sidecar_path(path: str | Path) -> Path:
        return Path(path).with_suffix(".json")

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        path = Path(path)
        side = cls.sidecar_path(path)
        rebuild = f"restore it or rebuild it with `hwnas profile --out {path} ...`"
        if not path.is_file():
            raise TableError(f"latency table {path} does not exist; build it with `hwnas profile --device ... --out {path}`")
        if not side.is_file():
            raise TableError(f"latency table {path} has no sidecar {side.name} (its fingerprint); {rebuild}")
        try:
            meta = json.loads(side.read_text())
            fingerprint = dict(meta["fingerprint"])
            calibrations = {k: Calibration.from_dict(v) for k, v in meta.get("calibration", {}).items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise TableError(f"latency table sidecar {side} is corrupted ({exc}); {rebuild}") from exc
        try:
            df = pd.read_csv(path, dtype={"key": str, "kind": str})
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise TableError(f"latency table {path} is corrupted ({str(exc).splitlines()[0]}); {rebuild}") from exc
        problem = cls._problem(df)
        if problem:
            raise TableError(f"latency table {path} is corrupted ({problem}); {rebuild}")
        return cls(df.set_index("key"), fingerprint, calibrations, path)

    @staticmethod
    def _problem(df: pd.DataFrame) -> str | None:
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            return f"missing column {missing[0]!r}"
        numeric = [c for c in COLUMNS if c not in ("key", "kind")]
        values = df[numeric].apply(pd.to_numeric, errors="coerce")
        bad = values.isna().any(axis=1) | df["key"].isna()
        if bad.any():
            return f"row {int(np.flatnonzero(bad.to_numpy())[0]) + 2} has a missing or non-numeric value"
        if (values[LATENCY] <= 0).any():
            return f"a {LATENCY} value is not positive"
        if df["key"].duplicated().any():
            return f"block {df['key'][df['key'].duplicated()].iloc[0]!r} appears twice"
        return None

    def save(self, path: str | Path | None = None) -> Path:
        """Write the CSV and then the sidecar, each atomically."""
        path = Path(path or self.path or "")
        if not path.name:
            raise TableError("no path to save the latency table to")
        df = self.rows.reset_index()[list(COLUMNS)].sort_values("key")
        atomic_write_bytes(path, df.to_csv(index=False, float_format="%.6g").encode())
        meta = {"format": TABLE_FORMAT, "fingerprint": self.fingerprint,
                "calibration": {k: c.to_dict() for k, c in sorted(self.calibrations.items())},
                "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        atomic_write_json(self.sidecar_path(path), meta)
        self.path = path
        return path

    # ---- content -----------------------------------------------------------------------------
    @property
    def device(self) -> str:
        return str(self.fingerprint.get("device", "?"))

    @property
    def name(self) -> str:
        return str(self.path) if self.path else f"<{self.device} table>"

    def __contains__(self, key: str) -> bool:
        return key in self.rows.index

    def __len__(self) -> int:
        return len(self.rows)

    def add_rows(self, blocks: Iterable[tuple[BlockConfig, Mapping[str, Any]]]) -> int:
        """Add measured rows (block, stats); rows already in the table are kept. Returns the count added."""
        new = [{"key": b.key, **b.to_dict(), **{c: float(s[c]) for c in STAT_COLUMNS}} for b, s in blocks
               if b.key not in self.rows.index]
        if new:
            df = pd.DataFrame(new, columns=COLUMNS).set_index("key")
            self.rows = df if self.rows.empty else pd.concat([self.rows, df])
        return len(new)

    def missing(self, blocks: Iterable[BlockConfig]) -> list[BlockConfig]:
        return [b for b in dict.fromkeys(blocks) if b.key not in self.rows.index]

    def latencies(self, blocks: Sequence[BlockConfig], space_key: str) -> np.ndarray:
        """The row latency (ms) of each block, or an error naming the first missing one and the fix."""
        missing = self.missing(blocks)
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise TableError(
                f"latency table {self.name} has no row for block {missing[0].key}{more}; "
                f"profile it with `{profile_command(self.fingerprint, space_key, self.path)}`"
            )
        return self.rows.loc[[b.key for b in blocks], LATENCY].to_numpy(dtype=float)

    def calibration(self, space_key: str) -> Calibration:
        if space_key not in self.calibrations:
            profiled = ", ".join(self.calibrations) or "no space"
            raise TableError(
                f"latency table {self.name} was profiled for {profiled}, not {space_key}; "
                f"run `{profile_command(self.fingerprint, space_key, self.path)}`"
            )
        return self.calibrations[space_key]

    # ---- setup checks -------------------------------------------------------------------------
    def setup_differences(self, other: Mapping[str, Any], ignore: Sequence[str] = ()) -> list[str]:
        """Setup fields where `other` (a fingerprint) differs from this table's, as 'field: a here, b there'."""
        return [f"{k}: {self.fingerprint.get(k)!r} here, {other.get(k)!r} there" for k in SETUP_FIELDS
                if k in other and k not in ignore and self.fingerprint.get(k) != other.get(k)]

    def warn_if_setup_differs(self, current: Mapping[str, Any], doing: str, ignore: Sequence[str] = ()) -> None:
        diffs = self.setup_differences(current, ignore)
        if diffs:
            warnings.warn(f"{doing} with latency table {self.name}, measured on another setup ({'; '.join(diffs)}); "
                          f"its numbers may not hold here", SetupMismatchWarning, stacklevel=2)


# ---- finding tables --------------------------------------------------------------------------
def table_filename(device: str, backend: str, precision: str, batch_size: int, threads: int | None) -> str:
    thread_part = f"_t{threads}" if threads else ""
    return f"{device}_{backend}_{precision}_bs{batch_size}{thread_part}.csv"


def table_dirs() -> list[Path]:
    """Where `--device` looks for tables, first match wins: $HWNAS_TABLES, ./latency_tables, shipped."""
    dirs = [Path(p) for p in os.environ.get(TABLES_ENV, "").split(os.pathsep) if p]
    dirs += [Path("latency_tables"), SHIPPED_DIR]
    unique: dict[Path, Path] = {}
    for d in dirs:
        unique.setdefault(d.resolve(), d)
    return list(unique.values())


def find_table(device: str, table: str | Path | None = None, space_key: str | None = None) -> LatencyTable:
    """The table given, or the one table for `device` in `table_dirs()`; a clear error otherwise.
    With `space_key`, several tables for the device narrow to those calibrated for that space."""
    if table is not None:
        found = LatencyTable.load(table)
        if found.device != device:
            warnings.warn(f"latency table {table} was measured for device {found.device!r}, not {device!r}",
                          SetupMismatchWarning, stacklevel=2)
        return _warn_if_generic_cpu_elsewhere(found)
    for folder in table_dirs():
        candidates = [LatencyTable.load(c) for c in sorted({*folder.glob(f"{device}.csv"), *folder.glob(f"{device}_*.csv")})]
        if len(candidates) > 1 and space_key is not None:
            candidates = [c for c in candidates if space_key in c.calibrations] or candidates
        if len(candidates) == 1:
            return _warn_if_generic_cpu_elsewhere(candidates[0])
        if len(candidates) > 1:
            names = ", ".join(c.name for c in candidates)
            raise TableError(f"several latency tables for device {device!r} ({names}); choose one with --table")
    where = ", ".join(str(d) for d in table_dirs())
    raise TableError(f"no latency table for device {device!r} in {where}; build one with "
                     f"`hwnas profile --device {device} --space SPACE` or pass --table")


def _warn_if_generic_cpu_elsewhere(table: LatencyTable) -> LatencyTable:
    """The label `cpu` reads as "this machine": say so when the table's CPU is another one
    (`cpu-<name>` labels name a target on purpose and are not checked)."""
    theirs, ours = table.fingerprint.get("cpu_model"), cpu_model()
    if table.device == "cpu" and theirs != ours:
        warnings.warn(f"latency table {table.name} was measured on CPU {theirs!r}, not this machine's {ours!r}; its "
                      f"numbers describe that CPU (profile yours with `hwnas profile --device cpu-<name> ...`)",
                      SetupMismatchWarning, stacklevel=3)
    return table


def stats_from_row(row: Mapping[str, Any]) -> dict[str, float]:
    return {c: float(row[c]) for c in STAT_COLUMNS}


def fingerprint_summary(fp: Mapping[str, Any]) -> str:
    hw = fp.get("gpu_model") or fp.get("cpu_model") or "?"
    threads = f", {fp['threads']} thread(s)" if fp.get("threads") else ""
    return f"{fp.get('device')} ({hw}{threads}), {fp.get('backend')} {fp.get('backend_version')}, {fp.get('precision')}, batch {fp.get('batch_size')}"

