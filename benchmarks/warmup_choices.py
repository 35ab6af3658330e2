"""ViT-ResNAS's warm-up of choices and rewiring on resnas-digits: the family's digits budget trained
with them (the default) and without (`--no-warmup-choices`), per seed; inherited test top-1 of the
largest, smallest and middle subnets. Runs two trainings at once, one thread each (the machine's 2
cores). Prints a table and writes JSON; a rerun reuses finished trainings under `--run`.

    .venv/bin/python benchmarks/warmup_choices.py [--seeds 0 1 2] [--run runs/bench_warmup]
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py
from samplers import trained  # the digits supernets these benchmarks share: trained, resumed or reused

from hwnas.io import atomic_write_json
from hwnas.spaces import get_space
from hwnas.training import TrainConfig

SUBNETS = ("largest", "smallest", "middle")


def one(space_name: str, warmup: bool, seed: int, folder: Path) -> dict[str, Any]:
    """Train (or reuse) one run on one thread and score its subnets on the test split."""
    torch.set_num_threads(1)
    began = time.perf_counter()
    run = trained(TrainConfig(space=space_name, data="digits", warmup_choices=warmup, seed=seed), folder)
    space, net = get_space(space_name), run.supernet()
    return {
        "warmup_choices": warmup,
        "seed": seed,
        "seconds": round(time.perf_counter() - began, 1),
        "config": run.config.to_dict(),
        **{f"test_top1_{k}": run.top1(getattr(space, k)(), "test", net) for k in SUBNETS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="resnas-digits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--run", type=Path, default=Path("runs/bench_warmup"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/warmup_choices.json"))
    args = parser.parse_args()
    jobs = [(w, s) for s in args.seeds for w in (True, False)]
    with ProcessPoolExecutor(2) as pool:
        runs = list(
            pool.map(
                one,
                [args.space] * len(jobs),
                [w for w, _ in jobs],
                [s for _, s in jobs],
                [args.run / f"{'warmup' if w else 'off'}-seed{s}" for w, s in jobs],
            )
        )
    mean = {
        label: {k: statistics.mean(r[f"test_top1_{k}"] for r in runs if r["warmup_choices"] == w) for k in SUBNETS}
        for label, w in (("warmup", True), ("off", False))
    }
    atomic_write_json(
        args.out,
        {"space": args.space, "seeds": args.seeds, "runs": runs, "mean": mean, "provenance": provenance()},
    )
    print("| warm-up and rewiring | seed | largest | smallest | middle | seconds |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {'on' if r['warmup_choices'] else 'off'} | {r['seed']} | "
            + " | ".join(f"{r[f'test_top1_{k}']:.2f}%" for k in SUBNETS)
            + f" | {r['seconds']:.0f} |"
        )
    for label, m in mean.items():
        print(f"mean {label}: " + ", ".join(f"{k} {v:.2f}%" for k, v in m.items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
