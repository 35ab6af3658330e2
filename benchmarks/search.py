"""Search on a digits supernet (AutoFormer's by default, `--space glit-digits` for GLiT's) under a
CPU latency budget: scoring speed, evolution against random search (and hierarchical) over 3 seeds
at the same number of evaluations, a hand-designed uniform subnet of the same budget, and the
winner's latency measured end to end against the budget. Prints a table, writes JSON and a
best-so-far plot.

    .venv/bin/python benchmarks/search.py [--run runs/bench_search] [--seeds 0 1 2]
    .venv/bin/python benchmarks/search.py --space glit-digits --run runs/bench_glit --population 12 --generations 8 \
        --out benchmarks/results/search_glit.json
    .venv/bin/python benchmarks/search.py --space glit-digits --run runs/bench_glit --out benchmarks/results/search_glit.json \
        --remeasure [--processes 4]   # the winners and the hand design again, together, in fresh processes
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

import hwnas
from hwnas.io import atomic_write_json
from hwnas.latency import LatencyPredictor
from hwnas.latency.measure import measure_archs, measure_archs_apart
from hwnas.latency.resolve import resolve_table
from hwnas.plots import figure, save_figure
from hwnas.profilers.protocol import cpu_model
from hwnas.subnet_search import Costs
from hwnas.training import TrainConfig, TrainedRun, train
from hwnas.training.checkpoint import WEIGHTS

STRATEGIES = ("evolution", "random", "hierarchical")


def predictions_per_second(predictor: LatencyPredictor, space: hwnas.SearchSpace, n: int = 100_000) -> float:
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(n)]
    predictor.predict_many(archs[:1000])  # warm
    start = time.perf_counter()
    predictor.predict_many(archs)
    return n / (time.perf_counter() - start)


def uniform_baseline(space: hwnas.SearchSpace, predictor: LatencyPredictor, budget: float) -> hwnas.Arch:
    """The hand-designed reference: DeiT-style (every layer alike), the costliest such arch within
    the budget, the most parameters first (a designer's usual reading of 'as big as fits')."""
    uniform = space.uniform_archs()
    fits = [(ms, a) for ms, a in zip(predictor.predict_many(uniform), uniform) if ms <= budget]
    return max(fits, key=lambda t: (t[0], t[1].params()))[1]


def remeasure(run_dir: Path, out: Path, processes: int) -> None:
    """The search process measures each evolution winner alone right after its search (a group of
    one model: 8 rounds within about 2 s, so one slow phase of the machine covers all of them);
    here every winner and the hand design are timed together, in `processes` fresh processes."""
    result = json.loads(out.read_text())
    run = TrainedRun(run_dir)
    space = run.space
    table = resolve_table(space, device="cpu")
    entries = [*result["searches"], result["hand_designed_uniform"]]
    keys = [json.dumps(e["arch"], sort_keys=True) for e in entries]
    distinct = list(dict.fromkeys(keys))  # each winner once
    measured = measure_archs_apart(
        space,
        table,
        [hwnas.Arch.from_dict(json.loads(k), space) for k in distinct],
        run_dir / "search" / "remeasure",
        protocols=(None,) * processes,
    )
    for e, key in zip(entries, keys):
        e["measured_apart_ms"] = [float(m[distinct.index(key)]) for m in measured]
    atomic_write_json(out, {**result, "provenance_remeasure": provenance()})
    print(
        f"budget {result['budget_ms']} ms\n| strategy | seed | predicted ms | measured alone | {processes} fresh processes |"
    )
    print("|---|---|---|---|---|")
    for e in entries:
        alone = f"{e['measured_ms']:.3f}" if e.get("measured_ms") else "-"
        print(
            f"| {e.get('strategy', 'hand-designed uniform')} | {e.get('seed', '-')} | {e['predicted_ms']:.3f} | {alone} | "
            f"{' / '.join(f'{m:.3f}' for m in e['measured_apart_ms'])} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="autoformer-digits")
    parser.add_argument("--run", type=Path, default=Path("runs/bench_search"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--budget-frac",
        type=float,
        default=0.4,
        help="latency budget as a fraction of the way from the fastest to the slowest subnet",
    )
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/search.json"))
    parser.add_argument(
        "--remeasure",
        action="store_true",
        help="only measure the winners of --out's searches and its hand design again, all together, "
        "in --processes fresh processes, and add those figures to --out",
    )
    parser.add_argument("--processes", type=int, default=2, help="with --remeasure: fresh processes, one after another")
    args = parser.parse_args()
    if args.remeasure:
        remeasure(args.run, args.out, args.processes)
        return
    train_seconds = None
    if not (args.run / WEIGHTS).is_file() or not (args.run / "checkpoint.pt").is_file():
        start = time.perf_counter()
        train(TrainConfig(space=args.space, data="digits"), args.run, resume=(args.run / "checkpoint.pt").is_file())
        train_seconds = round(time.perf_counter() - start, 1)
    run = TrainedRun(args.run)
    space = run.space
    if space.name != args.space:
        raise SystemExit(f"{args.run} trained {space.name}, not {args.space}; give another --run")
    table = resolve_table(space, device="cpu")  # as it holds here (spot-checked when this setup differs)
    predictor = LatencyPredictor(table, space)
    costs = Costs(space, predictor)
    low, high = (
        float(predictor.predict(space.extreme_arch(costs.block_cost("latency_ms"), costliest=c)).latency_ms)
        for c in (False, True)
    )
    budget = round(low + args.budget_frac * (high - low), 3)
    rate = predictions_per_second(predictor, space)

    rows, curves = [], {}
    for strategy in STRATEGIES:
        for seed in args.seeds:
            out = args.run / "search" / f"bench-{strategy}-seed{seed}"
            start = time.perf_counter()
            result = hwnas.search(
                args.run,
                latency_ms=budget,
                device="cpu",
                strategy=strategy,
                seed=seed,
                out=out,
                population=args.population,
                generations=args.generations,
                measure=strategy == "evolution",
            )
            r = result.report
            rows.append(
                {
                    "strategy": strategy,
                    "seed": seed,
                    "evaluations": r["evaluations"],
                    "seconds": round(time.perf_counter() - start, 1),
                    "search_val_top1": r["top1_search_val"],
                    "test_top1": r["top1_test"],
                    "predicted_ms": r["predicted_latency"]["latency_ms"],
                    "measured_ms": r.get("measured_latency_ms"),
                    "arch": r["arch"],
                    "notes": r["notes"],
                }
            )
            curves[(strategy, seed)] = np.maximum.accumulate(result.history["top1_search_val"].to_numpy())

    hand = uniform_baseline(space, predictor, budget)
    net = run.supernet()
    hand_measured = measure_archs(space, table, [hand], args.run / "search" / "measure-hand", progress=False)
    reference = {
        "arch": hand.to_dict(),
        "predicted_ms": float(predictor.predict(hand).latency_ms),
        "measured_ms": float(hand_measured[0]),
        "search_val_top1": run.top1(hand, "search_val", net),
        "test_top1": run.top1(hand, "test", net),
    }
    evo = [r for r in rows if r["strategy"] == "evolution"]
    rnd = {r["seed"]: r for r in rows if r["strategy"] == "random"}
    result = {
        "space": space.key,
        "run": str(args.run),
        "train_seconds": train_seconds,
        "table": table.name,
        "budget_ms": budget,
        "population": args.population,
        "generations": args.generations,
        "space_latency_ms": [low, high],
        "predictions_per_second": rate,
        "searches": rows,
        "hand_designed_uniform": reference,
        "evolution_ge_random_every_seed": all(r["search_val_top1"] >= rnd[r["seed"]]["search_val_top1"] for r in evo),
        "worst_measured_over_budget_pct": max(100 * (r["measured_ms"] / budget - 1) for r in evo),
        "machine": {"cpu": cpu_model(), "torch": torch.__version__, "threads": torch.get_num_threads()},
    }
    fig, ax = figure(7, 4.5)
    colours = {"evolution": "tab:blue", "random": "tab:gray", "hierarchical": "tab:green"}
    for (strategy, seed), curve in curves.items():
        ax.plot(
            np.arange(1, len(curve) + 1),
            curve,
            color=colours[strategy],
            lw=1.2,
            alpha=0.8,
            label=strategy if seed == args.seeds[0] else None,
        )
    ax.axhline(reference["search_val_top1"], color="k", ls=":", label="hand-designed uniform subnet")
    ax.set_xlabel("archs evaluated")
    ax.set_ylabel("best search-val top-1 so far (%)")
    ax.set_title(f"{space.key}, predicted CPU latency <= {budget} ms, seeds {args.seeds}", fontsize=9)
    ax.legend(fontsize=8)
    result["plot"] = str(save_figure(fig, args.out.with_suffix(".png")))
    atomic_write_json(args.out, {**result, "provenance": provenance()})

    print(f"{space.key}: budget {budget} ms (subnets span {low:.3f}-{high:.3f} ms); {rate:,.0f} latency predictions/s")
    print("| strategy | seed | evaluations | time (s) | search-val top-1 | test top-1 | predicted ms | measured ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        measured = f"{r['measured_ms']:.3f}" if r["measured_ms"] else "-"
        print(
            f"| {r['strategy']} | {r['seed']} | {r['evaluations']} | {r['seconds']:.0f} | {r['search_val_top1']:.2f}% | "
            f"{r['test_top1']:.2f}% | {r['predicted_ms']:.3f} | {measured} |"
        )
    print(
        f"| hand-designed uniform | - | - | - | {reference['search_val_top1']:.2f}% | {reference['test_top1']:.2f}% | "
        f"{reference['predicted_ms']:.3f} | {reference['measured_ms']:.3f} |"
    )
    print(
        f"\nevolution >= random on every seed: {result['evolution_ge_random_every_seed']}; "
        f"worst measured vs budget: {result['worst_measured_over_budget_pct']:+.1f}%"
    )
    print(f"wrote {args.out} and {result['plot']}")


if __name__ == "__main__":
    main()
