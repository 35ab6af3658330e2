"""`hwnas validate-table`: how well a table predicts whole networks on this machine.

Random subnets (none of them a calibration subnet) are extracted, exported end to end and measured
twice with the table's own backend and settings. The report compares prediction with measurement
(MAPE, share within +-10%, Kendall tau) and, as the floor no predictor can beat, the second
measurement with the first.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from hwnas.errors import HwnasError
from hwnas.io import atomic_write_bytes, atomic_write_json
from hwnas.latency.bundle import network_plans, sample_archs
from hwnas.latency.device import check_local_gpu, parse_device
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.profile import CALIBRATION_SEED, ProfileSettings, local_fingerprint, measure_plans
from hwnas.latency.table import LatencyTable
from hwnas.plots import figure, save_figure
from hwnas.profilers.protocol import Protocol
from hwnas.spaces import Arch, SearchSpace


def agreement(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """MAPE (%), share within +-10% (%), and Kendall's tau of `predicted` against `measured`."""
    rel = np.abs(predicted - measured) / measured
    tau = kendalltau(predicted, measured).statistic if len(measured) > 1 else float("nan")
    return {"mape_pct": float(100 * rel.mean()), "within_10pct": float(100 * (rel <= 0.10).mean()),
            "kendall_tau": float(tau), "max_error_pct": float(100 * rel.max())}


def measure_archs(space: SearchSpace, table: LatencyTable, archs: Sequence[Arch], work: Path, passes: int = 1,
                  protocol: Protocol | None = None, progress: bool = True) -> list[np.ndarray]:
    """Measure `archs` end to end on this machine with `table`'s backend and settings: one array
    of p50 latencies (ms) per pass. A GPU table needs that GPU here; another setup warns."""
    settings = ProfileSettings.of_table(table.fingerprint)
    if protocol:
        settings = replace(settings, protocol=protocol)
    device = parse_device(settings.device)
    if device.is_gpu:
        check_local_gpu(device)
    # the timing protocol of the end-to-end runs is the caller's own choice
    table.warn_if_setup_differs(local_fingerprint(settings.backend, settings), "measuring", ignore=("protocol",))
    plans = network_plans(archs, settings.batch_size, settings.precision)
    info = {**settings.bundle_info(space, settings.backend), "purpose": "end-to-end measurement"}
    out = []
    for i in range(1, passes + 1):
        label = f"measure {space.key} pass {i}/{passes}" if progress else None
        rows = measure_plans(plans, settings.backend, settings, work, info, label, out=work / f"pass{i}.csv")
        by_file = {r["file"]: float(r["p50_ms"]) for r in rows}
        out.append(np.array([by_file[p.entry.file] for p in plans]))
    shutil.rmtree(work, ignore_errors=True)
    return out


def validate_table(space: SearchSpace, table: LatencyTable, n: int = 50, seed: int = 0, out: Path | None = None,
                   protocol: Protocol | None = None, progress: bool = True) -> dict[str, Any]:
    """Measure `n` random subnets end to end and compare them with the table's predictions."""
    if n < 2:
        raise HwnasError(f"--n must be at least 2 to rank subnets, got {n}")
    predictor = LatencyPredictor(table, space)
    calibration = {a.digest for a in sample_archs(space, predictor.calibration.n, CALIBRATION_SEED, extremes=True)}
    archs = [a for a in sample_archs(space, n + len(calibration), seed) if a.digest not in calibration][:n]
    out = Path(out or Path("runs") / "validate" / f"{table.device}_{space.key}")
    passes = measure_archs(space, table, archs, out / "work", passes=2, protocol=protocol, progress=progress)
    measured = (passes[0] + passes[1]) / 2
    sums = predictor.sum_many(archs)
    predicted = predictor.calibration(sums)

    report = {
        "space": space.key, "table": table.name, "device": table.device, "backend": table.fingerprint["backend"],
        "n": len(archs), "seed": seed, "calibration": predictor.calibration.to_dict(),
        "calibrated": agreement(predicted, measured),
        "uncalibrated_sum": agreement(sums, measured),
        "floor_pass2_vs_pass1": agreement(passes[1], passes[0]),
        "measured_ms_range": [float(measured.min()), float(measured.max())],
        "fingerprint": table.fingerprint,
    }
    df = pd.DataFrame({"digest": [a.digest for a in archs], "predicted_ms": predicted, "sum_ms": sums,
                       "measured_ms": measured, "pass1_ms": passes[0], "pass2_ms": passes[1],
                       "arch": [json.dumps(a.to_dict()) for a in archs]})
    atomic_write_bytes(out / "validate.csv", df.to_csv(index=False).encode())
    report["csv"] = str(out / "validate.csv")
    report["plot"] = str(scatter_plot(df, report, out / "validate.png"))
    report["json"] = str(out / "validate.json")
    atomic_write_json(out / "validate.json", report)
    return report


def scatter_plot(df: pd.DataFrame, report: dict[str, Any], path: Path) -> Path:
    fig, ax = figure(5.5, 5)
    lo, hi = float(df[["predicted_ms", "measured_ms"]].min().min()), float(df[["predicted_ms", "measured_ms"]].max().max())
    line = np.linspace(lo * 0.95, hi * 1.05, 2)
    ax.plot(line, line, "k-", lw=1, label="predicted = measured")
    ax.fill_between(line, line * 0.9, line * 1.1, color="0.85", label="+-10%")
    ax.scatter(df["measured_ms"], df["sum_ms"], s=12, c="tab:gray", marker="x", label="sum of rows (uncalibrated)")
    ax.scatter(df["measured_ms"], df["predicted_ms"], s=16, c="tab:blue", label="calibrated prediction")
    m, f = report["calibrated"], report["floor_pass2_vs_pass1"]
    ax.set_title(f"{report['space']} on {report['device']} ({report['backend']}), n={report['n']}\n"
                 f"MAPE {m['mape_pct']:.1f}%, within 10% {m['within_10pct']:.0f}%, tau {m['kendall_tau']:.2f} "
                 f"(floor: MAPE {f['mape_pct']:.1f}%, tau {f['kendall_tau']:.2f})", fontsize=8)
    ax.set_xlabel("measured end to end (ms)")
    ax.set_ylabel("predicted (ms)")
    ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, path)
