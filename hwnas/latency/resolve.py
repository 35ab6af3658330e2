"""Which latency table predicts a space on a device, as that table holds on this machine.

One resolution for `predict`, `validate-table`, `search`, `export`, `demo` and `profile --recalibrate`:
1. the table: the file `--table` (refused when it was measured for another device than
   `--device`), or the one table of the device label in `$HWNAS_TABLES`, `./latency_tables` or the
   shipped tables (several narrow to those calibrated for the space);
2. it must cover the space: the space has a calibration (its own, or that of the same shipped space
   with another class count) and every block a row; rows it lacks (another class count's head) are
   measured here where this machine runs the table's setup (`hwnas.latency.missing_rows`), else
   filled from a per-kind fit in memory (`hwnas.latency.rowfit`), and said;
3. it is checked for drift on this machine (`hwnas.latency.drift`).
Where no device or table is named, `export` and `demo` use `optional_table` (the CPU table when
one covers the space, else none) with the same rules.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasNotice
from hwnas.latency.device import parse_device
from hwnas.latency.drift import DriftPolicy, check_drift
from hwnas.latency.local import LocalCalibrations, describe_outcome
from hwnas.latency.measure import setup_of, why_not_here
from hwnas.latency.missing_rows import measure_missing
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.rowfit import fill_missing
from hwnas.latency.table import (
    LATENCY_FIELDS,
    LatencyTable,
    TableError,
    find_table,
    fingerprint_summary,
    profile_command,
    table_files,
)
from hwnas.spaces import SearchSpace


def select_table(device: str | None, table: str | Path | None, space: SearchSpace) -> LatencyTable:
    """The table file given, or the one found for the device label (preferring one calibrated for the space)."""
    label = parse_device(device).label if device else None
    if table is None:
        if label is None:
            raise TableError("name the latency table to predict with: --device LABEL or --table PATH")
        return find_table(label, space)
    found = LatencyTable.load(table)
    if label and found.device != label:
        raise TableError(
            f"latency table {table} was measured on device {found.device!r}, not {label!r}; "
            f"pass --device {found.device} or that device's table"
        )
    return found


class FilledRowsNotice(HwnasNotice):
    """A table's missing rows were filled from a fit for this prediction."""


def complete(table: LatencyTable, space: SearchSpace, progress: bool = True) -> LatencyTable:
    """`table` ready to predict `space` when it calibrates it (or the same space with another class
    count): the rows it lacks, such as another class count's head, measured here where this machine
    runs the table's setup (`hwnas.latency.missing_rows`, kept in its local file), else filled from a
    per-kind fit in memory, and said once. A table that does not calibrate the space is returned as
    it is (the predictor then names the profile command)."""
    variant = table.head_variant_key(space) if table.calibration_key(space) is None else None
    if table.calibration_key(space) is None and variant is None:
        return table
    if variant is not None:
        table = table.serving(space, variant)
    through = f"; its calibration of {variant} serves {space.key}" if variant else ""
    missing = table.missing(space.block_configs())
    here = measure_missing(table, space, missing, progress) if missing else None
    if here is not None:
        table, rows = here
        if rows.keys:
            kept = f"kept in {rows.stored}" if rows.stored else "not kept (the table has no file)"
            how = (
                f"measured here in {rows.seconds:.0f} s" if rows.measured else "measured here before"
            ) + f", scaled to the table by its nearest row of the same kind, {kept}"
            warnings.warn(
                f"latency table {table.name} has no row for {len(rows.keys)} block(s) of {space.key}: "
                f"{_listed(rows.keys)} {how}{through}",
                FilledRowsNotice,
                stacklevel=3,
            )
    filled = fill_missing(table, space.block_configs())
    new = {k: e for k, e in filled.filled_rows.items() if k not in table.filled_rows}
    if new:
        errors = [
            f"{k} ({f'cross-validated error {e:.1f}%' if e is not None else 'too few rows to cross-validate'})"
            for k, e in new.items()
        ]
        warnings.warn(
            f"latency table {table.name} has no row for {len(new)} block(s) of {space.key}: filled from a fit on "
            f"its rows of the same kind: {_listed(errors)}{through}; for measured rows, "
            f"`{profile_command(table.fingerprint, space.key, table.path)}`",
            FilledRowsNotice,
            stacklevel=3,
        )
    return filled


def _listed(items: Sequence[str], shown: int = 2) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def resolve_table(
    space: SearchSpace,
    *,
    device: str | None = None,
    table: str | Path | LatencyTable | None = None,
    drift: str | DriftPolicy = "refit",
    progress: bool = True,
) -> LatencyTable:
    """The table that predicts `space` on `device` (found by label, the file `table`, or a table
    already loaded), checked to cover the space and for drift here (`drift`: refit, fail or ignore)."""
    policy = drift if isinstance(drift, DriftPolicy) else DriftPolicy(mode=drift)
    found = complete(table if isinstance(table, LatencyTable) else select_table(device, table, space), space, progress)
    LatencyPredictor(found, space)  # every block and a calibration, or one line naming the profile command
    return check_drift(found, space, policy, progress)


def resolve_tables(
    space: SearchSpace,
    *,
    devices: Sequence[str] = (),
    tables: Sequence[str | Path | LatencyTable] = (),
    drift: str | DriftPolicy = "refit",
    progress: bool = True,
) -> list[LatencyTable]:
    """One resolved table per device, in the order of `devices` (or, with no devices, of `tables`).
    A table given with `--table` goes to the device it was measured on; a device given twice, two
    tables for one device, or a table for a device not named are one-line errors."""
    labels = [parse_device(d).label for d in devices]
    twice = [d for i, d in enumerate(labels) if d in labels[:i]]
    if twice:
        raise TableError(f"device {twice[0]!r} is given twice; give each --device once (with one --latency-ms each)")
    loaded = [t if isinstance(t, LatencyTable) else LatencyTable.load(t) for t in tables]
    by_device: dict[str, LatencyTable] = {}
    for t in loaded:
        if t.device in by_device:
            raise TableError(
                f"two tables for device {t.device!r} ({by_device[t.device].name} and {t.name}); "
                f"give one --table per device"
            )
        by_device[t.device] = t
    if labels:
        stray = [t for d, t in by_device.items() if d not in labels]
        if stray:
            raise TableError(
                f"latency table {stray[0].name} was measured on device {stray[0].device!r}, which no "
                f"--device names ({', '.join(labels)}); add --device {stray[0].device} or drop the table"
            )
    order = labels or list(by_device)
    return [resolve_table(space, device=d, table=by_device.get(d), drift=drift, progress=progress) for d in order]


def optional_table(
    space: SearchSpace,
    *,
    device: str | None = None,
    table: str | Path | LatencyTable | None = None,
    default_device: str = "cpu",
    drift: str | DriftPolicy = "refit",
    progress: bool = True,
) -> LatencyTable | None:
    """`resolve_table` when a device or table is named; otherwise the table of `default_device` if one
    covers the space, else None (a command that can go on without a latency prediction)."""
    if device or table is not None:
        return resolve_table(space, device=device, table=table, drift=drift, progress=progress)
    try:
        found = complete(select_table(default_device, None, space), space, progress)
        LatencyPredictor(found, space)
    except TableError:
        return None
    return resolve_table(space, table=found, drift=drift, progress=progress)


def list_tables() -> list[dict[str, Any]]:
    """Every table `table_files()` finds, with where it was found, its spaces and fingerprint, and how it
    stands on this machine: `matches` (same setup), `differs` (runs here; checked on use, with any
    local calibrations of this setup) or `elsewhere` (this machine cannot run its setup)."""
    listed = []
    for source, path in table_files():
        row: dict[str, Any] = {"path": str(path), "source": source}
        try:
            table = LatencyTable.load(path)
        except TableError as exc:
            listed.append({**row, "here": "unreadable", "error": str(exc)})
            continue
        row.update(
            device=table.device,
            setup=fingerprint_summary(table.fingerprint),
            spaces=sorted(table.calibrations),
            rows=len(table),
            fitted_rows=len(table.filled_rows),
            created=table.fingerprint.get("created"),
            fingerprint=table.fingerprint,
        )
        why = why_not_here(table.fingerprint)
        if why:
            listed.append({**row, "here": "elsewhere", "why": why})
            continue
        setup = setup_of(table)
        differences = table.setup_differences(setup, LATENCY_FIELDS)
        local = {
            e.space: {**e.to_dict(), "outcome": describe_outcome(e.to_dict())}
            for e in LocalCalibrations(path).for_setup(setup)
        }
        listed.append(
            {
                **row,
                "here": "differs" if differences else "matches",
                "differences": differences,
                "local_calibrations": local,
            }
        )
    return listed
