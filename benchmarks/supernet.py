"""Supernet training on digits with the default budget: inherited top-1 on the test split of the
largest, smallest and random subnets, and the cost of weight slicing (a training step of a sampled
subnet on the supernet vs the same step on its extracted static model). Prints a table, writes JSON.

    .venv/bin/python benchmarks/supernet.py [--sampling uniform|sandwich] [--out benchmarks/results/supernet.json]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time
from pathlib import Path

import torch
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas.io import atomic_write_json
from hwnas.profilers.protocol import cpu_model
from hwnas.training import TrainConfig, TrainedRun, train


def step_seconds(model, forward, x, y, repeats: int = 10) -> float:
    """Median seconds of one forward + backward + AdamW step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:  # the first calls allocate optimizer state
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="autoformer-digits")
    parser.add_argument("--sampling", default="uniform", choices=["uniform", "sandwich"])
    parser.add_argument("--run", type=Path, default=Path("runs/bench_supernet"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/supernet.json"))
    parser.add_argument("--random", type=int, default=5, help="random subnets scored on the test split")
    args = parser.parse_args()
    shutil.rmtree(args.run, ignore_errors=True)
    start = time.perf_counter()
    report = train(TrainConfig(space=args.space, data="digits", sampling=args.sampling), args.run)
    train_seconds = time.perf_counter() - start

    run = TrainedRun(args.run)
    net = run.supernet()
    space = run.space
    rng = random.Random(0)
    archs = {
        "largest": space.largest(),
        "smallest": space.smallest(),
        "middle": space.middle(),
        **{f"random-{i}": space.sample_distinct(rng) for i in range(args.random)},
    }
    test_top1 = {name: run.top1(arch, "test", net) for name, arch in archs.items()}
    randoms = [v for k, v in test_top1.items() if k.startswith("random")]

    torch.set_num_threads(1)
    s = space.spec
    x, y = torch.randn(32, s.in_chans, s.img_size, s.img_size), torch.randint(0, s.num_classes, (32,))
    ratios = []
    for arch in [space.largest(), space.smallest(), *(space.sample_distinct(rng) for _ in range(4))]:
        static = net.extract(arch).train()
        net.train()
        t_super = step_seconds(net, lambda inp: net(inp, arch), x, y)  # noqa: B023  (called here)
        t_static = step_seconds(static, static, x, y)
        ratios.append(t_super / t_static)

    result = {
        "space": space.key,
        "sampling": args.sampling,
        "config": report["config"],
        "train_seconds": round(train_seconds, 1),
        "test_top1": test_top1,
        "largest_minus_worst_random": test_top1["largest"] - min(randoms),
        "step_time_ratio_supernet_over_static": {
            "median": statistics.median(ratios),
            "max": max(ratios),
            "per_arch": ratios,
        },
        "learning_curve": report["plot"],
        "machine": {"cpu": cpu_model(), "torch": torch.__version__},
    }
    curve = shutil.copy(report["plot"], args.out.with_name(f"{args.out.stem}_curve.png"))
    result["learning_curve"] = str(curve)
    atomic_write_json(args.out, {**result, "provenance": provenance()})
    print(f"{space.key}, {args.sampling} sampling, default budget: trained in {train_seconds:.0f} s")
    print("| subnet | test top-1 |\n|---|---|")
    for name, acc in test_top1.items():
        print(f"| {name} | {acc:.1f}% |")
    r = result["step_time_ratio_supernet_over_static"]
    print(f"\nstep time supernet / static (batch 32, 1 thread): median {r['median']:.2f}x, max {r['max']:.2f}x")
    print(f"wrote {args.out}; learning curve {curve}")


if __name__ == "__main__":
    main()
