"""Rows a table lacks, measured on the spot on this machine.

A run on another class count than a table was profiled for needs a head row per head width, and a
full profile for one linear layer would be absurd. Where this machine can run the table's setup
(`why_not_here`), each missing row is measured alone with the table's protocol, together with its
anchor: the nearest row of the same kind (in log-cost) that the table measured. The row is scaled
by the anchor's ratio of table to here, so on a machine whose processor differs from the table's it
lands in the table's units, as its neighbours are. This takes a few seconds per row. The rows are
kept in the table's local calibration file (`hwnas.latency.local`), never in the table, and reused
while the anchor's row and the table are unchanged. Where the setup cannot run here, or a kind has
no measured row to anchor on, rows are fitted instead (`hwnas.latency.rowfit.fill_missing`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwnas.latency.bundle import block_plans
from hwnas.latency.local import LocalCalibrations
from hwnas.latency.measure import measure_here, setup_of, table_settings, why_not_here
from hwnas.latency.rowfit import TIMINGS, costs
from hwnas.latency.table import LATENCY, LATENCY_FIELDS, LatencyTable
from hwnas.profilers.protocol import STAT_COLUMNS
from hwnas.spaces import SearchSpace
from hwnas.spaces.blocks import BlockConfig


@dataclass(frozen=True)
class RowsHere:
    """What `measure_missing` did: rows measured now, rows reused from the local file, where they are kept."""

    measured: list[str]
    reused: list[str]
    anchors: dict[str, str | None]  # row -> the table row it was scaled by (None: same setup, not scaled)
    seconds: float
    stored: Path | None

    @property
    def keys(self) -> list[str]:
        return self.measured + self.reused


def anchor_for(table: LatencyTable, block: BlockConfig) -> str | None:
    """The measured row of `block`'s kind nearest to it in log-cost (None: the table measured none)."""
    measured = table.measured_rows()
    keys = list(measured.index[measured["kind"] == block.kind])
    if not keys:
        return None
    logs = np.log1p(costs([BlockConfig.from_key(k) for k in keys]))
    return keys[int(np.argmin(np.linalg.norm(logs - np.log1p(costs([block])), axis=1)))]


def measure_missing(
    table: LatencyTable, space: SearchSpace, blocks: Sequence[BlockConfig], progress: bool = True
) -> tuple[LatencyTable, RowsHere] | None:
    """`table` with `blocks` (rows it lacks) measured here and scaled to it, or reused from its local
    file; None where this machine cannot run the table's setup. A block whose kind the table never
    measured is left out where this setup differs from the table's (nothing to scale it by)."""
    if why_not_here(table.fingerprint) or not blocks:
        return None
    began = time.perf_counter()
    setup = setup_of(table)
    same_setup = not table.setup_differences(setup, LATENCY_FIELDS)
    anchors = {b.key: anchor_for(table, b) for b in blocks}
    blocks = [b for b in blocks if anchors[b.key] is not None or same_setup]
    store = LocalCalibrations(table.path) if table.path else None
    stamp = str(table.fingerprint.get("created"))
    kept = store.rows_for(setup) if store else {}
    reused = {
        b.key: kept[b.key]["stats"]
        for b in blocks
        if b.key in kept
        and kept[b.key].get("anchor") == anchors[b.key]
        and kept[b.key].get("table_created") == stamp
        and (anchors[b.key] is None or np.isclose(kept[b.key]["anchor_ms"], table.rows.loc[anchors[b.key], LATENCY]))
    }
    todo = [b for b in blocks if b.key not in reused]
    measured: dict[str, dict[str, float]] = {}
    if todo:
        measured = _measure(table, space, todo, anchors, progress)
        rows = {
            k: {
                "stats": s,
                "anchor": anchors[k],
                "anchor_ms": None if anchors[k] is None else float(table.rows.loc[anchors[k], LATENCY]),
                "table_created": stamp,
            }
            for k, s in measured.items()
        }
        stored = store.store_rows(setup, rows) if store else None
    else:
        stored = store.path if store else None
    stats = {**reused, **measured}
    filled = table.with_rows_here((BlockConfig.from_key(k), s) for k, s in stats.items())
    return filled, RowsHere(
        measured=list(measured),
        reused=list(reused),
        anchors={k: anchors[k] for k in stats},
        seconds=time.perf_counter() - began,
        stored=stored,
    )


def _measure(
    table: LatencyTable,
    space: SearchSpace,
    blocks: Sequence[BlockConfig],
    anchors: dict[str, str | None],
    progress: bool,
) -> dict[str, dict[str, float]]:
    """Measure `blocks` and their anchors here with the table's protocol; each block's stats scaled
    by its anchor's table / here ratio, statistic by statistic."""
    settings = table_settings(table)
    wanted = list(dict.fromkeys([*blocks, *(BlockConfig.from_key(a) for a in anchors.values() if a)]))
    plans = block_plans(wanted, settings.batch_size, settings.precision)
    rows = measure_here(
        space, settings, plans, f"measure {len(blocks)} missing row(s) of {space.key}" if progress else None
    )
    by_file = {r["file"]: r for r in rows}
    here = {p.entry.key: by_file[p.entry.file] for p in plans}
    out = {}
    for b in blocks:
        anchor = anchors[b.key]
        scale = {
            s: 1.0 if anchor is None else float(table.rows.loc[anchor, s]) / float(here[anchor][s]) for s in TIMINGS
        }
        out[b.key] = {s: float(here[b.key][s]) * scale.get(s, 1.0) for s in STAT_COLUMNS}
    return out
