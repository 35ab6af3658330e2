"""How many calibration subnets a table needs: each space's calibration refitted on fewer of the
subnets it was fitted on (every subset that keeps the smallest and the largest, as a profile's
first two are), scored against the committed validation measurements of the shipped CPU table.
No measuring: arithmetic on the committed table (its calibration points) and the committed
validations (`benchmarks/latency_table.py`). Prints a markdown table and writes JSON and a plot.

    .venv/bin/python benchmarks/calibration_subnets.py [--table latency_tables/cpu_onnxruntime_fp32_bs1_t1.csv]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas.io import atomic_write_json
from hwnas.latency.agreement import agreement, worst
from hwnas.latency.calibration_subnets import calibration_pairs
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.table import SHIPPED_DIR, Calibration, LatencyTable
from hwnas.plots import figure, save_figure
from hwnas.spaces import get_space

COUNTS = (4, 6, 8, 10)  # subnets the calibration is refitted on (besides all of them)


def space_result(table: LatencyTable, validation: dict) -> dict:
    """For each count, the worse process's MAPE and tau of every refitted calibration (mean, p90, worst)."""
    space = get_space(validation["space"])
    predictor = LatencyPredictor(table, space)
    archs, measured_then = calibration_pairs(space, predictor)
    sums_then = predictor.sum_many(archs)
    df = pd.read_csv(validation["csv"])
    processes = [df[c].to_numpy() for c in df.columns if c.startswith("process")]
    sums = df["sum_ms"].to_numpy()

    def score(subset: tuple[int, ...]) -> dict:
        calibration = Calibration.fit(sums_then[list(subset)], measured_then[list(subset)])
        return worst([agreement(calibration(sums), m) for m in processes])

    everything = score(tuple(range(len(archs))))
    by_count = []
    for k in (c for c in COUNTS if c < len(archs)):
        scores = [score(s) for s in itertools.combinations(range(len(archs)), k) if 0 in s and 1 in s]
        mape = np.array([s["mape_pct"] for s in scores])
        by_count.append(
            {
                "subnets": k,
                "subsets": len(scores),
                "mape_pct_mean": float(mape.mean()),
                "mape_pct_p90": float(np.percentile(mape, 90)),
                "mape_pct_worst": float(mape.max()),
                "within_10pct_worst": float(min(s["within_10pct"] for s in scores)),
            }
        )
    return {
        "space": space.key,
        "calibration_subnets": len(archs),
        "validation_subnets": len(df),
        "mape_pct_all": everything["mape_pct"],
        "within_10pct_all": everything["within_10pct"],
        "by_count": by_count,
    }


def committed_validations(results: Path) -> list[dict]:
    """The validation reports `benchmarks/latency_table.py` wrote beside `results`, one per validated space."""
    return [
        json.loads((results.parent / f"validate_{r['space']}" / "validate.json").read_text())
        for r in json.loads(results.read_text())["results"]
        if r.get("validation")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/latency_cpu/latency_table.json"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/calibration_subnets.json"))
    args = parser.parse_args()
    table = LatencyTable.load(args.table)
    validations = committed_validations(args.results)
    spaces = [space_result(table, v) for v in validations]
    png = args.out.with_suffix(".png")
    fig, ax = figure(7, 4)
    for s in spaces:
        ks = [c["subnets"] for c in s["by_count"]] + [s["calibration_subnets"]]
        ax.plot(ks, [c["mape_pct_mean"] for c in s["by_count"]] + [s["mape_pct_all"]], marker="o", label=s["space"])
    ax.set_xlabel("calibration subnets the calibration is fitted on")
    ax.set_ylabel("validation MAPE (%, mean over subsets)")
    ax.legend(fontsize=6, ncol=2)
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
    print("| space | all: subnets / MAPE | " + " | ".join(f"{k}: MAPE mean / p90 / worst" for k in COUNTS) + " |")
    print("|---|---|" + "---|" * len(COUNTS))
    for s in spaces:
        cells = {c["subnets"]: c for c in s["by_count"]}
        print(
            f"| {s['space']} | {s['calibration_subnets']} / {s['mape_pct_all']:.2f}% | "
            + " | ".join(
                f"{cells[k]['mape_pct_mean']:.2f}% / {cells[k]['mape_pct_p90']:.2f}% / {cells[k]['mape_pct_worst']:.2f}%"
                if k in cells
                else "–"
                for k in COUNTS
            )
            + " |"
        )
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
