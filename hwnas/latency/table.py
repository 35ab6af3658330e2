"""Latency lookup tables: one CSV of block rows plus a JSON sidecar per measured setup.

A table belongs to one setup (device label, backend, precision, batch size, threads) and holds rows
for any number of spaces: identical blocks are one row. The sidecar records the setup's
fingerprint and, per space (`space.ref`, name@content digest), the calibration fitted on
end-to-end measured subnets.

Format 3 (this one) keys a row by its block key alone (`kind`, key, statistics): a block's fields
live in its key, so a new field or block kind never changes the columns; each row says whether it
was measured or fitted (`source`, `fit_error_pct`). Format 2 had no source (every row measured);
format 1 also spelled the fields of the first three kinds as columns and keyed calibrations by
space name. Both load as format 3 (`hwnas.migrate`) and are written as format 3 when saved.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwnas import migrate
from hwnas.errors import HwnasError, cli_message
from hwnas.io import atomic_write_bytes, atomic_write_json, package_data
from hwnas.profilers.protocol import STAT_COLUMNS
from hwnas.spaces import SearchSpace
from hwnas.spaces.blocks import BlockConfig

TABLE_FORMAT = 3
# A row is measured on the device, or fitted (`hwnas.latency.rowfit`) from the measured rows of its
# kind, with the fit's cross-validated error in percent (empty where too few rows to tell).
MEASURED, FITTED = "measured", "fit"
# A row the table lacked, measured on this machine and scaled to the table (`hwnas.latency.missing_rows`):
# in memory only, never in a table file.
HERE = "here"
COLUMNS = ("key", "kind", *STAT_COLUMNS, "source", "fit_error_pct")
REQUIRED = ("key", "kind", *STAT_COLUMNS)  # format 2 has no source: every row measured
LATENCY = "p50_ms"  # the statistic that predictions sum by default
# Statistics a budget may bound (`--latency-stat`): each predicted from its own rows and calibration.
STATISTICS = {"p50": "p50_ms", "p90": "p90_ms"}
TABLE_DIGITS = 6  # significant digits of the CSV's timings: the resolution of a table's predictions
# Fingerprint fields that move latency: the runtime and exporter versions, the processor, and how the
# models run. Any difference means the table's numbers may not hold (see `hwnas.latency.drift`).
LATENCY_FIELDS = (
    "backend_version",
    "torch",
    "opset",
    "cpu_model",
    "cpu_id",
    "cpu_isa",
    "gpu_model",
    "cuda",
    "threads",
    "precision",
    "batch_size",
    "cuda_graphs",
)
# Fields that make two measurements comparable enough to share a table; the rest (date, platform) is context.
SETUP_FIELDS = ("device", "backend", "protocol", *LATENCY_FIELDS)
SHIPPED_DIR = package_data(
    "hwnas.latency_tables"
)  # package data: the checkout's latency_tables/ in a development install
TABLES_ENV = "HWNAS_TABLES"


class TableError(HwnasError):
    """A missing, corrupted or mismatching latency table."""


def round_to_resolution(values: Any, digits: int = TABLE_DIGITS) -> np.ndarray:
    """`values` rounded to `digits` significant digits: sums of the same rows in another order
    differ in the last bit, which must not rank one arch above another."""
    v = np.asarray(values, dtype=float)
    scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(np.where(v == 0, 1.0, v)))))
    return np.round(v * scale) / scale


def profile_command(fingerprint: Mapping[str, Any], space: str, out: Path | None) -> str:
    """The `hwnas profile` command that adds rows for `space` to a table measured with `fingerprint`."""
    fp = fingerprint
    cmd = f"hwnas profile --device {fp.get('device', 'DEVICE')} --space {space}"
    if fp.get("backend"):
        cmd += f" --backend {fp['backend']}"
    for option, key, default in (
        ("--precision", "precision", "fp32"),
        ("--batch-size", "batch_size", 1),
        ("--threads", "threads", 1),
    ):
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
    # Spaces whose calibration was replaced in memory (a local calibration for this machine): what replaced it.
    calibration_sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Calibrations of the other statistics (p90_ms, ...): statistic -> space key -> fit of that
    # statistic's row sums to the calibration subnets' measured statistic.
    tail_calibrations: dict[str, dict[str, Calibration]] = field(default_factory=dict)

    # ---- construction and files --------------------------------------------------------------
    @classmethod
    def empty(cls, fingerprint: Mapping[str, Any]) -> LatencyTable:
        return cls(pd.DataFrame(columns=COLUMNS).astype({"source": str}).set_index("key"), dict(fingerprint))

    @staticmethod
    def sidecar_path(path: str | Path) -> Path:
        return Path(path).with_suffix(".json")

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        path = Path(path)
        side = cls.sidecar_path(path)
        rebuild = f"restore it or rebuild it with `hwnas profile --out {path} ...`"
        if not path.is_file():
            raise TableError(
                f"latency table {path} does not exist; build it with `hwnas profile --device ... --out {path}`"
            )
        if not side.is_file():
            raise TableError(f"latency table {path} has no sidecar {side.name} (its fingerprint); {rebuild}")
        try:
            meta = migrate.latency_table_sidecar(json.loads(side.read_text()))
            fingerprint = dict(meta["fingerprint"])
            calibrations = {k: Calibration.from_dict(v) for k, v in meta.get("calibration", {}).items()}
            tails = {
                stat: {k: Calibration.from_dict(v) for k, v in by_space.items()}
                for stat, by_space in meta.get("calibration_by_statistic", {}).items()
            }
            version = int(meta.get("format", 1))
        except (ValueError, KeyError, TypeError) as exc:
            raise TableError(f"latency table sidecar {side} is corrupted ({cli_message(exc)}); {rebuild}") from exc
        if version > TABLE_FORMAT:
            raise TableError(
                f"latency table {path} has format {version}, newer than this hwnas reads ({TABLE_FORMAT}); "
                f"upgrade hwnas (pip install -U hwnas)"
            )
        try:
            df = pd.read_csv(path, dtype={"key": str, "kind": str})
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise TableError(f"latency table {path} is corrupted ({str(exc).splitlines()[0]}); {rebuild}") from exc
        problem = cls._problem(df)
        if problem:
            raise TableError(f"latency table {path} is corrupted ({problem}); {rebuild}")
        df = migrate.latency_table_rows(df)
        return cls(df[list(COLUMNS)].set_index("key"), fingerprint, calibrations, path, tail_calibrations=tails)

    @staticmethod
    def _problem(df: pd.DataFrame) -> str | None:
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            return f"missing column {missing[0]!r}"
        if ("source" in df.columns) != ("fit_error_pct" in df.columns):
            return "one of the columns 'source' and 'fit_error_pct' without the other"
        if "source" in df.columns and not df["source"].isin([MEASURED, FITTED]).all():
            return f"a source other than {MEASURED!r} or {FITTED!r}"
        if (
            "fit_error_pct" in df.columns
            and pd.to_numeric(df["fit_error_pct"], errors="coerce").isna().gt(df["fit_error_pct"].isna()).any()
        ):
            return "a fit_error_pct that is not a number"
        numeric = [c for c in REQUIRED if c not in ("key", "kind")]
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
        if self.calibration_sources or (self.rows["source"] == HERE).any():
            raise TableError(
                f"latency table {self.name} carries local calibrations or rows measured here; "
                f"save the table as loaded, not a localized copy"
            )
        df = self.rows.reset_index()[list(COLUMNS)].sort_values("key")
        atomic_write_bytes(path, df.to_csv(index=False, float_format=f"%.{TABLE_DIGITS}g").encode())
        meta = {
            "format": TABLE_FORMAT,
            "fingerprint": self.fingerprint,
            "calibration": {k: c.to_dict() for k, c in sorted(self.calibrations.items())},
            "calibration_by_statistic": {
                stat: {k: c.to_dict() for k, c in sorted(by_space.items())}
                for stat, by_space in sorted(self.tail_calibrations.items())
            },
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
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

    def add_rows(
        self,
        blocks: Iterable[tuple[BlockConfig, Mapping[str, Any]]],
        errors: Mapping[str, float | None] | None = None,
        source: str | None = None,
    ) -> int:
        """Add measured rows (block, stats), or fitted ones with their fit's error (`errors`, by key);
        rows already in the table are kept, but a measured row replaces a fitted one. Returns the count added."""
        source, blocks = source or (MEASURED if errors is None else FITTED), list(blocks)
        if source == MEASURED:
            fitted = self.filled_rows
            self.rows = self.rows.drop(index=[b.key for b, _ in blocks if b.key in fitted])
        new = [
            {
                "key": b.key,
                "kind": b.kind,
                **{c: float(s[c]) for c in STAT_COLUMNS},
                "source": source,
                "fit_error_pct": np.nan if errors is None or errors[b.key] is None else float(errors[b.key]),
            }
            for b, s in blocks
            if b.key not in self.rows.index
        ]
        if new:
            df = pd.DataFrame(new, columns=COLUMNS).set_index("key")
            self.rows = df if self.rows.empty else pd.concat([self.rows, df])
        return len(new)

    def with_filled_rows(
        self, blocks: Iterable[tuple[BlockConfig, Mapping[str, Any]]], errors: Mapping[str, float | None]
    ) -> LatencyTable:
        """A copy with rows filled from a fit (in memory only), each with its fit's error in percent."""
        copy = replace(self, rows=self.rows.copy())
        copy.add_rows(blocks, errors)
        return copy

    def with_rows_here(self, blocks: Iterable[tuple[BlockConfig, Mapping[str, Any]]]) -> LatencyTable:
        """A copy with rows the table lacked as measured on this machine (in memory only)."""
        copy = replace(self, rows=self.rows.copy())
        copy.add_rows(blocks, source=HERE)
        return copy

    @property
    def rows_here(self) -> list[str]:
        """The rows measured on this machine for a table that lacked them (`with_rows_here`)."""
        return list(self.rows.index[self.rows["source"] == HERE])

    def replace_fitted(
        self, blocks: Iterable[tuple[BlockConfig, Mapping[str, Any]]], errors: Mapping[str, float | None]
    ) -> int:
        """Fit `blocks` again: their fitted rows (never measured ones, nor other spaces' rows) are
        replaced by these. Returns the count added."""
        blocks = list(blocks)
        refitted = {b.key for b, _ in blocks} & set(self.filled_rows)
        self.rows = self.rows.drop(index=list(refitted))
        return self.add_rows(blocks, errors)

    @property
    def filled_rows(self) -> dict[str, float | None]:
        """The fitted rows: key -> the fit's cross-validated error (%), None where too few rows to tell."""
        fitted = self.rows[self.rows["source"] == FITTED]["fit_error_pct"]
        return {k: None if pd.isna(e) else float(e) for k, e in fitted.items()}

    def measured_rows(self) -> pd.DataFrame:
        """The rows measured on the device (not fitted)."""
        return self.rows[self.rows["source"] == MEASURED]

    def expanded(self) -> pd.DataFrame:
        """The rows with every block field as a column, read from the keys (a field a block does not
        have reads as 0): for analysis across rows."""
        values = [dict(BlockConfig.from_key(k).values) for k in self.rows.index]
        return self.rows.join(pd.DataFrame(values, index=self.rows.index).fillna(0).astype(int))

    def missing(self, blocks: Iterable[BlockConfig]) -> list[BlockConfig]:
        return [b for b in dict.fromkeys(blocks) if b.key not in self.rows.index]

    def latencies(self, blocks: Sequence[BlockConfig], space_key: str, statistic: str = LATENCY) -> np.ndarray:
        """The row latency (ms, `statistic`) of each block, or an error naming the first missing one and the fix."""
        missing = self.missing(blocks)
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise TableError(
                f"latency table {self.name} has no row for block {missing[0].key}{more}; "
                f"profile it with `{profile_command(self.fingerprint, space_key, self.path)}`"
            )
        return self.rows.loc[[b.key for b in blocks], statistic].to_numpy(dtype=float)

    def calibration_key(self, space: SearchSpace) -> str | None:
        """Under which key this table calibrates `space`: its ref, the ref of the same content under
        another name, or (format 1) its bare name; None when the table does not cover it."""
        if space.ref in self.calibrations:
            return space.ref
        content = [k for k in self.calibrations if k.rpartition("@")[2] == space.digest[:8]]
        if content:
            return content[0]
        return space.key if space.key in self.calibrations else None

    def serving(self, space: SearchSpace, key: str) -> LatencyTable:
        """A copy (in memory) in which `space` takes the calibrations of `key` (all statistics)."""
        tails = {s: {**by, space.ref: by[key]} if key in by else by for s, by in self.tail_calibrations.items()}
        return replace(
            self, calibrations={**self.calibrations, space.ref: self.calibrations[key]}, tail_calibrations=tails
        )

    def head_variant_key(self, space: SearchSpace) -> str | None:
        """The calibration key of the shipped space `space` is with another class count, when the table
        calibrates that one: a head is one row of the sum (fitted where the table lacks it), so the
        end-to-end calibration of the same networks holds for it."""
        from hwnas.spaces import get_space, list_spaces

        spec = space.spec
        if spec.name not in list_spaces():
            return None
        base = get_space(spec.name)
        if base.ref not in self.calibrations or base.ref == space.ref:
            return None
        same = replace(base.spec, num_classes=spec.num_classes, overrides=spec.overrides) == spec
        return base.ref if same else None

    def rows_of_other_spaces(self, space: SearchSpace) -> set[str]:
        """The row keys of the other shipped spaces this table calibrates (a space given by a YAML
        file cannot be rebuilt from its key, and is not counted): a row they share with `space` is
        in their calibrations' sums."""
        from hwnas.spaces import get_space, list_spaces

        shipped, keys = set(list_spaces()), set()
        for ref in self.calibrations:
            name = ref.rpartition("@")[0]
            if ref != space.ref and name in shipped and get_space(name).ref == ref:
                keys |= {b.key for b in get_space(name).block_configs()}
        return keys

    def covers(self, space: SearchSpace) -> bool:
        return self.calibration_key(space) is not None

    def calibration(self, space: SearchSpace, statistic: str = LATENCY) -> Calibration:
        key = self.calibration_key(space)
        if key is None:
            profiled = ", ".join(self.calibrations) or "no space"
            raise TableError(
                f"latency table {self.name} was profiled for {profiled}, not {space.ref}; "
                f"run `{profile_command(self.fingerprint, space.key, self.path)}`"
            )
        if statistic == LATENCY:
            return self.calibrations[key]
        if self.calibration_sources.get(key, {}).get("refit"):
            raise TableError(
                f"latency table {self.name} holds on this machine for {space.key} only through a local "
                f"refit of its p50 calibration, which says nothing of {statistic}; re-profile here "
                f"(`{profile_command(self.fingerprint, space.key, None)} --out NEW.csv`) or pass --drift ignore"
            )
        tail = self.tail_calibrations.get(statistic, {})
        if key not in tail:
            raise TableError(
                f"latency table {self.name} has no {statistic} calibration for {space.key} (profiled "
                f"before tail statistics were calibrated); on the setup that measured it, measure its "
                f"calibration subnets again with `{profile_command(self.fingerprint, space.key, self.path)}`"
            )
        return tail[key]

    def missing_statistics(self, space: SearchSpace) -> list[str]:
        """The statistics besides p50 that this table covers `space` for without a calibration."""
        key = self.calibration_key(space)
        return [s for s in STATISTICS.values() if s != LATENCY and key not in self.tail_calibrations.get(s, {})]

    def calibration_source(self, space: SearchSpace) -> dict[str, Any] | None:
        """What replaced the table's own calibration of `space` in memory (a local calibration), if anything."""
        return self.calibration_sources.get(self.calibration_key(space) or space.ref)

    def set_calibration(self, space: SearchSpace, calibration: Calibration, statistic: str = LATENCY) -> None:
        key = self.calibration_key(space) or space.ref
        if statistic == LATENCY:
            self.calibrations[key] = calibration
        else:
            self.tail_calibrations.setdefault(statistic, {})[key] = calibration

    def with_calibration(self, space: SearchSpace, calibration: Calibration, source: Mapping[str, Any]) -> LatencyTable:
        """A copy whose calibration for `space` is replaced (in memory only) and says by what."""
        key = self.calibration_key(space) or space.ref
        return replace(
            self,
            calibrations={**self.calibrations, key: calibration},
            calibration_sources={**self.calibration_sources, key: dict(source)},
        )

    # ---- setup checks -------------------------------------------------------------------------
    def setup_differences(self, here: Mapping[str, Any], fields: Sequence[str] = SETUP_FIELDS) -> list[str]:
        """`fields` where the fingerprint `here` differs from this table's, as 'field: table a, here b'."""

        def show(value: Any) -> str:
            return "not recorded" if value is None else repr(value)

        return [
            f"{k}: table {show(self.fingerprint.get(k))}, here {show(here.get(k))}"
            for k in fields
            if k in here and self.fingerprint.get(k) != here.get(k)
        ]


# ---- finding tables --------------------------------------------------------------------------
def table_filename(device: str, backend: str, precision: str, batch_size: int, threads: int | None) -> str:
    thread_part = f"_t{threads}" if threads else ""
    return f"{device}_{backend}_{precision}_bs{batch_size}{thread_part}.csv"


def table_dirs() -> list[Path]:
    """Where `--device` looks for tables, first match wins: $HWNAS_TABLES, ./latency_tables, shipped."""
    return list(_labelled_dirs())


def _labelled_dirs() -> dict[Path, str]:
    """The table folders in search order, each with where it comes from."""
    dirs = [(Path(p), f"${TABLES_ENV}") for p in os.environ.get(TABLES_ENV, "").split(os.pathsep) if p]
    dirs += [(Path("latency_tables"), "./latency_tables"), (SHIPPED_DIR, "shipped")]
    unique: dict[Path, tuple[Path, str]] = {}
    for d, label in dirs:
        resolved = d.resolve()
        unique.setdefault(resolved, (d, "shipped" if resolved == SHIPPED_DIR.resolve() else label))
    return dict(unique.values())


def table_files() -> list[tuple[str, Path]]:
    """Every table CSV in `table_dirs()`, with where it was found ($HWNAS_TABLES, ./latency_tables, shipped)."""
    return [
        (label, path)
        for folder, label in _labelled_dirs().items()
        for path in sorted(folder.glob("*.csv"))
        if not path.name.startswith(".")
    ]


def find_table(device: str, space: SearchSpace | None = None) -> LatencyTable:
    """The one table for `device` in `table_dirs()`, or a clear error. With `space`, several
    tables for the device narrow to those calibrated for that space."""
    for folder in table_dirs():
        candidates = [
            LatencyTable.load(c) for c in sorted({*folder.glob(f"{device}.csv"), *folder.glob(f"{device}_*.csv")})
        ]
        if len(candidates) > 1 and space is not None:
            candidates = [c for c in candidates if c.covers(space)] or candidates
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            names = ", ".join(c.name for c in candidates)
            raise TableError(f"several latency tables for device {device!r} ({names}); choose one with --table")
    where = ", ".join(str(d) for d in table_dirs())
    raise TableError(
        f"no latency table for device {device!r} in {where}; build one with "
        f"`hwnas profile --device {device} --space SPACE` or pass --table"
    )


def stats_from_row(row: Mapping[str, Any]) -> dict[str, float]:
    return {c: float(row[c]) for c in STAT_COLUMNS}


def fingerprint_summary(fp: Mapping[str, Any]) -> str:
    hw = fp.get("gpu_model") or fp.get("cpu_model") or "?"
    threads = f", {fp['threads']} thread(s)" if fp.get("threads") else ""
    return f"{fp.get('device')} ({hw}{threads}), {fp.get('backend')} {fp.get('backend_version')}, {fp.get('precision')}, batch {fp.get('batch_size')}"
