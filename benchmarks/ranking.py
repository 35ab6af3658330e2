"""Does the supernet rank subnets as training them alone would? Kendall tau between inherited and
standalone test top-1 for 10 archs of autoformer-digits spread over its CPU latency range, each
trained alone from scratch (`hwnas finetune --from-scratch`, the supernet's budget) with two seeds,
whose own agreement is the noise floor beside it; and first, the searched subnet fine-tuned from
its inherited weights (`hwnas finetune`), 3 seeds: test top-1 before and after. Prints tables,
writes JSON and a PNG. The JSON is rewritten after each arch (`archs_done`), and a rerun reuses
every finished (or resumes an unfinished) training under `--run`/ranking.

    .venv/bin/python benchmarks/ranking.py [--run runs/bench_samplers/uniform-seed0] [--archs 10]
    .venv/bin/python benchmarks/ranking.py --rescore   # the summary taus again from the JSON's archs
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py
from samplers import trained  # the digits supernets these benchmarks share: trained, resumed or reused
from scipy.stats import kendalltau

import hwnas
from hwnas.io import atomic_write_json
from hwnas.latency import LatencyPredictor
from hwnas.latency.resolve import resolve_table
from hwnas.plots import figure, save_figure
from hwnas.profilers.protocol import cpu_model
from hwnas.training import TrainConfig
from hwnas.training.finetune import REPORT, FinetuneConfig, finetune

CANDIDATES = 2000  # random archs the 10 are picked from, by predicted latency


def finetuned(config: FinetuneConfig, folder: Path) -> dict:
    """The fine-tuning's report: reused when `folder` holds a finished one, else trained (resumed)."""
    if (folder / REPORT).is_file():
        return json.loads((folder / REPORT).read_text())
    return finetune(config, folder, resume=(folder / "checkpoint.pt").is_file(), progress=False)


def one_thread() -> None:
    """Each job on one core: small models train faster as parallel one-thread processes."""
    torch.set_num_threads(1)


def spread_archs(space: hwnas.SearchSpace, predictor: LatencyPredictor, n: int) -> list[tuple[float, hwnas.Arch]]:
    """`n` distinct archs at evenly spaced quantiles (5% to 95%) of predicted latency."""
    rng = random.Random(0)
    archs = list({a.digest: a for a in (space.sample(rng) for _ in range(CANDIDATES))}.values())
    ms = predictor.predict_many(archs)
    order = np.argsort(ms)
    picks = [order[int(q * (len(order) - 1))] for q in np.linspace(0.05, 0.95, n)]
    return [(float(ms[i]), archs[i]) for i in picks]


def taus(rows: list[dict]) -> dict[str, float | None]:
    """Kendall tau against standalone top-1 (mean of the seeds) of the inherited top-1 and, the
    baseline a proxy must beat, of the parameter count; and the seeds against each other (the floor)."""
    standalone = [statistics.mean(r["standalone_test_top1"].values()) for r in rows]
    seeds = [[r["standalone_test_top1"][s] for r in rows] for s in rows[0]["standalone_test_top1"]] if rows else []
    enough = len(rows) > 2
    return {
        "kendall_tau_inherited_vs_standalone": (
            kendalltau([r["inherited_test_top1"] for r in rows], standalone).statistic if enough else None
        ),
        "kendall_tau_params_vs_standalone": kendalltau([r["params"] for r in rows], standalone).statistic
        if enough
        else None,
        "kendall_tau_standalone_seed_vs_seed": kendalltau(seeds[0], seeds[1]).statistic
        if len(seeds) > 1 and enough
        else None,
    }


def rescore(out: Path) -> None:
    """Recompute the summary taus (and the plot) of a finished `out` from its archs (no training)."""
    result = json.loads(out.read_text())
    result.update(taus(result["archs"]))
    result["plot"] = str(plot(result["archs"], out.with_suffix(".png")))
    atomic_write_json(out, {**result, "provenance_rescore": provenance()})
    print({k: v for k, v in result.items() if k.startswith("kendall_tau")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run",
        type=Path,
        default=Path("runs/bench_samplers/uniform-seed0"),
        help="a digits supernet run (trained with the default budget when missing)",
    )
    parser.add_argument("--archs", type=int, default=10)
    parser.add_argument("--standalone-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--finetune-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ranking.json"))
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="standalone trainings run at once, one thread each (the machine's cores: 2 here)",
    )
    parser.add_argument(
        "--rescore", action="store_true", help="only recompute the summary taus of --out from its archs"
    )
    args = parser.parse_args()
    if args.rescore:
        rescore(args.out)
        return
    run = trained(TrainConfig(space="autoformer-digits", data="digits"), args.run)
    space, net = run.space, run.supernet()
    table = resolve_table(space, device="cpu", progress=False)
    predictor = LatencyPredictor(table, space)
    picks = spread_archs(space, predictor, args.archs)
    result: dict = {
        "space": space.key,
        "run_config": run.config.to_dict(),
        "test_images": len(run.split.test),
        "goal_tau": 0.7,
        "machine": {"cpu": cpu_model(), "torch": torch.__version__},
    }

    # the searched subnet fine-tuned from its inherited weights (cheap: first)
    winner = hwnas.search(
        run.dir,
        latency_ms=round(float(np.median([ms for ms, _ in picks])), 3),
        device="cpu",
        table=table,
        population=20,
        generations=10,
        parents=5,
        out=args.run / "ranking" / "search",
        progress=False,
    )
    tuned = []
    for seed in args.finetune_seeds:
        report = finetuned(
            FinetuneConfig(run=str(run.dir), arch=winner.best.to_dict(), seed=seed),
            args.run / "ranking" / f"finetune-{winner.best.digest}-seed{seed}",
        )
        tuned.append(
            {
                "seed": seed,
                "before": report["before"],
                "after": report["after"],
                "epochs": report["config"]["epochs"],
                "lr": report["config"]["lr"],
            }
        )
    result["finetune"] = {
        "arch": winner.best.to_dict(),
        "budget_ms": winner.report["budget"]["latency_ms"]["limit"],
        "seeds": tuned,
        "raises_test_top1_every_seed": all(t["after"]["test"]["top1"] > t["before"]["test"]["top1"] for t in tuned),
    }
    atomic_write_json(args.out, {**result, "provenance": provenance()})
    print("| seed | test top-1 inherited | after fine-tuning | search-val before | after |\n|---|---|---|---|---|")
    for t in tuned:
        print(
            f"| {t['seed']} | {t['before']['test']['top1']:.2f}% | {t['after']['test']['top1']:.2f}% | "
            f"{t['before']['search_val']['top1']:.2f}% | {t['after']['search_val']['top1']:.2f}% |"
        )

    # ranking: each arch trained alone from scratch; the JSON is rewritten after each (a rerun reuses them)
    pool = (
        ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"), initializer=one_thread)
        if args.jobs > 1
        else None
    )
    trainings = {
        (arch.digest, seed): (
            FinetuneConfig(run=str(run.dir), arch=arch.to_dict(), from_scratch=True, seed=seed),
            args.run / "ranking" / f"{arch.digest}-seed{seed}",
        )
        for _, arch in picks
        for seed in args.standalone_seeds
    }
    pending = {key: pool.submit(finetuned, *job) for key, job in trainings.items()} if pool else {}
    rows: list[dict] = []
    for k, (ms, arch) in enumerate(picks):
        row = {
            "arch": arch.to_dict(),
            "digest": arch.digest,
            "predicted_ms": ms,
            "params": arch.params(),
            "inherited_test_top1": run.top1(arch, "test", net),
            "standalone_test_top1": {},
        }
        for seed in args.standalone_seeds:
            key = (arch.digest, seed)
            report = pending[key].result() if pool else finetuned(*trainings[key])
            row["standalone_test_top1"][str(seed)] = report["after"]["test"]["top1"]
        rows.append(row)
        print(
            f"arch {k + 1}/{args.archs} ({ms:.3f} ms): inherited {row['inherited_test_top1']:.1f}%, standalone "
            + ", ".join(f"{v:.1f}%" for v in row["standalone_test_top1"].values())
        )
        result.update({"archs_done": len(rows), "archs_planned": args.archs, "archs": rows, **taus(rows)})
        if result["kendall_tau_inherited_vs_standalone"] is not None:
            result["plot"] = str(plot(rows, args.out.with_suffix(".png")))
        atomic_write_json(args.out, {**result, "provenance": provenance()})
    print(
        f"\nKendall tau, inherited vs standalone (mean of {len(args.standalone_seeds)} seeds): "
        f"{result['kendall_tau_inherited_vs_standalone']}; #params vs standalone: "
        f"{result['kendall_tau_params_vs_standalone']} (the baseline); standalone seed vs seed: "
        f"{result['kendall_tau_standalone_seed_vs_seed']} (the noise floor)\nwrote {args.out}"
    )


def plot(rows: list[dict], path: Path) -> Path:
    t = taus(rows)
    tau, floor, params = (
        t[f"kendall_tau_{k}"] for k in ("inherited_vs_standalone", "standalone_seed_vs_seed", "params_vs_standalone")
    )
    fig, ax = figure(6, 4.5)
    ms = [r["predicted_ms"] for r in rows]
    standalone = [statistics.mean(r["standalone_test_top1"].values()) for r in rows]
    points = ax.scatter([r["inherited_test_top1"] for r in rows], standalone, c=ms, cmap="viridis")
    fig.colorbar(points, ax=ax, label="predicted CPU latency (ms)")
    ax.set_xlabel("inherited test top-1 (%)")
    ax.set_ylabel("standalone test top-1 (%), mean of seeds")
    seeds = f", seed vs seed {floor:.2f}" if floor is not None else ""
    ax.set_title(f"Kendall tau {tau:.2f} (#params: {params:.2f}{seeds})")
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
