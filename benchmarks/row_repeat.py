"""Is a table's miss the noise of its rows? The shipped CPU table's measured rows of a space, and
its calibration subnets, measured again here in one fresh process with the table's setup: how far
each row moves (normalised by the median move, which is the machine's drift), and how well the
plain sum of the rows ranks the committed validation subnets (`benchmarks/latency_table.py`) with
the rows as profiled, as measured again, and as the mean of both. If row noise were what keeps a
table's Kendall tau below the process-against-process floor, the mean of two measurements would
close part of the gap. Prints a markdown table and writes JSON and a plot.

    .venv/bin/python benchmarks/row_repeat.py --spaces glit-tiny resnas-tiny
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas.io import atomic_write_json
from hwnas.latency.agreement import agreement
from hwnas.latency.bundle import block_plans, network_plans, sample_archs
from hwnas.latency.measure import measure_here, require_here, statistic_by_plan, table_settings
from hwnas.latency.profile import CALIBRATION_SEED
from hwnas.latency.table import LATENCY, SHIPPED_DIR, LatencyTable
from hwnas.plots import figure, save_figure
from hwnas.spaces import Arch, get_space
from hwnas.spaces.blocks import BlockConfig


def space_result(table: LatencyTable, space_key: str, validations: Path) -> dict:
    space = get_space(space_key)
    settings = table_settings(table)
    keys = sorted({b.key for b in space.block_configs()} & set(table.measured_rows().index))
    calibration = sample_archs(space, table.calibration(space).n, CALIBRATION_SEED, extremes=True)
    plans = block_plans([BlockConfig.from_key(k) for k in keys], settings.batch_size, settings.precision)
    plans += network_plans(calibration, settings.batch_size, settings.precision)
    measured = statistic_by_plan(plans, measure_here(space, settings, plans, f"measure {space.key} again"))
    then = table.rows.loc[keys, LATENCY].to_numpy(dtype=float)
    now, subnets_now = measured[: len(keys)], measured[len(keys) :]
    subnets_then = np.array([p[1] for p in table.calibration(space).points], dtype=float)
    moved = now / then / np.median(now / then) - 1

    df = pd.read_csv(validations / f"validate_{space.key}" / "validate.csv")
    archs = [Arch.from_dict(json.loads(a), space) for a in df["arch"]]
    processes = [df[c].to_numpy() for c in df.columns if c.startswith("process")]
    fixed = table.rows[LATENCY].to_dict()  # the space's fitted rows stay as they are in every variant

    def tau_of(rows: dict[str, float]) -> float:
        sums = np.array([sum(rows[b.key] for b in a.blocks()) for a in archs])
        return min(agreement(sums, m)["kendall_tau"] for m in processes)  # as validate-table ranks

    return {
        "space": space.key,
        "rows_measured_again": len(keys),
        "rows_in_space": len(set(space.block_configs())),
        "row_move_pct": (100 * moved).tolist(),
        "row_move_std_pct": float(100 * np.std(moved)),
        "row_move_max_pct": float(100 * np.max(np.abs(moved))),
        "machine_since_profiling_pct": float(100 * (np.median(subnets_now / subnets_then) - 1)),
        "validation_subnets": len(archs),
        "tau_rows_profiled": tau_of(fixed),
        "tau_rows_again": tau_of({**fixed, **dict(zip(keys, now))}),
        "tau_rows_mean": tau_of({**fixed, **dict(zip(keys, (now + then) / 2))}),
        "tau_floor": min(agreement(b, a)["kendall_tau"] for a, b in zip(processes, processes[1:])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["glit-tiny", "resnas-tiny"])
    parser.add_argument("--table", type=Path, default=SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv")
    parser.add_argument("--validations", type=Path, default=Path("benchmarks/results/latency_cpu"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/row_repeat.json"))
    args = parser.parse_args()
    table = LatencyTable.load(args.table)
    require_here(table, "measure its rows again")
    results = [space_result(table, s, args.validations) for s in args.spaces]
    png = args.out.with_suffix(".png")
    fig, ax = figure(6, 3.5)
    ax.hist([r["row_move_pct"] for r in results], bins=20, label=[r["space"] for r in results])
    ax.set_xlabel("row measured again against the table (%, after the median move)")
    ax.set_ylabel("rows")
    ax.legend()
    save_figure(fig, png)
    atomic_write_json(
        args.out,
        {
            "table": os.path.relpath(args.table),
            "fingerprint": table.fingerprint,
            "spaces": results,
            "plot": str(png),
            "provenance": provenance(),
        },
    )
    print(
        "| space | rows again | row move: std / max | machine since profiling | tau: rows profiled / again / mean | floor |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['space']} | {r['rows_measured_again']} of {r['rows_in_space']} | {r['row_move_std_pct']:.2f}% / "
            f"{r['row_move_max_pct']:.2f}% | {r['machine_since_profiling_pct']:+.1f}% | {r['tau_rows_profiled']:.3f} / "
            f"{r['tau_rows_again']:.3f} / {r['tau_rows_mean']:.3f} | {r['tau_floor']:.3f} |"
        )
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
