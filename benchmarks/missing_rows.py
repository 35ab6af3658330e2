"""Rows a table lacks, measured on the spot: how long it takes for another class count's heads, and
how far the per-kind fit (what a machine that cannot run the table's setup gets) is from them.

For each space, with the shipped CPU table and an empty local calibration folder: the time
`resolve_table` takes to measure the missing rows here (scaled to the table by their nearest row of
the same kind), then the same rows filled from the per-kind fit instead. Prints a markdown table
and writes JSON.

    .venv/bin/python benchmarks/missing_rows.py [--spaces resnas-digits:7 resnas-tiny:100]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas import get_space
from hwnas.io import atomic_write_json
from hwnas.latency.local import CALIBRATION_DIR_ENV
from hwnas.latency.resolve import resolve_table
from hwnas.latency.rowfit import fill_missing
from hwnas.latency.table import LATENCY, SHIPPED_DIR, LatencyTable

SHIPPED = SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["resnas-digits:7", "resnas-tiny:100", "autoformer-tiny:100"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/missing_rows.json"))
    args = parser.parse_args()
    shipped = LatencyTable.load(SHIPPED)
    results = []
    for item in args.spaces:
        name, classes = item.split(":")
        space = get_space(name, num_classes=int(classes))
        missing = shipped.missing(space.block_configs())
        with tempfile.TemporaryDirectory(prefix="hwnas-missing-rows-") as local:
            os.environ[CALIBRATION_DIR_ENV] = local
            began = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                here = resolve_table(space, device="cpu", drift="ignore", progress=False)
            seconds = time.perf_counter() - began
            began = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                resolve_table(space, device="cpu", drift="ignore", progress=False)
            reused_seconds = time.perf_counter() - began
        fitted = fill_missing(shipped.serving(space, shipped.head_variant_key(space)), space.block_configs())
        rows = [
            {
                "key": b.key,
                "measured_here_ms": float(here.rows.loc[b.key, LATENCY]),
                "fitted_ms": float(fitted.rows.loc[b.key, LATENCY]),
                "fit_error_pct_claimed": fitted.filled_rows[b.key],
            }
            for b in missing
        ]
        results.append(
            {
                "space": space.key,
                "rows_missing": len(missing),
                "rows_measured_here": len(here.rows_here),
                "seconds": round(seconds, 1),
                "seconds_reused": round(reused_seconds, 2),
                "fit_vs_here_pct": [round(100 * (r["fitted_ms"] / r["measured_here_ms"] - 1), 1) for r in rows],
                "rows": rows,
            }
        )
    os.environ.pop(CALIBRATION_DIR_ENV, None)
    atomic_write_json(
        args.out,
        {"table": f"latency_tables/{SHIPPED.name}", "results": results, "provenance": provenance()},
    )
    print("| space | rows missing | measured here in | again (kept locally) | fit against measured |")
    print("|---|---|---|---|---|")
    for r in results:
        fit = ", ".join(f"{x:+.1f}%" for x in r["fit_vs_here_pct"])
        print(f"| {r['space']} | {r['rows_missing']} | {r['seconds']:.1f} s | {r['seconds_reused']:.2f} s | {fit} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
