"""How fast each cost counter is: analytic (from the arch, what search uses) vs fvcore (traces the
extracted model), plus the extraction itself. Prints a table and writes JSON.

    .venv/bin/python benchmarks/cost_counting.py [--out benchmarks/results/cost_counting.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from pathlib import Path

import torch
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas import count_flops, get_space
from hwnas.io import atomic_write_json
from hwnas.profilers.protocol import cpu_model
from hwnas.supernet import build_supernet


def rate(fn, items, min_seconds: float = 1.0) -> float:
    """Items per second over whole passes of `items`, repeated for at least `min_seconds`."""
    done, start = 0, time.perf_counter()
    while True:
        for item in items:
            fn(item)
        done += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cost_counting.json"))
    parser.add_argument("--spaces", nargs="+", default=["autoformer-digits", "autoformer-tiny"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.spaces:
        space = get_space(name)
        rng = random.Random(0)
        archs = [space.sample(rng) for _ in range(200)]
        supernet = build_supernet(space).eval()
        few = archs[:5]
        models = [supernet.extract(a) for a in few]
        agree = all(count_flops(m) == count_flops(a) for m, a in zip(models, few))
        row = {
            "space": name,
            "analytic_archs_per_s": rate(count_flops, archs),
            "fvcore_models_per_s": rate(count_flops, models, min_seconds=2.0),
            "extract_per_s": rate(supernet.extract, few, min_seconds=2.0),
            "counts_agree": agree,
        }
        row["analytic_speedup"] = row["analytic_archs_per_s"] / row["fvcore_models_per_s"]
        rows.append(row)
    header = (
        f"{'space':<20} {'analytic archs/s':>17} {'fvcore models/s':>16} {'speed-up':>9} {'extract/s':>10} {'agree':>6}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['space']:<20} {r['analytic_archs_per_s']:>17,.0f} {r['fvcore_models_per_s']:>16,.1f} "
            f"{r['analytic_speedup']:>8,.0f}x {r['extract_per_s']:>10,.1f} {str(r['counts_agree']):>6}"
        )
    machine = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": 1,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    atomic_write_json(args.out, {"machine": machine, "rows": rows, "provenance": provenance()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
