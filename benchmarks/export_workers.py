"""What parallel ONNX exports save a profile: a space's first calibration subnets and a spread of its
rows exported into a bundle one at a time, then in one process per core (`write_bundle`'s default),
in one run; the files are compared byte for byte. Exporting, not timing, is most of what a
calibration subnet of a 224-px space costs a profile (and all of what a validation's 50 subnets
cost before they are timed), and the exporter is single-threaded Python. Also records the largest
export process's peak memory beside its estimate, which caps how many run at once. Prints a table,
writes JSON and a plot.

    .venv/bin/python benchmarks/export_workers.py --spaces resnas-small glit-tiny
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas.io import atomic_write_json
from hwnas.latency.bundle import block_plans, export_peak_bytes, export_workers, network_plans, write_bundle
from hwnas.latency.calibration_subnets import calibration_archs
from hwnas.latency.sampled import spread
from hwnas.plots import figure, save_figure
from hwnas.spaces import get_space


def space_result(space_key: str, subnets: int, rows: int, work: Path) -> dict:
    space = get_space(space_key)
    blocks = list(dict.fromkeys(space.block_configs()))
    plans = network_plans(calibration_archs(space, subnets), 1, "fp32")
    plans += block_plans(spread(blocks, [], rows), 1, "fp32")
    workers = export_workers(plans)
    seconds = {}
    for label, count in (("one_at_a_time", 1), ("parallel", workers)):
        folder = work / f"{space.key}-{label}"
        start = time.perf_counter()
        write_bundle(folder, plans, {"space": space.key}, progress=False, workers=count)
        seconds[label] = time.perf_counter() - start
    same = all(
        (work / f"{space.key}-one_at_a_time" / p.entry.file).read_bytes()
        == (work / f"{space.key}-parallel" / p.entry.file).read_bytes()
        for p in plans
    )
    return {
        "space": space.key,
        "subnets": subnets,
        "rows": len(plans) - subnets,
        "workers": workers,
        "seconds_one_at_a_time": seconds["one_at_a_time"],
        "seconds_parallel": seconds["parallel"],
        "speedup": seconds["one_at_a_time"] / seconds["parallel"],
        "files_identical": same,
        "largest_estimated_peak_bytes": max(map(export_peak_bytes, plans)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["resnas-small", "glit-tiny"])
    parser.add_argument("--subnets", type=int, default=6, help="calibration subnets per space (largest included)")
    parser.add_argument("--rows", type=int, default=12, help="rows per space, spread over their costs")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/export_workers.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hwnas-export-"))
    try:
        write_bundle(work / "warm", network_plans([get_space(args.spaces[0]).smallest()], 1, "fp32"), {}, False, 1)
        results = [space_result(s, args.subnets, args.rows, work) for s in args.spaces]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # the largest export process's
    estimate = max(r["largest_estimated_peak_bytes"] for r in results)
    png = args.out.with_suffix(".png")
    fig, ax = figure(6, 3.5)
    x = range(len(results))
    ax.bar([i - 0.2 for i in x], [r["seconds_one_at_a_time"] for r in results], 0.4, label="one at a time")
    ax.bar([i + 0.2 for i in x], [r["seconds_parallel"] for r in results], 0.4, label="one process per core")
    ax.set_xticks(list(x), [f"{r['space']}\n{r['subnets']} subnets + {r['rows']} rows" for r in results])
    ax.set_ylabel("export time (s)")
    ax.legend()
    save_figure(fig, png)
    atomic_write_json(
        args.out,
        {
            "spaces": results,
            "peak_export_process_bytes": peak,
            "largest_estimated_peak_bytes": estimate,
            "plot": str(png),
            "provenance": provenance(),
        },
    )
    print("| space | models | processes | one at a time | parallel | speedup | files identical |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['space']} | {r['subnets']} subnets + {r['rows']} rows | {r['workers']} | "
            f"{r['seconds_one_at_a_time']:.1f} s | {r['seconds_parallel']:.1f} s | {r['speedup']:.2f}x | "
            f"{r['files_identical']} |"
        )
    print(
        f"largest export process: {peak / 2**30:.2f} GB at its peak (estimated beforehand: {estimate / 2**30:.2f} GB)"
    )
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
