"""`hwnas validate-table`: how well a table predicts whole networks on this machine.

Random subnets (none of them a calibration subnet) are extracted, exported end to end once, and
measured with the table's backend and settings in at least two separate processes, one after the
other. The prediction is compared with each process's measurement on its own (MAPE, share within
+-10%, Kendall tau), never with their mean. The noise floor is one process against another, the
disagreement any single measurement shows; a table scoring better than the floor is no more
accurate, it is as noisy as one process.

The same processes measure the table's calibration subnets again. A shared machine (a cloud VM)
can run a few percent faster or slower for minutes to hours, which no table can predict: the
calibration subnets measured now against their measurement at profile time say how far the machine
moved, and the calibration refitted on them now (what `hwnas profile --recalibrate` does) says how
well the table's rows alone predict.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwnas.errors import HwnasError
from hwnas.io import atomic_write_bytes, atomic_write_json
from hwnas.latency.agreement import agreement, worst
from hwnas.latency.bundle import sample_archs
from hwnas.latency.calibration_subnets import calibration_archs, calibration_pairs
from hwnas.latency.measure import measure_archs_apart, table_settings
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.table import LATENCY, Calibration, LatencyTable
from hwnas.plots import figure, save_figure
from hwnas.profilers.protocol import Protocol
from hwnas.spaces import Arch, SearchSpace


def validate_table(
    space: SearchSpace,
    table: LatencyTable,
    n: int = 50,
    seed: int = 0,
    out: Path | None = None,
    protocol: Protocol | None = None,
    processes: int = 2,
    progress: bool = True,
    statistic: str = LATENCY,
) -> dict[str, Any]:
    """Measure `n` random subnets end to end in `processes` fresh processes and compare each
    process's measurement of `statistic` (p50 by default, p90 for tail budgets) with the table's
    prediction of it (and the processes with each other: the floor)."""
    if n < 2:
        raise HwnasError(f"--n must be at least 2 to rank subnets, got {n}")
    if processes < 2:
        raise HwnasError(
            f"--processes must be at least 2: the floor compares one process with another, got {processes}"
        )
    predictor = LatencyPredictor(table, space, statistic)
    calibrated_on, then = calibration_pairs(space, predictor)
    taken = {a.digest for a in calibration_archs(space, predictor.calibration.n)}
    archs = [a for a in sample_archs(space, n + len(taken), seed) if a.digest not in taken][:n]
    out = Path(out or default_folder(table, space))
    protocol = table_settings(table, protocol).protocol  # the table's statistic, at `protocol`'s effort
    both = measure_archs_apart(
        space, table, archs + calibrated_on, out / "work", [protocol] * processes, progress, statistic
    )
    measured, now = [m[: len(archs)] for m in both], [m[len(archs) :] for m in both]
    return score(space, table, archs, measured, now, out, seed, statistic)


def score(
    space: SearchSpace,
    table: LatencyTable,
    archs: Sequence[Arch],
    measured: Sequence[np.ndarray],
    now: Sequence[np.ndarray] | None,
    out: Path,
    seed: int,
    statistic: str = LATENCY,
    rescored: bool = False,
) -> dict[str, Any]:
    """The report of `validate_table` on measurements taken: `measured` (per process, of `archs`)
    and `now` (per process, of the table's calibration subnets; None: not measured), written to
    `out` (`rescored`: the measurements are an earlier validation's)."""
    predictor = LatencyPredictor(table, space, statistic)
    calibrated_on, then = calibration_pairs(space, predictor)
    processes = len(measured)
    sums = predictor.sum_many(archs)
    predicted = predictor.calibration(sums)
    line = macs_line(calibrated_on, then)
    by_macs = line(np.array([a.macs() / 1e6 for a in archs])) if line else None
    again = now is not None and len(calibrated_on) > 0
    refit = Calibration.fit(predictor.sum_many(calibrated_on), np.mean(now, axis=0)) if again else None

    report = {
        "space": space.key,
        "table": table.name,
        "device": table.device,
        "backend": table.fingerprint["backend"],
        "n": len(archs),
        "seed": seed,
        "processes": processes,
        "statistic": statistic,
        "rescored": rescored,
        "calibration": predictor.calibration.to_dict(),
        "calibration_source": table.calibration_source(space),
        # rows of the space fitted, not measured (`hwnas profile --budget-min` / `--from`)
        "fitted_rows": len(set(table.filled_rows) & {b.key for b in predictor.blocks}),
        "calibrated": [agreement(predicted, m) for m in measured],
        "uncalibrated_sum": [agreement(sums, m) for m in measured],
        # the baseline a table must beat: a line in MACs fitted on the same calibration subnets
        "macs_only": [agreement(by_macs, m) for m in measured] if line else None,
        "macs_line": line.to_dict() if line else None,
        "floor_process_vs_process": [
            agreement(measured[j], measured[i]) for i, j in itertools.combinations(range(processes), 2)
        ],
        # how far this machine moved since profiling: the calibration subnets, then against now
        "calibration_remeasured": {
            "then_ms": then.tolist(),
            "now_ms": [m.tolist() for m in now],
            "then_vs_now": [agreement(then, m) for m in now],
            "drift_pct": [float(100 * np.median(m / then - 1)) for m in now],
        }
        if again
        else None,
        # the table's rows with the calibration refitted on those subnets now (`--recalibrate`)
        "recalibrated_now": [agreement(refit(sums), m) for m in measured] if refit else None,
        "measured_ms_range": [float(np.min(measured)), float(np.max(measured))],
        "fingerprint": table.fingerprint,
    }
    df = pd.DataFrame(
        {
            "digest": [a.digest for a in archs],
            "predicted_ms": predicted,
            "sum_ms": sums,
            **{f"process{i + 1}_ms": m for i, m in enumerate(measured)},
            "arch": [json.dumps(a.to_dict()) for a in archs],
        }
    )
    atomic_write_bytes(out / "validate.csv", df.to_csv(index=False).encode())
    report["csv"] = str(out / "validate.csv")
    report["plot"] = str(scatter_plot(df, report, out / "validate.png"))
    report["json"] = str(out / "validate.json")
    atomic_write_json(out / "validate.json", report)
    return report


def default_folder(table: LatencyTable, space: SearchSpace) -> Path:
    """Where a validation of `space` on `table`'s device is written when no folder is given."""
    return Path("runs") / "validate" / f"{table.device}_{space.key}"


def rescore(space: SearchSpace, table: LatencyTable, folder: Path) -> dict[str, Any]:
    """The report of an earlier validation in `folder` (its validate.json and .csv) scored anew on
    `table` as it is now, measuring nothing: after `hwnas profile --refit`, the same subnets and the
    same calibration subnets, as measured then, against the refitted rows."""
    folder = Path(folder)
    try:
        before = json.loads((folder / "validate.json").read_text())
        df = pd.read_csv(folder / "validate.csv")
    except (OSError, ValueError) as err:
        raise HwnasError(f"no validation to rescore in {folder} ({err}); run `hwnas validate-table` first") from None
    if before["space"] != space.key:
        raise HwnasError(f"{folder} validated {before['space']}, not {space.key}; pass --space {before['space']}")
    statistic = before.get("statistic", LATENCY)
    remeasured = before.get("calibration_remeasured")
    _, then = calibration_pairs(space, LatencyPredictor(table, space, statistic))
    if remeasured and not np.array_equal(then, np.array(remeasured["then_ms"], dtype=float)):
        raise HwnasError(
            f"the calibration of {space.key} in {table.name} is fitted on other measurements than those {folder} "
            f"re-measured (the space was profiled again since): validate it again instead"
        )
    archs = [Arch.from_dict(json.loads(a), space) for a in df["arch"]]
    measured = [df[c].to_numpy(dtype=float) for c in df.columns if c.startswith("process")]
    now = [np.array(m, dtype=float) for m in remeasured["now_ms"]] if remeasured else None
    return score(space, table, archs, measured, now, folder, int(before["seed"]), statistic, rescored=True)


def macs_line(archs: Sequence[Arch], measured: np.ndarray) -> Calibration | None:
    """A MACs-only predictor, `measured = a x MMACs + b` (millions of MACs), fitted on the table's
    calibration subnets; None for fewer than two."""
    if len(archs) < 2:
        return None
    return Calibration.fit([a.macs() / 1e6 for a in archs], measured)


def scatter_plot(df: pd.DataFrame, report: dict[str, Any], path: Path) -> Path:
    fig, ax = figure(5.5, 5)
    processes = [c for c in df.columns if c.startswith("process")]
    values = df[["predicted_ms", "sum_ms", *processes]]
    lo, hi = float(values.min().min()), float(values.max().max())
    line = np.linspace(lo * 0.95, hi * 1.05, 2)
    ax.plot(line, line, "k-", lw=1, label="predicted = measured")
    ax.fill_between(line, line * 0.9, line * 1.1, color="0.85", label="+-10%")
    ax.scatter(df[processes[0]], df["sum_ms"], s=12, c="tab:gray", marker="x", label="sum of rows (uncalibrated)")
    for column, colour in zip(processes, ("tab:blue", "tab:orange", "tab:green", "tab:red")):
        ax.scatter(df[column], df["predicted_ms"], s=14, c=colour, alpha=0.8, label=f"calibrated, vs {column[:-3]}")
    m, f = worst(report["calibrated"]), worst(report["floor_process_vs_process"])
    ax.set_title(
        f"{report['space']} on {report['device']} ({report['backend']}, {report.get('statistic', LATENCY)}), "
        f"n={report['n']}, worst of "
        f"{report['processes']} processes\nMAPE {m['mape_pct']:.1f}%, within 10% {m['within_10pct']:.0f}%, "
        f"tau {m['kendall_tau']:.2f} (process vs process: MAPE {f['mape_pct']:.1f}%, tau {f['kendall_tau']:.2f})",
        fontsize=8,
    )
    ax.set_xlabel("measured end to end (ms)")
    ax.set_ylabel("predicted (ms)")
    ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, path)
