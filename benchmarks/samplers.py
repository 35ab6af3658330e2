"""Samplers on digits: test top-1 (inherited weights) of the smallest, largest and 5 random subnets of
supernets trained with `--sampling uniform` (AutoFormer: each gene uniform, depth first) and
`--sampling distinct` (uniform over distinct archs, which gives the deepest archs most of the steps),
3 seeds each, default digits budget. Prints a table, writes JSON and a PNG.

    .venv/bin/python benchmarks/samplers.py [--space autoformer-digits] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import collections
import random
import statistics
import time
from pathlib import Path

import torch
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas.io import atomic_write_json
from hwnas.plots import figure, save_figure
from hwnas.profilers.protocol import cpu_model
from hwnas.training import TrainConfig, TrainedRun, train
from hwnas.training.checkpoint import CHECKPOINT
from hwnas.training.sampling import step_archs

SAMPLERS = ("uniform", "distinct")
RANDOM_SUBNETS = 5


def trained(config: TrainConfig, folder: Path) -> TrainedRun:
    """The run in `folder`: trained, or finished after a kill (weights and checkpoint are written every
    epoch, so only the checkpoint's epoch tells; a complete run resumes for no epoch)."""
    train(config, folder, resume=(folder / CHECKPOINT).is_file())
    return TrainedRun(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="autoformer-digits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--run", type=Path, default=Path("runs/bench_samplers"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/samplers.json"))
    args = parser.parse_args()
    rows = []
    for sampler in SAMPLERS:
        for seed in args.seeds:
            began = time.perf_counter()
            run = trained(
                TrainConfig(space=args.space, data="digits", sampling=sampler, seed=seed),
                args.run / f"{sampler}-seed{seed}",
            )
            seconds = time.perf_counter() - began
            space, net = run.space, run.supernet()
            rng = random.Random(1000)  # the same random subnets for every run
            subnets = {
                "smallest": space.smallest(),
                "largest": space.largest(),
                **{f"random {i}": space.sample(rng) for i in range(RANDOM_SUBNETS)},
            }
            steps = len(run.split.train) // run.config.batch_size * run.config.epochs
            depths = collections.Counter(step_archs(space, sampler, seed, step)[0].depth for step in range(steps))
            rows.append(
                {
                    "sampling": sampler,
                    "seed": seed,
                    "train_seconds": round(seconds, 1),
                    "steps_per_depth": {str(d): depths[d] for d in sorted(depths)},
                    "subnets": {
                        name: {"depth": arch.depth, "params": arch.params(), "test_top1": run.top1(arch, "test", net)}
                        for name, arch in subnets.items()
                    },
                    "config": run.config.to_dict(),
                }
            )
            print(
                f"{sampler} seed {seed}: "
                + ", ".join(f"{k} {v['test_top1']:.1f}%" for k, v in rows[-1]["subnets"].items())
            )
    names = list(rows[0]["subnets"])
    summary = {
        sampler: {
            name: statistics.mean(r["subnets"][name]["test_top1"] for r in rows if r["sampling"] == sampler)
            for name in names
        }
        for sampler in SAMPLERS
    }
    for sampler in SAMPLERS:
        randoms = [summary[sampler][n] for n in names if n.startswith("random")]
        summary[sampler]["mean of the random subnets"] = statistics.mean(randoms)
    result = {
        "space": args.space,
        "seeds": args.seeds,
        "runs": rows,
        "mean_test_top1": summary,
        "test_images": len(TrainedRun(args.run / f"uniform-seed{args.seeds[0]}").split.test),
        "machine": {"cpu": cpu_model(), "torch": torch.__version__},
    }
    result["plot"] = str(plot(rows, names, args.out.with_suffix(".png")))
    atomic_write_json(args.out, {**result, "provenance": provenance()})
    depth = rows[0]["subnets"]
    print(f"\n| subnet (depth) | {' | '.join(f'{s} (mean of {len(args.seeds)} seeds)' for s in SAMPLERS)} |")
    print("|---|" + "---|" * len(SAMPLERS))
    for name in [*names, "mean of the random subnets"]:
        label = f"{name} ({depth[name]['depth']})" if name in depth else name
        print(f"| {label} | " + " | ".join(f"{summary[s][name]:.2f}%" for s in SAMPLERS) + " |")
    print(f"\nwrote {args.out}")


def plot(rows: list[dict], names: list[str], path: Path) -> Path:
    fig, ax = figure(9, 4)
    width = 0.8 / len(SAMPLERS)
    for k, sampler in enumerate(SAMPLERS):
        for i, name in enumerate(names):
            scores = [r["subnets"][name]["test_top1"] for r in rows if r["sampling"] == sampler]
            ax.scatter(
                [i + (k - 0.5) * width] * len(scores), scores, s=14, color=f"C{k}", label=sampler if i == 0 else None
            )
            ax.plot(
                [i + (k - 0.5) * width - width / 3, i + (k - 0.5) * width + width / 3],
                [statistics.mean(scores)] * 2,
                color=f"C{k}",
            )
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{n}\n(depth {rows[0]['subnets'][n]['depth']})" for n in names], fontsize=8)
    ax.set_ylabel("test top-1 (%), inherited weights")
    ax.set_title("Samplers on digits: each seed a dot, the mean a bar")
    ax.legend()
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
