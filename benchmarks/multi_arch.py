"""Multi-architectural sampling (ViT-ResNAS) against uniform single-path sampling on resnas-digits:
training throughput (images and subnets per second) and, after the same wall-clock budget for each
sampling, the test top-1 of the largest, smallest and 5 random subnets with inherited weights.
Prints a table, writes JSON and a bar plot.

    .venv/bin/python benchmarks/multi_arch.py [--space resnas-digits] [--archs 2 4 8] [--out benchmarks/results/multi_arch.json]

The budget is the wall time of the space's default digits budget (40 epochs) under uniform
sampling; every other sampling trains for as many whole epochs as its measured step time fits in it.

With `--processes N` (N > 1) it measures data-parallel multi steps instead: N gloo processes on
this CPU run `--steps` optimiser steps of the trainer's step model (DDP over the masked pass, the
digits batch per process, AdamW), each rank logging the subnets it trained; per M of `--archs`,
with every process drawing its own subnets (the default) and with `--shared-draws`. It counts the
distinct subnets of every optimiser step across the ranks' logs (M x N when each draws its own),
times the steps (images per second over all processes) and checks that the replicas stay equal.

    .venv/bin/python benchmarks/multi_arch.py --processes 2 --archs 4 [--steps 30] [--out benchmarks/results/multi_arch_ddp.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas.io import atomic_write_json
from hwnas.plots import figure, save_figure
from hwnas.profilers.protocol import cpu_model
from hwnas.spaces import get_space
from hwnas.supernet import build_supernet
from hwnas.training import TrainConfig, TrainedRun, train
from hwnas.training.multi_arch import step_model
from hwnas.training.sampling import step_archs

WARMUP_STEPS = 2  # steps before the timed ones (allocations, DDP's first buckets)


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


def ddp_rank(rank: int, processes: int, folder: str, space_name: str, archs: int, shared: bool, steps: int) -> None:
    """One rank of the data-parallel measurement: `steps` timed multi steps (after `WARMUP_STEPS`)
    through the trainer's step model; writes the digests of the subnets it trained per step, its
    step times and a checksum of its weights to `folder`/rank{rank}.json."""
    import torch.distributed as dist

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // processes))
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=processes)
    space = get_space(space_name)
    config = TrainConfig(
        space=space_name, data="digits", sampling="multi", archs_per_batch=archs, shared_draws=shared
    ).with_defaults(space)
    torch.manual_seed(config.seed)
    supernet = build_supernet(space).train()
    model = step_model(supernet, per_example=True, distributed=True)
    opt = torch.optim.AdamW(supernet.parameters(), lr=1e-4)
    data = torch.Generator().manual_seed(rank)
    size = space.spec.img_size
    x = torch.randn(config.batch_size, space.spec.in_chans, size, size, generator=data)
    y = torch.randint(0, space.spec.num_classes, (config.batch_size,), generator=data)
    trained, seconds = [], []
    for step in range(WARMUP_STEPS + steps):
        began = time.perf_counter()
        subnets = step_archs(
            space, "multi", config.seed, step, archs_per_batch=archs, rank=config.draw_rank(rank), spread=config.spreads
        )
        loss = F.cross_entropy(model(x, subnets)[0], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # DDP all-reduces here: every rank leaves with the mean gradient
        opt.step()
        if step >= WARMUP_STEPS:
            seconds.append(time.perf_counter() - began)
            trained.append([a.digest for a in subnets])
    checksum = float(sum(p.detach().double().sum() for p in supernet.parameters()))
    dist.destroy_process_group()
    Path(folder, f"rank{rank}.json").write_text(
        json.dumps({"archs": trained, "seconds": seconds, "checksum": checksum, "batch_size": config.batch_size})
    )


def data_parallel(space_name: str, archs: int, shared: bool, processes: int, steps: int) -> dict[str, Any]:
    """The ranks' logs of one data-parallel run, summed up: distinct subnets per optimiser step and
    images per second (every rank's step time is the step's: DDP waits for the slowest)."""
    with tempfile.TemporaryDirectory() as folder:
        torch.multiprocessing.spawn(
            ddp_rank, args=(processes, folder, space_name, archs, shared, steps), nprocs=processes
        )
        ranks = [json.loads(Path(folder, f"rank{r}.json").read_text()) for r in range(processes)]
    distinct = [len({d for rank in ranks for d in rank["archs"][i]}) for i in range(steps)]
    step_s = statistics.median(max(rank["seconds"][i] for rank in ranks) for i in range(steps))
    batch = ranks[0]["batch_size"]
    return {
        "archs_per_batch": archs,
        "draws": "shared" if shared else "per process",
        "subnets_per_step": archs * processes,
        "distinct_subnets_per_step": {
            "mean": statistics.mean(distinct),
            "min": min(distinct),
            "max": max(distinct),
        },
        "step_seconds": step_s,
        "images_per_second": processes * batch / step_s,
        "distinct_subnets_per_second": statistics.mean(distinct) / step_s,
        "replicas_equal": len({rank["checksum"] for rank in ranks}) == 1,
    }


def main_data_parallel(args: argparse.Namespace) -> None:
    space = get_space(args.space)
    batch = TrainConfig(space=args.space, data="digits").with_defaults(space).batch_size
    rows = [
        data_parallel(args.space, m, shared, args.processes, args.steps) for m in args.archs for shared in (False, True)
    ]
    result = {
        "space": args.space,
        "processes": args.processes,
        "batch_size_per_process": batch,
        "steps": args.steps,
        "rows": rows,
        "machine": {"cpu_model": cpu_model(), "threads_per_process": max(1, (os.cpu_count() or 1) // args.processes)},
    }
    fig, (ax_distinct, ax_rate) = figure(11, 4, ncols=2)
    names = [f"M={r['archs_per_batch']} {r['draws']}" for r in rows]
    ax_distinct.bar(names, [r["distinct_subnets_per_step"]["mean"] for r in rows])
    ax_distinct.set_ylabel(f"distinct subnets per optimiser step ({args.processes} processes)")
    ax_rate.bar(names, [r["images_per_second"] for r in rows])
    ax_rate.set_ylabel("images per second, all processes")
    for ax in (ax_distinct, ax_rate):
        ax.tick_params(axis="x", labelrotation=30)
    out = args.out or Path("benchmarks/results/multi_arch_ddp.json")
    plot = out.with_suffix(".png")
    save_figure(fig, plot)
    result["plot"] = str(plot)
    atomic_write_json(out, {**result, "provenance": provenance()})
    print(f"{args.space}, {args.processes} processes, batch {batch} per process, {args.steps} steps, {cpu_model()}")
    print(f"{'M':>3} {'draws':<12} {'subnets':>7} {'distinct':>8} {'min':>4} {'step ms':>8} {'img/s':>7} {'equal':>6}")
    for r in rows:
        d = r["distinct_subnets_per_step"]
        print(
            f"{r['archs_per_batch']:>3} {r['draws']:<12} {r['subnets_per_step']:>7} {d['mean']:>8.2f} {d['min']:>4} "
            f"{1e3 * r['step_seconds']:>8.1f} {r['images_per_second']:>7.0f} {str(r['replicas_equal']):>6}"
        )
    print(f"wrote {out} and {plot}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="resnas-digits")
    parser.add_argument("--archs", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--runs", type=Path, default=Path("runs/bench_multi_arch"))
    parser.add_argument(
        "--out", type=Path, default=None, help="default: benchmarks/results/multi_arch.json (multi_arch_ddp.json)"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="> 1: data-parallel multi steps in that many processes"
    )
    parser.add_argument("--steps", type=int, default=30, help="--processes: timed optimiser steps per run")
    args = parser.parse_args()
    if args.processes > 1:
        main_data_parallel(args)
        return
    args.out = args.out or Path("benchmarks/results/multi_arch.json")
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
