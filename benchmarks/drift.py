"""Latency tables used on another setup: how long the spot check takes, and whether the table holds
after it. Prints a markdown table, writes JSON and a predicted-vs-measured plot.

    .venv/bin/python benchmarks/drift.py [--spaces autoformer-digits autoformer-tiny] [--n 20]

Scenarios per space, each on a fresh copy of its table (no local calibration yet):
- shipped: the current shipped table, whose setup is this machine's (no check runs: how it holds);
- previous: the CPU table shipped before the drift check (torch 2.15.0, onnxruntime 1.31.1, measured
  on a CPU whose generation its fingerprint did not record), kept in benchmarks/fixtures/;
- previous, recalibrated: the same, fixed with `hwnas profile --recalibrate` instead of a spot check;
- scaled: the current shipped table with every row x1.25 and another onnxruntime version in its
  fingerprint (a uniform drift, made on purpose);
- uneven: the current shipped table with the rows of the narrowest embed width x1.6 and of the widest
  x0.6 (rows drifted unevenly, made on purpose: the check must call for a re-profile).

The check of each scenario runs in a fresh process (the exporter's one-off warm-up included, the
interpreter's start-up not). Truth: `--n` held-out random subnets (no calibration subnet), measured
end to end with the table's full protocol in a fresh process before all checks and in another
after them, so the floor (one against the other) spans the minutes the checks take; each is
compared with the prediction before the check (the table as it is) and after it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas import get_space
from hwnas.io import atomic_write_json
from hwnas.latency.bundle import sample_archs
from hwnas.latency.calibration_subnets import calibration_archs
from hwnas.latency.drift import check_drift
from hwnas.latency.measure import measure_archs_apart, setup_of
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.table import SHIPPED_DIR, STAT_COLUMNS, LatencyTable, fingerprint_summary
from hwnas.latency.validate import agreement, worst
from hwnas.plots import save_figure
from hwnas.spaces import Arch, SearchSpace

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv"
PREVIOUS = ROOT / "benchmarks" / "fixtures" / "cpu_onnxruntime_fp32_bs1_t1_2026-11-21.csv"
TIMINGS = [c for c in STAT_COLUMNS if c.endswith("_ms")]
# The spot check alone, timed in a fresh process after the imports: what a first command on a new setup pays.
SPOT_CHECK = """
import json, sys, time, warnings
from hwnas import get_space
from hwnas.latency.drift import check_drift
from hwnas.latency.table import LatencyTable
space, table = get_space(sys.argv[2]), LatencyTable.load(sys.argv[1])
began = time.perf_counter()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    checked = check_drift(table, space, progress=False)
print(json.dumps({"seconds": time.perf_counter() - began, "source": checked.calibration_source(space),
                  "messages": [str(w.message) for w in caught]}))
"""


def scaled(src: Path, dst: Path, factor_of_row: Any, **fingerprint: Any) -> Path:
    table = LatencyTable.load(src)
    factors = np.array([factor_of_row(row) for _, row in table.rows.iterrows()])
    table.rows[TIMINGS] = table.rows[TIMINGS].mul(factors, axis=0)
    table.fingerprint.update(fingerprint)
    return table.save(dst)


def copied(src: Path, dst: Path) -> Path:
    for suffix in (".csv", ".json"):
        shutil.copy(src.with_suffix(suffix), dst.with_suffix(suffix))
    return dst


def scenarios(space: SearchSpace, folder: Path) -> dict[str, tuple[Path, str]]:
    """Fresh copies of the tables each scenario starts from, and how each is checked."""
    widths = sorted(dict(space.spec.choices)["embed_dim"])
    uneven = {widths[0]: 1.6, widths[-1]: 0.6}

    def width_factor(row: Any) -> float:
        width = row["out_dim"] if row["kind"] == "patch_embed" else row["in_dim"]
        return uneven.get(int(width), 1.0)

    return {
        "shipped": (copied(SHIPPED, folder / "shipped.csv"), "spot check"),
        "previous": (copied(PREVIOUS, folder / "previous.csv"), "spot check"),
        "previous, recalibrated": (copied(PREVIOUS, folder / "recalibrated.csv"), "recalibrate"),
        "scaled": (
            scaled(SHIPPED, folder / "scaled.csv", lambda row: 1.25, backend_version="1.0.0-scaled"),
            "spot check",
        ),
        "uneven": (scaled(SHIPPED, folder / "uneven.csv", width_factor, backend_version="1.0.0-uneven"), "spot check"),
    }


def check_in_fresh_process(table: Path, space: SearchSpace, how: str) -> dict[str, Any]:
    """The spot check (as any command runs it) or `hwnas profile --recalibrate`, in a fresh process."""
    if how == "spot check":
        done = subprocess.run(
            [sys.executable, "-c", SPOT_CHECK, str(table), space.key], capture_output=True, text=True, check=True
        )
        return json.loads(done.stdout)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hwnas",
            "profile",
            "--recalibrate",
            "--device",
            "cpu",
            "--space",
            space.key,
            "--table",
            str(table),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout)
    return {"seconds": report["seconds"], "recalibration": report, "messages": []}


def held_out(space: SearchSpace, table: LatencyTable, n: int) -> list[Arch]:
    """`n` random subnets that are none of the table's calibration subnets (which the spot check measures)."""
    k = table.calibration(space).n
    calibration = {a.digest for a in calibration_archs(space, k)}
    return [a for a in sample_archs(space, n + k, seed=7) if a.digest not in calibration][:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["autoformer-digits", "autoformer-tiny"])
    parser.add_argument("--n", type=int, default=20, help="held-out subnets measured end to end per space")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/drift.json"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows, curves = [], {}
    with tempfile.TemporaryDirectory(prefix="hwnas-drift-bench-") as tmp:
        for name in args.spaces:
            space, shipped = get_space(name), LatencyTable.load(SHIPPED)
            archs = held_out(space, shipped, args.n)
            (first,) = measure_archs_apart(space, shipped, archs, Path(tmp) / f"truth-{name}", [None])
            folder = Path(tmp) / name
            folder.mkdir()
            checked = []
            for scenario, (path, how) in scenarios(space, folder).items():
                check = check_in_fresh_process(path, space, how)
                before = LatencyTable.load(path)
                after = check_drift(LatencyTable.load(path), space, progress=False)  # reuses what the check stored
                predicted = {
                    when: LatencyPredictor(t, space).predict_many(archs)
                    for when, t in (("before", before), ("after", after))
                }
                checked.append((scenario, how, before, after, check, predicted))
            (last,) = measure_archs_apart(space, shipped, archs, Path(tmp) / f"truth-{name}", [None])
            truth = [first, last]
            for scenario, how, before, after, check, predicted in checked:
                source = after.calibration_source(space) or {}
                recal = check.get("recalibration")
                rows.append(
                    {
                        "space": name,
                        "scenario": scenario,
                        "check": how,
                        "table": fingerprint_summary(before.fingerprint),
                        "differences": before.setup_differences(setup_of(before)),
                        "check_seconds": round(check["seconds"], 1),
                        "drift_pct": source.get("drift_pct"),
                        "action": "none" if not source else "refit" if source["refit"] else "held",
                        "uneven": bool(source.get("uneven")),
                        "messages": check["messages"],
                        "rows_ratio": None
                        if not recal
                        else {"median": recal["rows_ratio_median"], "range": recal["rows_ratio_range"]},
                        "before": worst([agreement(predicted["before"], m) for m in truth]),
                        "after": worst([agreement(predicted["after"], m) for m in truth]),
                        "floor_first_vs_last_process": agreement(truth[1], truth[0]),
                    }
                )
                curves[(name, scenario)] = (truth, predicted)
    machine = setup_of(LatencyTable.load(SHIPPED))
    atomic_write_json(
        args.out,
        {
            "machine": fingerprint_summary(machine),
            "cpu_id": machine.get("cpu_id"),
            "n_held_out": args.n,
            "results": rows,
            "provenance": provenance(),
        },
    )
    plot(curves, args.out.with_suffix(".png"))
    print(f"this machine: {fingerprint_summary(machine)}; {machine.get('cpu_id')}\n")
    print(
        "| space | scenario | check time | drift found | action | within ±10% before → after | MAPE before → after |"
        " Kendall τ after | floor: first vs last process, within ±10% / MAPE |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b, a, f = r["before"], r["after"], r["floor_first_vs_last_process"]
        drift = "-" if r["drift_pct"] is None else f"{r['drift_pct']:+.1f}%"
        action = r["action"] + (", re-profile advised" if r["uneven"] else "")
        if r["rows_ratio"]:
            action += f" (rows x{r['rows_ratio']['median']:.2f})"
        print(
            f"| {r['space']} | {r['scenario']} | {r['check_seconds']:.1f} s | {drift} | {action} | "
            f"{b['within_10pct']:.0f}% → {a['within_10pct']:.0f}% | {b['mape_pct']:.1f}% → {a['mape_pct']:.1f}% | "
            f"{a['kendall_tau']:.3f} | {f['within_10pct']:.0f}% / {f['mape_pct']:.1f}% |"
        )
    print(
        f"\nwithin ±10%, MAPE and τ: the worse against the processes measuring before and after the checks."
        f"\nwrote {args.out} and {args.out.with_suffix('.png')}"
    )


def plot(curves: dict[tuple[str, str], Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spaces = sorted({s for s, _ in curves})
    scenario_names = list(dict.fromkeys(sc for _, sc in curves))
    fig, axes = plt.subplots(
        len(spaces), len(scenario_names), figsize=(3.6 * len(scenario_names), 3.4 * len(spaces)), squeeze=False
    )
    for (space, scenario), (truth, predicted) in curves.items():
        ax = axes[spaces.index(space)][scenario_names.index(scenario)]
        measured = truth[0]
        lo, hi = (
            float(min(measured.min(), *(p.min() for p in predicted.values()))),
            float(max(measured.max(), *(p.max() for p in predicted.values()))),
        )
        line = np.linspace(lo * 0.95, hi * 1.05, 2)
        ax.plot(line, line, "k-", lw=1)
        ax.fill_between(line, line * 0.9, line * 1.1, color="0.85", label="±10%")
        ax.scatter(measured, predicted["before"], s=14, c="tab:red", marker="x", label="table as it is")
        ax.scatter(measured, predicted["after"], s=14, c="tab:blue", label="after the check")
        ax.set_title(f"{space}: {scenario}", fontsize=9)
        ax.set_xlabel("measured end to end, process 1 (ms)", fontsize=8)
        ax.set_ylabel("predicted (ms)", fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
