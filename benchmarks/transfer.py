"""Moving a latency table to a new device: per-kind factors (`hwnas profile --from TABLE`) against a
linear refit of the table's calibration (what the drift check does), each from a few measurements.

Two cases per space:
- `uneven` (simulated): a device on which attention takes 1.5x and the MLP 0.8x as long as on the
  table's device. Each row is rescaled by its block's shares of attention and MLP MACs (traced by
  fvcore; other kinds unchanged) and a subnet takes the table's calibrated sum of those rows. This
  is arithmetic on a measured table: it tests whether a method follows a change that moves block
  kinds and shapes unevenly, not the timer.
- `threads` (measured): the same machine with 2 onnxruntime threads instead of the table's 1. The
  transfer is a real `profile_space(..., source=TABLE)`, then `validate_table` measures `--n`
  random subnets end to end at 2 threads in two separate processes (the truth: each method scores
  the worse of the two; the processes against each other are the floor) and the calibration
  subnets again. Two threads on a shared 2-core machine drift by tens of percent within minutes, so
  both methods are also scored with their calibration refitted on those subnets measured again
  (`recalibrated now`), which compares the methods' rows net of the machine's drift.

The per-kind transfer measures the calibration subnets plus 10% of the space's rows (at least one
per kind); the linear refit is fitted on 20 subnets (`uneven`) or on the same calibration subnets
(`threads`). Prints a markdown table and writes JSON and a PNG.

    .venv/bin/python benchmarks/transfer.py [--source latency_tables/cpu_onnxruntime_fp32_bs1_t1.csv]
        [--spaces resnas-tiny autoformer-tiny glit-tiny] [--cases uneven threads] [--n 30]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas import get_space
from hwnas.cost import flops_by_module
from hwnas.io import atomic_write_json
from hwnas.latency.agreement import agreement, worst
from hwnas.latency.bundle import NETWORK, sample_archs
from hwnas.latency.calibration_subnets import calibration_archs, calibration_pairs
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.profile import ProfileSettings, merge_measurements, plans_for, profile_space
from hwnas.latency.sampled import profile_sampled
from hwnas.latency.table import LATENCY, Calibration, LatencyTable
from hwnas.latency.validate import validate_table
from hwnas.plots import figure, save_figure
from hwnas.profilers.protocol import STAT_COLUMNS
from hwnas.spaces import Arch, SearchSpace
from hwnas.spaces.blocks import BlockConfig

ATTENTION, MLP = 1.5, 0.8  # the simulated device's factors
METHODS = (
    ("per_kind", "per-kind"),
    ("linear_refit", "linear refit"),
    ("per_kind_recalibrated_now", "per-kind, recalibrated now"),
    ("linear_refit_recalibrated_now", "linear refit, recalibrated now"),
    ("floor_process_vs_process", "floor"),
)
LINEAR_SUBNETS = 20
ROW_SHARE = 0.10
EVAL_SEED = 424_242
SCORES = ("mape_pct", "within_5pct", "within_10pct", "kendall_tau")


def uneven_factor(block: BlockConfig) -> float:
    """How much longer the simulated device takes for `block`: its attention and MLP MACs rescaled."""
    by_module = flops_by_module(block.definition.module(block), torch.zeros(block.definition.input_shape(block, 1)))
    total = max(by_module[""], 1)
    return 1 + (ATTENTION - 1) * by_module.get("attn", 0) / total + (MLP - 1) * by_module.get("mlp", 0) / total


def row_budget(space: SearchSpace) -> int:
    return math.ceil(ROW_SHARE * len(set(space.block_configs())))


def scores(predicted: np.ndarray, *truths: np.ndarray) -> dict[str, float]:
    """MAPE, shares within +-5% / +-10% and Kendall tau against each truth: the worse of each."""
    least = worst([agreement(predicted, truth) for truth in truths])
    return {k: least[k] for k in SCORES}


def uneven_case(space: SearchSpace, source: LatencyTable, settings: ProfileSettings) -> dict[str, Any]:
    blocks = list(dict.fromkeys(space.block_configs()))
    factor = {b.key: uneven_factor(b) for b in blocks}
    truth_rows = {b.key: {s: float(source.rows.loc[b.key, s]) * factor[b.key] for s in STAT_COLUMNS} for b in blocks}
    own = source.calibration(space)

    def subnet_ms(keys: Any) -> float:
        return float(own(sum(truth_rows[k][LATENCY] for k in keys)))

    table = LatencyTable.empty({"device": "simulated", "backend": "onnxruntime"})
    count = {"subnets": 0, "rows": 0}

    def measure(plans: Any, name: str, show: bool) -> list[dict[str, Any]]:
        rows = []
        for p in plans:
            network = p.entry.kind == NETWORK
            count["subnets" if network else "rows"] += 1
            stats = dict.fromkeys(STAT_COLUMNS, subnet_ms(p.entry.blocks)) if network else truth_rows[p.entry.key]
            rows.append({"file": p.entry.file, **stats})
        merge_measurements(table, [p.entry for p in plans], rows, space, statistics=())
        return rows

    calibration = plans_for(space, settings, [], calibrate=True)
    began = time.perf_counter()
    result = profile_sampled(
        space,
        table,
        calibration,
        lambda bs: plans_for(space, settings, bs, calibrate=False),
        measure,
        None,
        source,
        row_budget(space),
    )
    merge_measurements(table, [p.entry for p in calibration], result["measured"], space, statistics=(LATENCY,))
    seconds = time.perf_counter() - began
    evaluate = sample_archs(space, 200, EVAL_SEED)
    truth = np.array([subnet_ms([b.key for b in a.blocks()]) for a in evaluate])
    per_kind = np.array([LatencyPredictor(table, space).predict(a).latency_ms for a in evaluate])
    fitted_on = calibration_archs(space, LINEAR_SUBNETS)
    refit = Calibration.fit(
        [LatencyPredictor(source, space).predict(a).sum_ms for a in fitted_on],
        [subnet_ms([b.key for b in a.blocks()]) for a in fitted_on],
    )
    linear = np.array([refit(LatencyPredictor(source, space).predict(a).sum_ms) for a in evaluate])
    factors = np.array(list(factor.values()))
    return {
        "case": "uneven",
        "space": space.key,
        "rows_in_space": len(blocks),
        "row_factor_range": [float(factors.min()), float(factors.max())],
        "evaluated_subnets": len(evaluate),
        "per_kind": {**scores(per_kind, truth), "measured_subnets": count["subnets"], "measured_rows": count["rows"]},
        "linear_refit": {**scores(linear, truth), "measured_subnets": LINEAR_SUBNETS, "measured_rows": 0},
        "fit_seconds": round(seconds, 2),
    }


def threads_case(space: SearchSpace, source: LatencyTable, n: int, work: Path) -> dict[str, Any]:
    settings = ProfileSettings(device="cpu", threads=2)
    out = work / f"{space.name}_t2.csv"
    began = time.perf_counter()
    report = profile_space(space, settings, out, source=source, max_rows=row_budget(space))
    seconds = time.perf_counter() - began
    table = LatencyTable.load(out)
    # `n` subnets and the calibration subnets again, in two processes, as `hwnas validate-table` does
    check = validate_table(space, table, n=n, out=work / f"{space.name}_validate")
    frame = pd.read_csv(check["csv"])
    evaluate = [Arch.from_dict(json.loads(a), space) for a in frame["arch"]]
    truths = [frame[f"process{i + 1}_ms"].to_numpy() for i in range(check["processes"])]
    calibrated_on, then = calibration_pairs(space, LatencyPredictor(table, space))
    now = np.mean(check["calibration_remeasured"]["now_ms"], axis=0)
    by_source = LatencyPredictor(source, space)
    source_sums = by_source.sum_many(evaluate)
    linear = Calibration.fit(by_source.sum_many(calibrated_on), then)(source_sums)
    linear_now = Calibration.fit(by_source.sum_many(calibrated_on), now)(source_sums)
    per_kind, per_kind_now, floor = (
        {k: worst(check[key])[k] for k in SCORES}
        for key in ("calibrated", "recalibrated_now", "floor_process_vs_process")
    )
    return {
        "case": "threads",
        "space": space.key,
        "rows_in_space": len(set(space.block_configs())),
        "evaluated_subnets": len(evaluate),
        "measured_ms_range": check["measured_ms_range"],
        # the calibration subnets measured again after the transfer: how far the machine moved meanwhile
        "drift_pct": max(check["calibration_remeasured"]["drift_pct"], key=abs),
        "floor_process_vs_process": floor,
        "per_kind": {
            **per_kind,
            "measured_subnets": report["calibration_subnets"],
            "measured_rows": report["blocks_measured"],
        },
        "linear_refit": {**scores(linear, *truths), "measured_subnets": len(then), "measured_rows": 0},
        # both methods with their calibration refitted on the calibration subnets measured again
        "per_kind_recalibrated_now": per_kind_now,
        "linear_refit_recalibrated_now": scores(linear_now, *truths),
        "transfer_seconds": round(seconds, 1),
    }


def plot(results: list[dict[str, Any]], path: Path) -> Path:
    fig, ax = figure(7, 3.8)
    labels = [f"{r['space']}\n{r['case']}" for r in results]
    x = np.arange(len(results))
    for offset, (method, name) in zip(
        (-0.2, 0.2), (("per_kind", "per-kind (--from)"), ("linear_refit", "linear refit"))
    ):
        ax.bar(x + offset, [r[method]["within_10pct"] for r in results], width=0.4, label=name)
    ax.axhline(95, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("subnets within ±10% (%)")
    ax.set_ylim(0, 105)
    ax.set_title("A table moved to a new device: share of subnets predicted within ±10%", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("latency_tables/cpu_onnxruntime_fp32_bs1_t1.csv"))
    parser.add_argument("--spaces", nargs="+", default=["resnas-tiny", "autoformer-tiny", "glit-tiny"])
    parser.add_argument("--cases", nargs="+", choices=("uneven", "threads"), default=["uneven", "threads"])
    parser.add_argument("--n", type=int, default=30, help="subnets measured end to end per space (threads)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/transfer.json"))
    args = parser.parse_args()
    source = LatencyTable.load(args.source)
    settings = ProfileSettings(device="cpu", threads=1)
    results = []
    with tempfile.TemporaryDirectory(prefix="hwnas-transfer-") as work:
        for name in args.spaces:
            space = get_space(name)
            if "uneven" in args.cases:
                results.append(uneven_case(space, source, settings))
            if "threads" in args.cases:
                results.append(threads_case(space, source, args.n, Path(work)))
    png = plot(results, args.out.with_suffix(".png"))
    atomic_write_json(
        args.out,
        {
            "source": str(args.source),
            "source_setup": source.fingerprint.get("cpu_id"),
            "attention_factor": ATTENTION,
            "mlp_factor": MLP,
            "row_share": ROW_SHARE,
            "results": results,
            "plot": str(png),
            "provenance": provenance(),
        },
    )
    print("| space | case | method | measured subnets + rows | MAPE | within ±5% / ±10% | Kendall τ |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        for method, name in METHODS:
            if method not in r:
                continue
            m = r[method]
            counts = f"{m['measured_subnets']} + {m['measured_rows']}" if "measured_subnets" in m else "–"
            print(
                f"| {r['space']} | {r['case']} | {name} | {counts} | {m['mape_pct']:.1f}% | "
                f"{m['within_5pct']:.0f}% / {m['within_10pct']:.0f}% | {m['kendall_tau']:.3f} |"
            )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
