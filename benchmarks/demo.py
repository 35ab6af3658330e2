"""`make demo` as a benchmark: the whole pipeline from a fresh folder (train, table, search, fine-tune,
export), with the wall time of each run, the searched subnet (inherited and fine-tuned) and the
hand-designed one with their test intervals, and the machine. The
README's demo figures come from the JSON this writes. Prints a table, writes JSON.

    .venv/bin/python benchmarks/demo.py [--out benchmarks/results/demo.json]

It runs `hwnas demo` as a user does, in a fresh temporary folder (nothing reused), then once more
in the same folder (every stage reused) to time a rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas.io import atomic_write_json
from hwnas.profilers.protocol import cpu_identity, cpu_model

ROOT = Path(__file__).resolve().parents[1]


def run_demo(folder: Path) -> tuple[dict, float]:
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "hwnas", "demo", "--out", "demo_out", "--json"],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "HWNAS_TABLES": ""},
    )
    if done.returncode != 0:
        raise SystemExit(f"hwnas demo failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout), time.perf_counter() - began


def portable(value: Any) -> Any:
    """`value` with this checkout's absolute path written relative to it (results are committed)."""
    if isinstance(value, str):
        return value.replace(f"{ROOT}/", "")
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "demo.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hwnas-demo-") as tmp:
        first, first_s = run_demo(Path(tmp))
        again, again_s = run_demo(Path(tmp))
    inherited, searched, reference = first["rows"]
    result = {
        "command": "hwnas demo --out demo_out --json (fresh folder), then the same command again",
        "machine": {"cpu_model": cpu_model(), **cpu_identity(), "cpu_count": os.cpu_count()},
        "fresh_run_seconds": round(first_s, 1),
        "rerun_seconds": round(again_s, 1),
        "stages": first["stages"],
        "rerun_stages": again["stages"],
        "budget_ms": first["budget_ms"],
        "space_latency_ms": first["space_latency_ms"],
        "searched_inherited": inherited,
        "searched_fine_tuned": searched,
        "hand_designed_uniform": reference,
        "test_images": first["test_images"],
        "comparison": first["comparison"],
        "finetune": first["finetune"],
        "measured_vs_predicted_pct": 100 * (searched["measured_ms"] / searched["predicted_ms"] - 1),
        "calibration": first["calibration"],
        "notes": first["notes"],
        "same_winner_on_rerun": again["rows"][1]["arch"] == searched["arch"],
    }
    result = portable(result)
    atomic_write_json(args.out, {**result, "provenance": provenance()})
    print(
        f"hwnas demo on {result['machine']['cpu_model']} ({result['machine']['cpu_count']} cores): fresh run "
        f"{first_s:.0f} s, rerun {again_s:.0f} s; budget {first['budget_ms']} ms "
        f"(subnets span {first['space_latency_ms'][0]:.3f}-{first['space_latency_ms'][1]:.3f} ms)"
    )
    print(
        f"{'subnet':<22} {'test top-1 (95% interval)':>26} {'search-val':>10} {'params':>9} {'MMACs':>7} {'predicted':>9} "
        f"{'measured':>9}"
    )
    for r in first["rows"]:
        measured = f"{r['measured_ms']:.3f}" if r["measured_ms"] else "-"
        low, high = r["test_top1_95ci"]
        print(
            f"{r['name']:<22} {r['test_top1']:>8.2f}% ({low:5.1f}-{high:5.1f}%) {r['search_val_top1']:>9.2f}% "
            f"{r['params']:>9,} {r['macs'] / 1e6:>7.2f} {r['predicted_ms']:>9.3f} {measured:>9}"
        )
    print(first["comparison"])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
