"""How well the per-kind fit fills a table's rows, and whether a finer fit of the rows moves whole subnets.

Rows: cross-validated error per block kind on the shipped CPU table's measured rows, fitted by a
line in a row's costs (MACs, parameters, input; relative errors, 1/y^2), by plain least squares on
them, by the line with the measured neighbours' correction, by what hwnas fits (the correction on a
line in the costs and the MACs of the kind's attention and depthwise parts, `rowfit.features`), and
with *per-value factors* on the line (a variant hwnas does not use: a log factor per field value,
alone and beside the kind's first field, e.g. `in_dim=384` and `tokens=65/in_dim=384`,
ridge-shrunk; it models a kernel that suits one width better than its neighbours).

Subnets (of the spaces with fitted rows): the table's fitted rows refitted on all its measured rows
with each fit, each space's calibration refitted on its own calibration points, and every variant
scored on the committed 50-subnet validation measurements (`benchmarks/latency_table.py`), each process's
median miss taken out first (the machine's drift since profiling, which no fit of the rows changes).
No measuring: arithmetic on committed data. Prints markdown tables and writes JSON.

    .venv/bin/python benchmarks/rowfit.py [--table latency_tables/cpu_onnxruntime_fp32_bs1_t1.csv]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from calibration_subnets import committed_validations  # the committed validations of the shipped table
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py
from sklearn.linear_model import LinearRegression

from hwnas.io import atomic_write_json
from hwnas.latency.agreement import agreement, worst
from hwnas.latency.calibration_subnets import calibration_pairs
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.rowfit import KindFit, costs
from hwnas.latency.table import LATENCY, SHIPPED_DIR, Calibration, LatencyTable
from hwnas.spaces import Arch, get_space
from hwnas.spaces.blocks import MAC_PARTS, BlockConfig

RIDGE = 1.0  # a value seen in n rows keeps n / (n + RIDGE) of its mean log residual


def folds(n: int) -> np.ndarray:
    """Leave-one-out up to 20 rows, else 5-fold, as `rowfit` cross-validates."""
    return np.arange(n) if n <= 20 else np.arange(n) % 5


def plain_loo_error(x: np.ndarray, y: np.ndarray) -> float:
    """Cross-validated MAPE of unweighted non-negative least squares."""
    scale = np.maximum(x.max(axis=0), 1.0)
    out, fold = np.empty_like(y), folds(len(y))
    for f in np.unique(fold):
        held = fold == f
        model = LinearRegression(positive=True).fit(x[~held] / scale, y[~held])
        out[held] = np.maximum(model.predict(x[held] / scale), 1e-6)
    return float(100 * np.mean(np.abs(out - y) / y))


def field_values(block: BlockConfig) -> list[str]:
    (first, value), *rest = block.values
    return [f"{name}={v}" for name, v in block.values] + [f"{first}={value}/{name}={v}" for name, v in rest]


def line_fit(blocks: Sequence[BlockConfig], y: np.ndarray) -> KindFit:
    """`rowfit`'s line on the costs alone, without the measured neighbours' correction."""
    return KindFit.fit(blocks, y, LATENCY, basis=costs, local=False)


def neighbours_fit(blocks: Sequence[BlockConfig], y: np.ndarray) -> KindFit:
    """The line on the costs alone, with the measured neighbours' correction."""
    return KindFit.fit(blocks, y, LATENCY, basis=costs)


def hwnas_fit(blocks: Sequence[BlockConfig], y: np.ndarray) -> KindFit:
    return KindFit.fit(blocks, y, LATENCY)


class PerValueFit:
    """The line of `rowfit`, times a factor per field value fitted on its log residuals."""

    def __init__(self, blocks: Sequence[BlockConfig], y: np.ndarray):
        self.base = line_fit(blocks, y)
        self.names = sorted({v for b in blocks for v in field_values(b)})
        values = self.matrix(blocks)
        gram = values.T @ values + RIDGE * np.eye(len(self.names))
        self.log_factors = np.linalg.solve(gram, values.T @ np.log(y / self.base(blocks)))

    def matrix(self, blocks: Sequence[BlockConfig]) -> np.ndarray:
        index = {v: j for j, v in enumerate(self.names)}
        out = np.zeros((len(blocks), len(self.names)))
        for i, b in enumerate(blocks):
            out[i, [index[v] for v in field_values(b) if v in index]] = 1.0  # a value no row had: no factor
        return out

    def __call__(self, blocks: Sequence[BlockConfig]) -> np.ndarray:
        return self.base(blocks) * np.exp(self.matrix(blocks) @ self.log_factors)


def per_value_loo_error(blocks: list[BlockConfig], y: np.ndarray) -> float:
    out, fold = np.empty_like(y), folds(len(y))
    for f in np.unique(fold):
        held = fold == f
        fit = PerValueFit([b for b, h in zip(blocks, held) if not h], y[~held])
        out[held] = fit([b for b, h in zip(blocks, held) if h])
    return float(100 * np.mean(np.abs(out - y) / y))


def per_mac_ps(fit: KindFit, blocks: Sequence[BlockConfig]) -> dict[str, float]:
    """What the line of hwnas's fit charges per MAC (picoseconds): a dense MAC, and one of each part `blocks` have."""
    dense, extra = fit.coef[0], dict(zip(MAC_PARTS, fit.coef[3:]))
    present = {part for b in blocks for part, macs in b.mac_parts().items() if macs}
    return {"dense": dense * 1e9, **{part: (dense + c) * 1e9 for part, c in extra.items() if part in present}}


def kind_rows(table: LatencyTable) -> list[dict]:
    measured, rows = table.measured_rows(), []
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
                "relative_loo_mape_pct": line_fit(blocks, y).cv_error_pct,
                "plain_loo_mape_pct": plain_loo_error(costs(blocks), y),
                "neighbours_loo_mape_pct": neighbours_fit(blocks, y).cv_error_pct,
                "hwnas_loo_mape_pct": hwnas_fit(blocks, y).cv_error_pct,
                "per_mac_ps": per_mac_ps(hwnas_fit(blocks, y), blocks),
                "per_value_loo_mape_pct": per_value_loo_error(blocks, y),
            }
        )
    return rows


def refitted(table: LatencyTable, path: Path, fit: Callable) -> LatencyTable:
    """A copy of the table whose fitted rows (p50) `fit(blocks, ms)` gives, per kind on its measured rows."""
    copy = LatencyTable.load(path)
    fitted = [BlockConfig.from_key(k) for k in table.filled_rows]
    measured = table.measured_rows()
    for kind in sorted({b.kind for b in fitted}):
        of_kind = measured[measured["kind"] == kind]
        blocks = [BlockConfig.from_key(k) for k in of_kind.index]
        if len(blocks) <= costs(blocks).shape[1] + 1:
            continue
        targets = [b for b in fitted if b.kind == kind]
        copy.rows.loc[[b.key for b in targets], LATENCY] = fit(blocks, of_kind[LATENCY].to_numpy(dtype=float))(targets)
    return copy


def subnet_scores(table: LatencyTable, variants: dict[str, LatencyTable], validation: dict) -> dict:
    """Each variant of the table on the space's validation subnets (worse process), each process's median
    miss taken out."""
    space = get_space(validation["space"])
    archs, measured_then = calibration_pairs(space, LatencyPredictor(table, space))
    df = pd.read_csv(validation["csv"])
    subnets = [Arch.from_dict(json.loads(a), space) for a in df["arch"]]
    processes = [df[c].to_numpy() for c in df.columns if c.startswith("process")]
    out = {"space": space.key, "fitted_rows": sum(b.key in table.filled_rows for b in space.block_configs())}
    for name, t in variants.items():
        predictor = LatencyPredictor(t, space)
        calibration = Calibration.fit(predictor.sum_many(archs), measured_then)
        predicted = calibration(predictor.sum_many(subnets))
        out[name] = worst([agreement(predicted * np.median(m / predicted), m) for m in processes])
    out["floor_tau"] = validation["floor_process_vs_process"][0]["kendall_tau"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/latency_cpu/latency_table.json"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/rowfit.json"))
    args = parser.parse_args()
    table = LatencyTable.load(args.table)
    kinds = kind_rows(table)
    variants = {
        "line": refitted(table, args.table, line_fit),
        "neighbours": refitted(table, args.table, neighbours_fit),
        "hwnas_fit": refitted(table, args.table, hwnas_fit),
        "per_value": refitted(table, args.table, PerValueFit),
    }
    validations = committed_validations(args.results)
    fitted = set(table.filled_rows)  # a space without fitted rows scores the same under every fit
    subnets = [
        subnet_scores(table, variants, v)
        for v in validations
        if any(b.key in fitted for b in get_space(v["space"]).block_configs())
    ]
    atomic_write_json(
        args.out,
        {
            "table": os.path.relpath(args.table),
            "fingerprint": table.fingerprint,
            "ridge": RIDGE,
            "kinds": kinds,
            "subnets": subnets,
            "provenance": provenance(),
        },
    )
    print(
        "| block kind | measured rows | p50 range (ms) | line | plain least squares | line + neighbours | "
        "hwnas (parts + neighbours) | per-value |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in kinds:
        lo, hi = r["ms_range"]
        print(
            f"| {r['kind']} | {r['rows']} | {lo:.3f}–{hi:.3f} | {r['relative_loo_mape_pct']:.1f}% | "
            f"{r['plain_loo_mape_pct']:.1f}% | {r['neighbours_loo_mape_pct']:.1f}% | {r['hwnas_loo_mape_pct']:.1f}% | "
            f"{r['per_value_loo_mape_pct']:.1f}% |"
        )
    print(
        "\n| space | fitted rows | line | line + neighbours | hwnas (parts + neighbours) | per-value factors | floor τ |"
    )
    print("|---|---|---|---|---|---|---|")
    for s in subnets:
        cells = " | ".join(f"{s[v]['mape_pct']:.2f}% / {s[v]['kendall_tau']:.3f}" for v in variants)
        print(f"| {s['space']} | {s['fitted_rows']} | {cells} | {s['floor_tau']:.3f} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
