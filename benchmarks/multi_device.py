"""Budgets on several devices at once, tail latency, and the whole front in one NSGA-II run.

Two setups measurable on this machine stand in for two devices: ONNX Runtime with 1 thread (`cpu`,
the shipped table) and with 2 threads (`cpu-t2`, profiled here for autoformer-digits into
`--work`). Measures, on the digits supernet `--run` (trained with the default budget if missing):
1. exact joint feasibility against brute force: a toy space enumerated whole, three random tables,
   random budget triples: does `check_feasible` find an arch exactly when one exists?
2. a search under budgets on both devices, its winner then measured end to end on each (and again
   in two fresh processes per device: the spread one arch shows, its noise floor);
3. NSGA-II against evolution: one NSGA-II run against three evolution runs (one per budget, a third
   of the evaluations each), per seed: hypervolume of the evaluated archs within the loosest budget
   (error % x latency ms, reference point 100% x the loosest budget) and each budget's winner
   (search-val and test top-1);
4. the shipped table's p90 prediction validated on 50 subnets in two processes (as p50's is).
Prints tables, writes JSON and a PNG.

    .venv/bin/python benchmarks/multi_device.py [--run runs/bench_samplers/uniform-seed0] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py
from pymoo.indicators.hv import HV
from samplers import trained  # the digits supernets these benchmarks share: trained, resumed or reused
from scipy.stats import kendalltau

import hwnas
from hwnas.io import atomic_write_json
from hwnas.latency.measure import measure_archs_apart, setup_of
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.profile import ProfileSettings, profile_space
from hwnas.latency.resolve import resolve_table
from hwnas.latency.table import SHIPPED_DIR, LatencyTable
from hwnas.latency.validate import validate_table, worst
from hwnas.plots import figure, save_figure
from hwnas.profilers.protocol import cpu_model
from hwnas.spaces import get_space
from hwnas.subnet_search import Budget, BudgetError, Constraints, Costs, check_feasible
from hwnas.subnet_search.report import pareto_front
from hwnas.training import TrainConfig

SHIPPED = SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv"
TOY = {
    "family": "autoformer",
    "img_size": 16,
    "patch_size": 4,
    "in_chans": 3,
    "num_classes": 10,
    "head_dim": 8,
    "choices": {"embed_dim": [16, 32], "depth": [1, 2, 3, 4], "num_heads": [1, 2], "mlp_ratio": [1.0, 2.0, 3.0]},
}


def brute_force_agreement(trials: int) -> dict:
    """`check_feasible` against enumerating every arch of a toy space, under three random tables."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "toy.yaml").write_text(json.dumps({"name": "joint-toy", "description": "", **TOY}))
        space = get_space(Path(tmp) / "toy.yaml")
    layers = list(itertools.product(TOY["choices"]["num_heads"], TOY["choices"]["mlp_ratio"]))
    archs = [
        space.with_layers(d, combo)
        for d in TOY["choices"]["embed_dim"]
        for k in TOY["choices"]["depth"]
        for combo in itertools.product(layers, repeat=k)
    ]
    rng = np.random.default_rng(0)
    blocks = space.block_configs()
    agree, found, seconds = 0, 0, []
    for _ in range(trials):
        tables = [dict(zip(blocks, rng.lognormal(0, 0.5, len(blocks)))) for _ in range(3)]
        sums = np.array([[sum(t[b] for b in a.blocks()) for t in tables] for a in archs])
        limits = [float(np.quantile(sums[:, i], q)) for i, q in enumerate(rng.uniform(0.0003, 0.006, 3))]
        exists = bool((sums <= np.array(limits)).all(axis=1).any())
        costs = _FixedCosts(space, tables)
        start = time.perf_counter()
        try:
            anchor = check_feasible(Constraints(_three(limits), costs)).anchor
            ok = exists and bool((np.array([sum(t[b] for b in anchor.blocks()) for t in tables]) <= limits).all())
        except BudgetError:
            ok = not exists
        seconds.append(time.perf_counter() - start)
        agree += ok
        found += exists
    return {
        "space_archs": len(archs),
        "trials": trials,
        "agree": agree,
        "feasible_trials": found,
        "median_check_ms": 1e3 * statistics.median(seconds),
    }


def _three(limits: list[float]) -> Budget:
    return Budget.on(limits, ["a", "b", "c"])


class _FixedCosts(Costs):
    """Latency on three made-up devices, each a plain sum of per-block costs (no calibration)."""

    def __init__(self, space, tables):
        super().__init__(space)
        self.tables = dict(zip(("latency_ms", "latency_ms@b", "latency_ms@c"), tables))
        self.metrics = list(self.tables)

    def many(self, archs, metrics=None):
        return {
            m: np.array([sum(self.tables[m][b] for b in a.blocks()) for a in archs])
            for m in (self.metrics if metrics is None else metrics)
        }

    def block_cost(self, metric):
        return self.tables[metric].__getitem__

    def sum_limit(self, metric, limit):
        return limit


def hypervolume(history, limit: float) -> float:
    """Of (error %, latency ms) of the archs within `limit`, reference point (100, limit)."""
    points = history[history["latency_ms"] <= limit]
    f = np.column_stack([100 - points["top1_search_val"].to_numpy(float), points["latency_ms"].to_numpy(float)])
    return float(HV(ref_point=np.array([100.0, limit]))(f)) if len(f) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/bench_samplers/uniform-seed0"))
    parser.add_argument("--work", type=Path, default=Path("runs/bench_multi_device"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--evaluations", type=int, default=600, help="per seed and method")
    parser.add_argument("--trials", type=int, default=100, help="random budget triples of the brute-force check")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/multi_device.json"))
    args = parser.parse_args()
    trained(TrainConfig(space="autoformer-digits", data="digits"), args.run)
    space = get_space("autoformer-digits")
    result: dict = {"space": space.key, "machine": {"cpu": cpu_model(), "torch": torch.__version__}}

    result["joint_feasibility"] = brute = brute_force_agreement(args.trials)
    print(
        f"joint feasibility vs brute force ({brute['space_archs']} archs, 3 random tables): {brute['agree']}/"
        f"{brute['trials']} agree ({brute['feasible_trials']} feasible), median {brute['median_check_ms']:.1f} ms\n"
    )

    # the second setup: 2 threads
    t2_path = args.work / "cpu-t2_onnxruntime_fp32_bs1_t2.csv"
    start = time.perf_counter()
    profile_space(space, ProfileSettings(device="cpu-t2", threads=2), t2_path)
    tables = [resolve_table(space, device="cpu", table=SHIPPED, progress=False), LatencyTable.load(t2_path)]
    result["profile_cpu_t2_seconds"] = round(time.perf_counter() - start, 1)
    predictors = [LatencyPredictor(t, space) for t in tables]
    sample = list({a.digest: a for a in (space.sample(random.Random(i)) for i in range(2000))}.values())
    spans = [p.predict_many(sample) for p in predictors]

    # 2. a search under budgets on both devices, measured end to end
    limits = [round(float(np.quantile(ms, 0.4)), 4) for ms in spans]
    both = hwnas.search(
        args.run,
        latency_ms=limits,
        device=["cpu", "cpu-t2"],
        table=tables,
        measure=True,
        population=20,
        generations=10,
        parents=5,
        out=args.work / "both",
        progress=False,
    )
    repeats = {
        t.device: measure_archs_apart(
            space, t, [both.best], args.work / f"floor-{t.device}", [None, None], progress=False
        )
        for t in tables
    }
    rows = []
    for t, limit in zip(tables, limits):
        measured = both.report["measured_by_device"][t.device]["measured_latency_ms"]
        again = [float(m[0]) for m in repeats[t.device]]
        rows.append(
            {
                "device": t.device,
                "threads": t.fingerprint["threads"],
                "budget_ms": limit,
                "predicted_ms": both.report["predicted_latency_by_device"][t.device]["latency_ms"],
                "measured_ms": measured,
                "measured_again_ms": again,
                "measured_over_budget_pct": 100 * (measured / limit - 1),
                "floor_pct": 100 * abs(again[0] - again[1]) / min(again),
            }
        )
    result["two_devices"] = {
        "arch": both.best.to_dict(),
        "top1_test": both.report["top1_test"],
        "devices": rows,
        "kendall_tau_of_the_two_tables": float(kendalltau(spans[0], spans[1]).statistic),
    }
    print(
        "| device | budget (ms) | predicted | measured | again (2 processes) | over budget | floor |\n|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['device']} ({r['threads']} thread(s)) | {r['budget_ms']:.4f} | {r['predicted_ms']:.4f} | "
            f"{r['measured_ms']:.4f} | {', '.join(f'{m:.4f}' for m in r['measured_again_ms'])} | "
            f"{r['measured_over_budget_pct']:+.1f}% | {r['floor_pct']:.1f}% |"
        )

    # 3. NSGA-II (one run) against evolution (one run per budget), the same evaluations in all
    budgets = [round(float(np.quantile(spans[0], q)), 4) for q in (0.25, 0.5, 0.75)]
    per_run = args.evaluations // len(budgets)
    runs = []
    for seed in args.seeds:
        nsga = hwnas.search(
            args.run,
            latency_ms=budgets,
            device="cpu",
            table=tables[0],
            strategy="nsga2",
            population=30,
            generations=args.evaluations // 30,
            seed=seed,
            out=args.work / f"nsga2-seed{seed}",
            progress=False,
        )
        evo = [
            hwnas.search(
                args.run,
                latency_ms=b,
                device="cpu",
                table=tables[0],
                population=20,
                generations=per_run // 20,
                parents=5,
                seed=seed,
                out=args.work / f"evolution-{b}-seed{seed}",
                progress=False,
            )
            for b in budgets
        ]
        union = pd.concat([e.history for e in evo], ignore_index=True)
        runs.append(
            {
                "seed": seed,
                "nsga2": {
                    "evaluations": nsga.report["evaluations"],
                    "hypervolume": hypervolume(nsga.history, budgets[-1]),
                    "winners": [
                        {
                            "budget_ms": b,
                            "top1_search_val": w.get("top1_search_val", float("nan")),
                            "top1_test": w.get("top1_test", float("nan")),
                            "predicted_ms": (w.get("predicted_latency") or {}).get("latency_ms"),
                        }
                        for b, w in zip(budgets, nsga.report["per_budget"])
                    ],
                },
                "evolution": {
                    "evaluations": len(union),
                    "hypervolume": hypervolume(union, budgets[-1]),
                    "winners": [
                        {
                            "budget_ms": b,
                            "top1_search_val": e.report["top1_search_val"],
                            "top1_test": e.report["top1_test"],
                            "predicted_ms": e.report["predicted_latency"]["latency_ms"],
                        }
                        for b, e in zip(budgets, evo)
                    ],
                },
                "_histories": (nsga.history, union),
            }
        )
    print(
        f"\nNSGA-II (one run) vs evolution (one run per budget), {args.evaluations} evaluations each, budgets "
        f"{budgets} ms on cpu\n| seed | method | evaluations | hypervolume | "
        + " | ".join(f"{b} ms: val / test" for b in budgets)
        + " |\n|---|---|---|---|"
        + "---|" * len(budgets)
    )
    for r in runs:
        for method in ("nsga2", "evolution"):
            m = r[method]
            cells = " | ".join(f"{w['top1_search_val']:.2f} / {w['top1_test']:.2f}" for w in m["winners"])
            print(f"| {r['seed']} | {method} | {m['evaluations']} | {m['hypervolume']:.2f} | {cells} |")
    histories = runs[0].pop("_histories")
    for r in runs[1:]:
        r.pop("_histories")
    result["front"] = {
        "budgets_ms": budgets,
        "evaluations": args.evaluations,
        "seeds": runs,
        "hypervolume_mean": {m: statistics.mean(r[m]["hypervolume"] for r in runs) for m in ("nsga2", "evolution")},
    }
    result["plot"] = str(plot(histories, budgets, args.out.with_suffix(".png")))

    # 4. tail latency: the shipped table's p90 prediction, validated as its p50 one is
    report = validate_table(
        space, tables[0], n=50, seed=0, out=args.work / "validate-p90", progress=False, statistic="p90_ms"
    )
    result["p90_validation"] = {
        "calibrated_worst": worst(report["calibrated"]),
        "floor_worst": worst(report["floor_process_vs_process"]),
        "calibration": report["calibration"],
        "measured_ms_range": report["measured_ms_range"],
    }
    c, f = result["p90_validation"]["calibrated_worst"], result["p90_validation"]["floor_worst"]
    print(
        f"\np90 on {space.key} (50 subnets, 2 processes, worst): MAPE {c['mape_pct']:.1f}%, within 10% "
        f"{c['within_10pct']:.0f}%, tau {c['kendall_tau']:.3f}; floor MAPE {f['mape_pct']:.1f}%, within 10% "
        f"{f['within_10pct']:.0f}%, tau {f['kendall_tau']:.3f}"
    )
    result["setups"] = {
        t.device: {k: setup_of(t).get(k) for k in ("backend", "backend_version", "threads")} for t in tables
    }
    atomic_write_json(args.out, {**result, "provenance": provenance()})
    print(f"\nwrote {args.out}")


def plot(histories, budgets: list[float], path: Path) -> Path:
    fig, ax = figure(7, 4.5)
    for history, label, colour in zip(
        histories, ("NSGA-II, one run", "evolution, one run per budget"), ("tab:red", "tab:blue")
    ):
        ax.scatter(history["latency_ms"], history["top1_search_val"], s=8, alpha=0.35, color=colour)
        front = pareto_front(history, ["latency_ms"])
        ax.step(front["latency_ms"], front["top1_search_val"], where="post", color=colour, label=label)
    for b in budgets:
        ax.axvline(b, color="k", ls="--", lw=0.8)
    ax.set_xlabel("predicted latency on cpu (ms)")
    ax.set_ylabel("search-val top-1 (%)")
    ax.set_title("seed 0: evaluated archs and fronts (dashed: the budgets)", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
