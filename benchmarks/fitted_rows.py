"""How far a table's fitted rows are from the blocks measured: the fitted rows of a few random
subnets of a space, measured here with the table's setup and protocol, against the values the
per-kind fit stored (normalised by the median move of the space's measured rows, measured in the
same run: the machine's drift). A fitted row's stored error is cross-validated on its kind's
measured rows; a row wider, or with fewer tokens, than any of them is an extrapolation, which this
measures. Prints a markdown table and writes JSON and a plot.

    .venv/bin/python benchmarks/fitted_rows.py --spaces resnas-small
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas.io import atomic_write_json
from hwnas.latency.bundle import block_plans, sample_archs
from hwnas.latency.measure import measure_here, require_here, statistic_by_plan, table_settings
from hwnas.latency.rowfit import costs
from hwnas.latency.table import LATENCY, SHIPPED_DIR, LatencyTable
from hwnas.plots import figure, save_figure
from hwnas.spaces import get_space
from hwnas.spaces.blocks import BlockConfig

SEED = 5  # the subnets whose fitted rows are measured (not the calibration or validation subnets)


def measured_ranges(table: LatencyTable) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per block kind, the lowest and highest costs of its measured rows."""
    measured = table.measured_rows()
    ranges = {}
    for kind in set(measured["kind"]):
        known = costs([BlockConfig.from_key(k) for k in measured.index[measured["kind"] == kind]])
        ranges[kind] = (known.min(axis=0), known.max(axis=0))
    return ranges


def outside(ranges: dict[str, tuple[np.ndarray, np.ndarray]], block: BlockConfig) -> bool:
    """Whether any of the block's costs lies outside the range of its kind's measured rows."""
    low, high = ranges[block.kind]
    own = costs([block])[0]
    return bool(np.any(own < low) or np.any(own > high))


def space_result(table: LatencyTable, space_key: str, subnets: int) -> dict:
    space = get_space(space_key)
    settings = table_settings(table)
    fitted = table.filled_rows
    keys = sorted({b.key for a in sample_archs(space, subnets, SEED) for b in a.blocks()} & set(fitted))
    anchors = sorted({b.key for b in space.block_configs()} & set(table.measured_rows().index))
    plans = block_plans([BlockConfig.from_key(k) for k in keys + anchors], settings.batch_size, settings.precision)
    now = statistic_by_plan(plans, measure_here(space, settings, plans, f"measure {space.key}'s fitted rows"))
    ratio = now / table.rows.loc[keys + anchors, LATENCY].to_numpy(dtype=float)
    drift = float(np.median(ratio[len(keys) :])) if anchors else float(np.median(ratio))
    off = ratio[: len(keys)] / drift - 1
    ranges = measured_ranges(table)
    rows = [
        {
            "key": k,
            "table_ms": float(table.rows.loc[k, LATENCY]),
            "measured_ms": float(m),
            "off_pct": float(100 * o),
            "stored_error_pct": fitted[k],
            "outside_measured": outside(ranges, BlockConfig.from_key(k)),
        }
        for k, m, o in zip(keys, now[: len(keys)], off)
    ]
    return {
        "space": space.key,
        "subnets": subnets,
        "fitted_rows_in_space": sum(b.key in fitted for b in set(space.block_configs())),
        "rows_in_space": len(set(space.block_configs())),
        "anchor_rows": len(anchors),
        "machine_since_profiling_pct": 100 * (drift - 1),
        "mean_abs_off_pct": float(100 * np.mean(np.abs(off))),
        "mean_stored_error_pct": float(np.mean([r["stored_error_pct"] or 0.0 for r in rows])),
        "rows": sorted(rows, key=lambda r: -abs(r["off_pct"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["resnas-small"])
    parser.add_argument("--subnets", type=int, default=2, help="random subnets whose fitted rows are measured")
    parser.add_argument("--table", type=Path, default=SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fitted_rows.json"))
    args = parser.parse_args()
    table = LatencyTable.load(args.table)
    require_here(table, "measure its fitted rows")
    spaces = [space_result(table, s, args.subnets) for s in args.spaces]
    png = args.out.with_suffix(".png")
    fig, ax = figure(6, 4)
    for s in spaces:
        for outside, marker in ((False, "o"), (True, "^")):
            rows = [r for r in s["rows"] if r["outside_measured"] == outside]
            label = f"{s['space']} ({'outside' if outside else 'within'} the measured rows' costs)"
            ax.scatter([r["table_ms"] for r in rows], [r["off_pct"] for r in rows], marker=marker, label=label, s=14)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("fitted row in the table (ms)")
    ax.set_ylabel("measured here, after the drift (% off)")
    ax.legend(fontsize=6)
    save_figure(fig, png)
    atomic_write_json(
        args.out,
        {
            "table": os.path.relpath(args.table),
            "fingerprint": table.fingerprint,
            "spaces": spaces,
            "plot": str(png),
            "provenance": provenance(),
        },
    )
    print("| space | fitted rows measured | mean miss | stored fit error | worst rows (miss) |")
    print("|---|---|---|---|---|")
    for s in spaces:
        worst = ", ".join(f"`{r['key']}` {r['off_pct']:+.0f}%" for r in s["rows"][:3])
        print(
            f"| {s['space']} | {len(s['rows'])} | {s['mean_abs_off_pct']:.1f}% | {s['mean_stored_error_pct']:.1f}% "
            f"| {worst} |"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
