"""Latency tables on this machine: how long a whole space takes to profile, how well the table
predicts subnets measured end to end in two separate processes (each compared on its own, with the
process-against-process floor), how fast prediction is, and what a block's latency costs per MAC by
block kind (a plot of latency against MACs: whether GLiT's depthwise conv and GLU cost what their
MACs say on a CPU).
Prints markdown tables and writes JSON and PNGs.

    .venv/bin/python benchmarks/latency_table.py [--table latency_tables/cpu_onnxruntime_fp32_bs1_t1.csv]
        [--spaces resnas-tiny --append]

Profiles each space from scratch into `--table` (deleted first), so run it on a quiet machine;
the shipped CPU table is this script's output. `--append` keeps the table (same setup required)
and the other spaces' results in `--out`, profiling and validating only `--spaces` (`--reprofile`:
taken out of the table first). `--budget-min`
profiles each space within that many minutes (a sample of rows measured, the rest fitted); give it
its own `--out` folder, since validations are written beside `--out`. `--append --refit` measures
nothing: it refits `--spaces`' fitted rows and calibration in the table (`hwnas profile --refit`) and
scores their committed validations again (`hwnas validate-table --rescore`).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas import get_space
from hwnas.io import atomic_write_bytes, atomic_write_json
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.profile import ProfileSettings, profile_space, refit_space
from hwnas.latency.table import LatencyTable, fingerprint_summary
from hwnas.latency.validate import rescore, validate_table, worst
from hwnas.plots import figure, save_figure
from hwnas.spaces import BlockConfig, SearchSpace


def prediction_rate(predictor: LatencyPredictor, n: int = 100_000, repeats: int = 5) -> float:
    """Archs scored per second by `predict_many` on `n` random archs (median of `repeats` calls)."""
    rng = random.Random(0)
    archs = [predictor.space.sample(rng) for _ in range(n)]
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict_many(archs)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def drop_spaces(table: LatencyTable, spaces: list[SearchSpace]) -> None:
    """Take `spaces` out of `table`: their calibrations, then the rows of theirs that no space left in
    the table uses (a row another space shares stays, with the value its calibration was fitted with)."""
    for space in spaces:
        key = table.calibration_key(space)
        table.calibrations.pop(key, None)
        for by_space in table.tail_calibrations.values():
            by_space.pop(key, None)
    for space in spaces:
        own = {b.key for b in space.block_configs()} - table.rows_of_other_spaces(space)
        table.rows = table.rows.drop(index=[k for k in own if k in table.rows.index])


def profile_afresh(
    space: SearchSpace, settings: ProfileSettings, path: Path, budget_min: float | None, reprofile: bool
) -> dict:
    """`profile_space`; with `reprofile`, `space` taken out of the table first, and the table as it
    was put back if the profile stops (a budget too small, an interruption): no shipped row is lost."""
    if not reprofile:
        return profile_space(space, settings, path, budget_min=budget_min)
    before = {f: f.read_bytes() for f in (path, LatencyTable.sidecar_path(path))}
    table = LatencyTable.load(path)
    drop_spaces(table, [space])
    table.save(path)
    try:
        return profile_space(space, settings, path, budget_min=budget_min)
    except BaseException:
        for f, content in before.items():
            atomic_write_bytes(f, content)
        raise


def per_kind(table: LatencyTable, plot: Path) -> dict[str, dict[str, float]]:
    """Each block kind's rows: count, MACs range and median microseconds per million MACs; and a
    log-log plot of every row's p50 latency against its MACs, one colour per kind."""
    rows = [(BlockConfig.from_key(key), float(ms)) for key, ms in table.rows["p50_ms"].items()]
    kinds: dict[str, list[tuple[int, float]]] = {}
    for block, ms in rows:
        kinds.setdefault(block.kind, []).append((block.macs(), ms))
    fig, ax = figure(6.5, 4.5)
    for kind, points in sorted(kinds.items()):
        ax.scatter([m / 1e6 for m, _ in points], [ms for _, ms in points], s=14, label=kind, alpha=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("block MACs (millions)")
    ax.set_ylabel("block p50 latency (ms)")
    ax.set_title(f"{table.name}: latency against MACs per block kind", fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, plot)
    return {
        kind: {
            "rows": len(points),
            "macs_m": [min(m for m, _ in points) / 1e6, max(m for m, _ in points) / 1e6],
            "us_per_mmac_median": statistics.median(1e3 * ms / (m / 1e6) for m, ms in points if m),
        }
        for kind, points in sorted(kinds.items())
    }


VALIDATION_FIELDS = (
    "n",
    "processes",
    "measured_ms_range",
    "calibrated",
    "uncalibrated_sum",
    "macs_only",
    "macs_line",
    "floor_process_vs_process",
    "calibration_remeasured",
    "recalibrated_now",
    "calibration",
)


def refitted(space: SearchSpace, path: Path, entry: dict, folder: Path) -> dict:
    """`entry` (a space's result) after `hwnas profile --refit` of its fitted rows in the table at
    `path`, its validation in `folder` scored again on the refitted table (nothing measured)."""
    summary = refit_space(space, LatencyTable.load(path))
    if summary["up_to_date"]:
        return entry
    report = rescore(space, LatencyTable.load(path), folder)
    keep = ("rows_refitted", "rows_kept", "row_change_pct", "fit_error_pct_before", "calibration_before")
    return {
        **entry,
        "fit_error_pct": summary["fit_error_pct"],
        "refit": {k: summary[k] for k in keep},
        "validation": {k: report[k] for k in VALIDATION_FIELDS},
        "plot": report["plot"],
    }


def _since_profiling(v: dict) -> str:
    """The calibration subnets' drift since profiling and the recalibrated prediction's MAPE / tau."""
    if not v.get("calibration_remeasured"):
        return "not measured | not measured"
    drift = max(v["calibration_remeasured"]["drift_pct"], key=abs)
    r = worst(v["recalibrated_now"])
    return f"{drift:+.1f}% | {r['mape_pct']:.1f}% / {r['kendall_tau']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=Path("runs/bench/cpu_onnxruntime_fp32_bs1_t1.csv"))
    parser.add_argument(
        "--spaces",
        nargs="+",
        default=["autoformer-tiny", "autoformer-digits", "glit-tiny", "glit-digits", "resnas-tiny", "resnas-digits"],
    )
    parser.add_argument("--n", type=int, default=50, help="subnets measured end to end per space")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latency_table.json"))
    parser.add_argument("--budget-min", type=float, default=None, help="profile each space within M minutes")
    parser.add_argument(
        "--budget-min-for",
        nargs="+",
        default=[],
        metavar="SPACE=M",
        help="another --budget-min for these spaces (e.g. resnas-tiny=5)",
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="add --spaces to the existing --table and --out instead of starting both afresh",
    )
    parser.add_argument(
        "--refit",
        action="store_true",
        help="with --append: measure nothing; refit --spaces' fitted rows and calibration in --table and score "
        "their committed validations again",
    )
    parser.add_argument(
        "--reprofile",
        action="store_true",
        help="with --append: drop --spaces from the table first (their calibrations, and the rows no other space "
        "uses), then profile and validate them afresh",
    )
    args = parser.parse_args()
    kept, earlier, order = [], [], []
    if args.append:
        previous = json.loads(args.out.read_text())
        kept = [r for r in previous["results"] if r["space"] not in args.spaces]
        order = [r["space"] for r in previous["results"]]  # a space profiled again keeps its place
        # the runs that profiled the kept spaces, for the results page
        earlier = [*previous.get("earlier_commands", []), (previous.get("provenance") or {}).get("command")]
    else:
        for stale in (args.table, LatencyTable.sidecar_path(args.table)):
            stale.unlink(missing_ok=True)
    settings = ProfileSettings(device="cpu", threads=1)
    budgets = {name: args.budget_min for name in args.spaces}
    budgets.update({k: float(v) for k, v in (item.split("=", 1) for item in args.budget_min_for)})
    rows = []
    if args.refit and not args.append:
        parser.error("--refit rescores the committed validations of --out: give --append")
    previous_rows = {r["space"]: r for r in previous["results"]} if args.append else {}
    for name in args.spaces:
        space = get_space(name)
        if args.refit:
            rows.append(refitted(space, args.table, previous_rows[name], args.out.parent / f"validate_{name}"))
            continue
        start = time.perf_counter()
        profiled = profile_afresh(space, settings, args.table, budgets[name], args.append and args.reprofile)
        seconds = time.perf_counter() - start
        table = LatencyTable.load(args.table)
        report = validate_table(space, table, n=args.n, out=args.out.parent / f"validate_{name}")
        rows.append(
            {
                "space": name,
                "blocks": profiled["blocks_measured"],
                **(
                    {
                        "budget_min": budgets[name],
                        "blocks_fitted": profiled["blocks_fitted"],
                        "fit_error_pct": profiled["fit_error_pct"],
                    }
                    if budgets[name] is not None
                    else {}
                ),
                "calibration_subnets": profiled["calibration_subnets"],
                "profile_seconds": round(seconds, 1),
                "predictions_per_s": round(prediction_rate(LatencyPredictor(table, space))),
                "validation": {k: report[k] for k in VALIDATION_FIELDS},
                "plot": report["plot"],
            }
        )
    rows = sorted(kept + rows, key=lambda r: order.index(r["space"]) if r["space"] in order else len(order))
    final = LatencyTable.load(args.table)
    fingerprint = final.fingerprint
    kinds = per_kind(final, args.out.with_name(args.out.stem + "_macs.png"))
    atomic_write_json(
        args.out,
        {
            "table": str(args.table),
            "setup": fingerprint_summary(fingerprint),
            "fingerprint": fingerprint,
            "results": rows,
            "per_kind": kinds,
            "per_kind_plot": str(args.out.with_name(args.out.stem + "_macs.png")),
            "provenance": provenance(),
            **({"earlier_commands": [c for c in earlier if c]} if earlier else {}),
        },
    )
    print(f"setup: {fingerprint_summary(fingerprint)}; {fingerprint.get('cpu_id')}\n")
    print(
        "| space | blocks + calib. subnets | profile time | predictions/s | n | measured ms | "
        "MAPE | within ±5% / ±10% | Kendall τ | floor: MAPE / within ±5% / ±10% / τ | MACs only: MAPE / τ | "
        "uncalibrated MAPE | machine since profiling | recalibrated now: MAPE / τ |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        v = r["validation"]
        c, f, u = (worst(v[k]) for k in ("calibrated", "floor_process_vs_process", "uncalibrated_sum"))
        m = worst(v["macs_only"] or [])
        macs = f"{m['mape_pct']:.1f}% / {m['kendall_tau']:.3f}" if m else "not fitted"
        lo, hi = v["measured_ms_range"]
        print(
            f"| {r['space']} | {r['blocks']} + {r['calibration_subnets']} | {r['profile_seconds']:.0f} s | "
            f"{r['predictions_per_s']:,} | {v['n']} | {lo:.2f}–{hi:.2f} | {c['mape_pct']:.1f}% | "
            f"{c['within_5pct']:.0f}% / {c['within_10pct']:.0f}% | {c['kendall_tau']:.3f} | {f['mape_pct']:.1f}% / "
            f"{f['within_5pct']:.0f}% / {f['within_10pct']:.0f}% / {f['kendall_tau']:.3f} | {macs} | "
            f"{u['mape_pct']:.1f}% | {_since_profiling(v)} |"
        )
    print("\nprediction against each of two processes and process against process: the worse value of each.\n")
    print("| block kind | rows | MACs (M) | median µs per million MACs |")
    print("|---|---|---|---|")
    for kind, k in kinds.items():
        print(f"| {kind} | {k['rows']} | {k['macs_m'][0]:.2f}–{k['macs_m'][1]:.2f} | {k['us_per_mmac_median']:.2f} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
