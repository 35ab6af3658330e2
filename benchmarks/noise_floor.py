"""How much two measurements of the same subnets disagree, per timing protocol: the floor under
every latency-table target.

Exports `--n` random subnets of a space once, then measures all of them end to end in fresh
processes, the protocols taking turns (A B C A B C ...) so each faces the same machine phases:
- `groups of 8, all rounds`: the protocol before the round filter (the shipped table's until it is
  re-profiled);
- `groups of 8, filtered`: the same, keeping only the rounds within 10% of each model's fastest round;
- `groups of 32, filtered`: the current default (a model's rounds span about a minute, same filter).
The table found for `--device` gives the setup only (backend, threads, precision).
Prints the process-vs-process agreement (MAPE, within +-10%, Kendall tau) of every pair of
processes of one protocol, writes JSON and a scatter plot.

    .venv/bin/python benchmarks/noise_floor.py [--space resnas-digits] [--n 50] [--processes 3]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path

import numpy as np
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas.io import atomic_write_json
from hwnas.latency.bundle import sample_archs
from hwnas.latency.measure import measure_archs_apart, setup_of
from hwnas.latency.resolve import resolve_table
from hwnas.latency.validate import agreement, worst
from hwnas.plots import figure, save_figure
from hwnas.profilers.protocol import Protocol
from hwnas.spaces import get_space

PROTOCOLS = {
    "groups of 8, all rounds": Protocol(group_size=8, round_tolerance=None),
    "groups of 8, filtered": Protocol(group_size=8),
    "groups of 32, filtered": Protocol(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="resnas-digits")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--processes", type=int, default=3, help="processes per protocol")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/noise_floor.json"))
    args = parser.parse_args()
    space = get_space(args.space)
    table = resolve_table(space, device=args.device)
    order = [name for _ in range(args.processes) for name in PROTOCOLS]
    start = time.perf_counter()
    measured = measure_archs_apart(
        space,
        table,
        sample_archs(space, args.n, args.seed),
        args.out.parent / f"noise_floor_{space.key}_work",
        [PROTOCOLS[n] for n in order],
    )
    seconds = time.perf_counter() - start
    by_protocol = {name: [m for n, m in zip(order, measured) if n == name] for name in PROTOCOLS}
    rows = []
    for name, runs in by_protocol.items():
        pairs = [agreement(b, a) for a, b in itertools.combinations(runs, 2)]
        medians = [float(np.median(m)) for m in runs]
        rows.append(
            {
                "protocol": name,
                "settings": PROTOCOLS[name].to_dict(),
                "pairs": pairs,
                "worst_pair": worst(pairs),
                "median_ms": statistics.median(medians),
                "per_process_median_ms": medians,
                "measured_ms": [m.round(6).tolist() for m in runs],
            }
        )
    setup = setup_of(table)
    result = {
        "space": space.key,
        "n": args.n,
        "processes_per_protocol": args.processes,
        "order": order,
        "seconds": round(seconds, 1),
        "protocols": rows,
        "setup": {k: setup.get(k) for k in ("device", "backend", "backend_version", "threads", "cpu_model", "cpu_id")},
    }
    result["plot"] = str(plot(space.key, by_protocol, args.out.with_suffix(".png")))
    atomic_write_json(args.out, {**result, "provenance": provenance()})
    print(f"{args.n} {space.key} subnets, {args.processes} processes per protocol, {seconds:.0f} s\n")
    print("| protocol | median of subnets (ms) | worst pair: MAPE | within ±10% | Kendall τ | all pairs: within ±10% |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        w, shares = r["worst_pair"], ", ".join(f"{p['within_10pct']:.0f}%" for p in r["pairs"])
        print(
            f"| {r['protocol']} | {r['median_ms']:.3f} | {w['mape_pct']:.1f}% | {w['within_10pct']:.0f}% | "
            f"{w['kendall_tau']:.3f} | {shares} |"
        )
    print(f"\nwrote {args.out}")


def plot(space: str, by_protocol: dict[str, list[np.ndarray]], path: Path):
    """One panel per protocol: every other process against its first."""
    fig, axes = figure(4 * len(by_protocol), 4, ncols=len(by_protocol))
    for ax, (name, runs) in zip(np.atleast_1d(axes), by_protocol.items()):
        lo, hi = min(m.min() for m in runs), max(m.max() for m in runs)
        line = np.linspace(lo * 0.95, hi * 1.05, 2)
        ax.plot(line, line, "k-", lw=1)
        ax.fill_between(line, line * 0.9, line * 1.1, color="0.85")
        for i, m in enumerate(runs[1:], start=2):
            ax.scatter(runs[0], m, s=12, alpha=0.8, label=f"process {i}")
        ax.set_title(f"{space}: {name}", fontsize=9)
        ax.set_xlabel("process 1 (ms)")
        ax.set_ylabel("other process (ms)")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
