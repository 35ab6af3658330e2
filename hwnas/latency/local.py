"""Local calibrations: a table's calibration refitted for the setup of the machine that uses it.

A table is measured once, on one setup, and used under other runtime versions and on other
processors. A local calibration maps the table's rows to what *this* setup measures end to end,
with the evidence (a spot check or a recalibration). It lives beside the table in
`<table>.local.json`, or in `$HWNAS_CALIBRATION_DIR` when set, or in `~/.cache/hwnas/calibrations`
for the shipped tables (package data: never written beside) and tables in read-only folders, keyed by space
and by a digest of this setup's latency fields, and it records a digest of the table's rows and
calibration for that space: it is reused only by the same setup on the same table, and the table
file itself is never rewritten. The same file keeps the rows a table lacked (another class count's
head) as measured on this setup (`hwnas.latency.missing_rows`).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasWarning
from hwnas.io import atomic_write_json
from hwnas.latency.table import LATENCY_FIELDS, SHIPPED_DIR, Calibration, LatencyTable
from hwnas.spaces import SearchSpace

CALIBRATION_DIR_ENV = "HWNAS_CALIBRATION_DIR"
LOCAL_FORMAT = 1


class LocalCalibrationWarning(HwnasWarning):
    """A local calibration file that cannot be trusted or written."""


def user_calibration_dir() -> Path:
    """Where local calibrations of the shipped tables and of tables in read-only folders go."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hwnas" / "calibrations"


def writable_beside(table_path: Path) -> bool:
    """Whether a local calibration may sit beside the table: not a shipped one (in a wheel install it
    lies in site-packages), and only in a writable folder."""
    folder = table_path.resolve().parent
    return folder != SHIPPED_DIR.resolve() and os.access(folder, os.W_OK)


def setup_key(setup: Mapping[str, Any]) -> str:
    """A digest of the fields of a fingerprint that move latency."""
    text = json.dumps({k: setup.get(k) for k in LATENCY_FIELDS}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def table_digest(table: LatencyTable, space: SearchSpace) -> str:
    """A digest of what the table predicts `space` from: its rows, its own calibration and its setup."""
    rows = table.latencies(space.block_configs(), space.key)
    meta = json.dumps(
        {
            "calibration": table.calibration(space).to_dict(),
            "setup": {k: table.fingerprint.get(k) for k in LATENCY_FIELDS},
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(rows.tobytes() + meta.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LocalCalibration:
    """What predictions of one space use on one setup, and why."""

    space: str
    setup: dict[str, Any]  # this machine's latency fields
    table_digest: str
    calibration: Calibration
    how: str  # "spot check" or "recalibration"
    drift_pct: float  # median of measured / predicted by the table, minus 1, in percent
    refit: bool  # False: the table held within tolerance and keeps its own calibration
    uneven: bool  # the rows drifted unevenly: a refit cannot make the table hold; re-profile
    created: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.space, setup_key(self.setup)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "calibration": self.calibration.to_dict(), "setup_key": setup_key(self.setup)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LocalCalibration:
        return cls(
            space=str(d["space"]),
            setup=dict(d["setup"]),
            table_digest=str(d["table_digest"]),
            calibration=Calibration.from_dict(d["calibration"]),
            how=str(d["how"]),
            drift_pct=float(d["drift_pct"]),
            refit=bool(d["refit"]),
            uneven=bool(d["uneven"]),
            created=str(d["created"]),
            evidence=dict(d.get("evidence", {})),
        )


class LocalCalibrations:
    """The local calibrations of one table file."""

    def __init__(self, table_path: Path):
        self.table_path = Path(table_path)
        folder = os.environ.get(CALIBRATION_DIR_ENV) or (
            None if writable_beside(self.table_path) else user_calibration_dir()
        )
        if folder:  # one folder for all tables: name the file after the table's full path
            tag = hashlib.sha256(str(self.table_path.resolve()).encode()).hexdigest()[:8]
            self.path = Path(folder) / f"{self.table_path.stem}-{tag}.local.json"
        else:
            self.path = self.table_path.with_suffix(".local.json")

    def _read(self) -> dict[tuple[str, str], LocalCalibration]:
        """Every entry of the file; a corrupted file counts as empty (with a warning): it is never trusted."""
        return {e.key: e for e in self._load()[0]}

    def _load(self) -> tuple[list[LocalCalibration], list[dict[str, Any]]]:
        """The file's calibrations and the rows measured here (`rows_for`); both empty where it is
        missing or corrupted (with a warning)."""
        if not self.path.is_file():
            return [], []
        try:
            data = json.loads(self.path.read_text())
            if data.get("format") != LOCAL_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, this hwnas reads {LOCAL_FORMAT}")
            entries = [LocalCalibration.from_dict(e) for e in data["entries"]]
            rows = [dict(r) for r in data.get("rows", [])]
            if any(not isinstance(r.get("stats"), dict) or "key" not in r or "setup_key" not in r for r in rows):
                raise ValueError("a row without key, setup_key or stats")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            warnings.warn(
                f"local calibration file {self.path} is corrupted ({exc}); ignored: this setup is measured "
                f"again and the file rewritten",
                LocalCalibrationWarning,
                stacklevel=4,
            )
            return [], []
        return entries, rows

    def find(self, space: SearchSpace, setup: Mapping[str, Any], digest: str) -> LocalCalibration | None:
        """The calibration stored for `space` on this setup, if it was made for this very table."""
        entry = self._read().get((space.ref, setup_key(setup)))
        if entry is not None and entry.table_digest != digest:
            warnings.warn(
                f"local calibration of {space.key} in {self.path} was made for another table than "
                f"{self.table_path} (or before it changed); ignored: this setup is measured again",
                LocalCalibrationWarning,
                stacklevel=3,
            )
            return None
        return entry

    def for_setup(self, setup: Mapping[str, Any]) -> list[LocalCalibration]:
        """Every space's entry for this setup (whether each still matches its table is checked on use)."""
        key = setup_key(setup)
        return [e for (_, k), e in sorted(self._read().items()) if k == key]

    def store(self, entry: LocalCalibration) -> Path | None:
        """Add or replace `entry` (atomically); None, with a warning, where the file cannot be written."""
        entries, rows = self._load()
        kept = {e.key: e for e in entries}
        kept[entry.key] = entry
        return self._write(list(kept.values()), rows)

    def rows_for(self, setup: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """The rows the table lacked that were measured on this setup: key -> {"stats", "anchor",
        "anchor_ms", "table_created", ...} (`hwnas.latency.missing_rows`)."""
        key = setup_key(setup)
        return {r["key"]: r for r in self._load()[1] if r["setup_key"] == key}

    def store_rows(self, setup: Mapping[str, Any], rows: Mapping[str, Mapping[str, Any]]) -> Path | None:
        """Add or replace rows measured on this setup (atomically); None, with a warning, where the
        file cannot be written."""
        entries, kept = self._load()
        key = setup_key(setup)
        kept = [r for r in kept if (r["setup_key"], r["key"]) not in {(key, k) for k in rows}]
        kept += [{**dict(r), "key": k, "setup_key": key} for k, r in rows.items()]
        return self._write(entries, kept)

    def _write(self, entries: list[LocalCalibration], rows: list[dict[str, Any]]) -> Path | None:
        data = {
            "format": LOCAL_FORMAT,
            "table": str(self.table_path),
            "entries": [e.to_dict() for e in sorted(entries, key=lambda e: e.key)],
            "rows": sorted(rows, key=lambda r: (r["setup_key"], r["key"])),
        }
        try:
            return atomic_write_json(self.path, data)
        except OSError as exc:
            warnings.warn(
                f"could not store the local calibration in {self.path} ({exc.strerror}); it is measured again "
                f"next time: set {CALIBRATION_DIR_ENV} to a writable folder",
                LocalCalibrationWarning,
                stacklevel=4,
            )
            return None


def direction(drift_pct: float) -> str:
    """A drift in words: '44.0% below'."""
    return f"{abs(drift_pct):.1f}% {'below' if drift_pct < 0 else 'above'}"


def describe_outcome(entry: Mapping[str, Any]) -> str:
    """What a local calibration (`LocalCalibration.to_dict()` or a table's calibration source) found,
    in words: 'spot check of 2026-11-23: measured 44.0% below the table, refitted'."""
    found = f"{entry['how']} of {str(entry['created'])[:10]}: measured {direction(entry['drift_pct'])} the table"
    if entry["uneven"]:
        return found + ", rows drifted unevenly (refitted; re-profile)"
    return found + (", refitted" if entry["refit"] else ", held")
