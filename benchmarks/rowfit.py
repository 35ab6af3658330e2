"""How well the per-kind fit fills a table's rows: cross-validated error per block kind on the
shipped CPU table's measured rows, with the fit's errors weighted as `hwnas.latency.rowfit` weighs
them (relative: 1/y^2) against plain least squares. No measuring: arithmetic on the committed table.
Prints a markdown table and writes JSON.

    .venv/bin/python benchmarks/rowfit.py [--table latency_tables/cpu_onnxruntime_fp32_bs1_t1.csv]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py
from sklearn.linear_model import LinearRegression

from hwnas.io import atomic_write_json
from hwnas.latency.rowfit import KindFit, costs
from hwnas.latency.table import LATENCY, SHIPPED_DIR, LatencyTable
from hwnas.spaces.blocks import BlockConfig


def plain_loo_error(x: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out (5-fold above 20 rows, as `rowfit` does) MAPE of unweighted non-negative least squares."""
    folds = np.arange(len(y)) if len(y) <= 20 else np.arange(len(y)) % 5
    scale = np.maximum(x.max(axis=0), 1.0)
    out = np.empty_like(y)
    for fold in np.unique(folds):
        held = folds == fold
        model = LinearRegression(positive=True).fit(x[~held] / scale, y[~held])
        out[held] = np.maximum(model.predict(x[held] / scale), 1e-6)
    return float(100 * np.mean(np.abs(out - y) / y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/rowfit.json"))
    args = parser.parse_args()
    table = LatencyTable.load(args.table)
    measured = table.measured_rows()
    rows = []
    for kind in sorted(set(measured["kind"])):
        of_kind = measured[measured["kind"] == kind]
        blocks = [BlockConfig.from_key(k) for k in of_kind.index]
        y = of_kind[LATENCY].to_numpy(dtype=float)
        if len(y) <= costs(blocks).shape[1] + 1:
            continue  # too few rows for the full fit: a line in MACs either way
        rows.append(
            {
                "kind": kind,
                "rows": len(y),
                "ms_range": [float(y.min()), float(y.max())],
                "relative_loo_mape_pct": KindFit.fit(blocks, y, LATENCY).cv_error_pct,
                "plain_loo_mape_pct": plain_loo_error(costs(blocks), y),
            }
        )
    atomic_write_json(
        args.out,
        {
            "table": os.path.relpath(args.table),
            "fingerprint": table.fingerprint,
            "kinds": rows,
            "provenance": provenance(),
        },
    )
    print("| block kind | measured rows | p50 range (ms) | relative fit: LOO MAPE | plain least squares: LOO MAPE |")
    print("|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["ms_range"]
        print(
            f"| {r['kind']} | {r['rows']} | {lo:.3f}–{hi:.3f} | {r['relative_loo_mape_pct']:.1f}% | "
            f"{r['plain_loo_mape_pct']:.1f}% |"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
