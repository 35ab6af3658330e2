"""Multi-architectural sampling (ViT-ResNAS) against uniform single-path sampling on resnas-digits:
training throughput (images and subnets per second) and, after the same wall-clock budget for each
sampling, the test top-1 of the largest, smallest and 5 random subnets with inherited weights.
Prints a table, writes JSON and a bar plot.

    .venv/bin/python benchmarks/multi_arch.py [--space resnas-digits] [--archs 2 4 8] [--out benchmarks/results/multi_arch.json]

The budget is the wall time of the space's default digits budget (40 epochs) under uniform
sampling; every other sampling trains for as many whole epochs as its measured step time fits in it.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas.io import atomic_write_json
from hwnas.plots import figure, save_figure
from hwnas.profilers.protocol import cpu_model
from hwnas.spaces import get_space
from hwnas.supernet import build_supernet
from hwnas.training import TrainConfig, TrainedRun, train
from hwnas.training.sampling import step_archs


def step_seconds(space, sampling: str, archs_per_batch: int, batch: int, repeats: int = 12) -> float:
    """Median seconds of one training step (forward, backward, AdamW) of `sampling` on one batch."""
    torch.manual_seed(0)
    net = build_supernet(space).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x, y = (
        torch.randn(batch, 3, space.spec.img_size, space.spec.img_size),
        torch.randint(0, space.spec.num_classes, (batch,)),
    )
    times = []
    for step in range(repeats + 2):
        archs = step_archs(space, sampling, 0, step, archs_per_batch=archs_per_batch)
        began = time.perf_counter()
        logits = net.forward_multi(x, archs) if sampling == "multi" else net(x, archs[0])
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= 2:
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="resnas-digits")
    parser.add_argument("--archs", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--runs", type=Path, default=Path("runs/bench_multi_arch"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/multi_arch.json"))
    args = parser.parse_args()
    space = get_space(args.space)
    base = TrainConfig(space=args.space, data="digits").with_defaults(space)
    batch = base.batch_size
    setups = [("uniform", 1)] + [("multi", m) for m in args.archs]

    rows = []
    for sampling, m in setups:
        seconds = step_seconds(space, sampling, m, batch)
        rows.append(
            {
                "sampling": sampling if sampling == "uniform" else f"multi M={m}",
                "archs_per_batch": m,
                "step_seconds": seconds,
                "images_per_second": batch / seconds,
                "subnets_per_second": m / seconds,
            }
        )

    shutil.rmtree(args.runs, ignore_errors=True)
    rng = random.Random(0)
    probes = {
        "largest": space.largest(),
        "smallest": space.smallest(),
        **{f"random-{i}": space.sample_distinct(rng) for i in range(5)},
    }
    budget_s = None
    for row, (sampling, m) in zip(rows, setups):
        if budget_s is None:
            epochs = base.epochs
        else:  # as many whole epochs as fit in the uniform run's wall time, from the measured step times
            epochs = max(1, int(base.epochs * rows[0]["step_seconds"] / row["step_seconds"]))
        run = args.runs / row["sampling"].replace(" ", "_").replace("=", "")
        config = TrainConfig(
            space=args.space, data="digits", epochs=epochs, sampling=sampling, archs_per_batch=max(m, 2)
        )
        began = time.perf_counter()
        train(config, run)
        wall = time.perf_counter() - began
        budget_s = budget_s or wall
        trained = TrainedRun(run)
        net = trained.supernet()
        top1 = {name: trained.top1(arch, "test", net) for name, arch in probes.items()}
        randoms = [v for k, v in top1.items() if k.startswith("random")]
        row.update(
            epochs=epochs,
            train_seconds=round(wall, 1),
            test_top1=top1,
            random_mean_top1=sum(randoms) / len(randoms),
            subnet_steps=epochs * len(trained.split.train) // batch * m,
        )

    uniform = rows[0]
    result = {
        "space": args.space,
        "batch_size": batch,
        "wall_budget_seconds": round(budget_s, 1),
        "rows": rows,
        "multi_more_subnets_per_second": {
            r["sampling"]: r["subnets_per_second"] / uniform["subnets_per_second"] for r in rows[1:]
        },
        "machine": {"cpu_model": cpu_model(), "threads": torch.get_num_threads()},
    }
    fig, (ax_rate, ax_acc) = figure(11, 4, ncols=2)
    names = [r["sampling"] for r in rows]
    ax_rate.bar(names, [r["subnets_per_second"] for r in rows])
    ax_rate.set_ylabel("subnets trained per second")
    width = 0.25
    for i, key in enumerate(("largest", "smallest")):
        ax_acc.bar([j + i * width for j in range(len(rows))], [r["test_top1"][key] for r in rows], width, label=key)
    ax_acc.bar(
        [j + 2 * width for j in range(len(rows))],
        [r["random_mean_top1"] for r in rows],
        width,
        label="random (mean of 5)",
    )
    ax_acc.set_xticks([j + width for j in range(len(rows))], names)
    ax_acc.set_ylabel("test top-1 (%), same wall-clock budget")
    ax_acc.legend()
    plot = args.out.with_suffix(".png")
    save_figure(fig, plot)
    result["plot"] = str(plot)
    atomic_write_json(args.out, {**result, "provenance": provenance()})
    print(f"{args.space}, batch {batch}, wall budget {budget_s:.0f} s, {cpu_model()}")
    print(
        f"{'sampling':<12} {'step ms':>8} {'img/s':>7} {'subnets/s':>9} {'epochs':>6} {'largest':>8} {'smallest':>8} {'random':>7}"
    )
    for r in rows:
        t = r["test_top1"]
        print(
            f"{r['sampling']:<12} {1e3 * r['step_seconds']:>8.1f} {r['images_per_second']:>7.0f} {r['subnets_per_second']:>9.1f} "
            f"{r['epochs']:>6} {t['largest']:>7.2f}% {t['smallest']:>7.2f}% {r['random_mean_top1']:>6.2f}%"
        )
    print(f"wrote {args.out} and {plot}")


if __name__ == "__main__":
    main()
