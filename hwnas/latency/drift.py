"""Does a latency table hold on this machine? The spot check, local refits and recalibration.

A table is measured on one setup, then used under other onnxruntime, torch or TensorRT versions
and on other processors, where its predictions can be off by tens of percent. The error is close to
one factor for the whole network, so a few end-to-end measurements fix it:

- `check_drift` runs whenever a table is used on a machine that can run its setup but whose setup
  differs in a field that moves latency. It measures a few of the space's calibration subnets (the
  smallest, the largest and three random ones) end to end with a brief protocol and compares them
  with the prediction. If they agree within tolerance, the table holds as it is. If not, the
  calibration is refitted for this setup (mode "refit") or the command refuses (mode "fail").
  Either outcome is stored as a local calibration (`hwnas.latency.local`), and the next command on
  the same setup reuses it without measuring.
- `recalibrate` (`hwnas profile --recalibrate`) measures all calibration subnets and a sample of
  rows, refits on the subnets, and reports the drift of both.

Sometimes the rows themselves have drifted unevenly. Then the refitted calibration still misses a
measured subnet by more than `DriftPolicy.uneven`, or the measured ranking disagrees with the
table's, and only a full re-profile makes the table hold. Both checks say so (and refit in the
meantime: the refit keeps the table's ranking, a > 0, and is the best the measurements allow).
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import HwnasError, HwnasNotice, HwnasWarning
from hwnas.latency.bundle import block_plans, network_plans
from hwnas.latency.calibration_subnets import calibration_archs
from hwnas.latency.local import LocalCalibration, LocalCalibrations, describe_outcome, direction, table_digest
from hwnas.latency.measure import (
    measure_archs,
    measure_here,
    require_here,
    setup_of,
    statistic_by_plan,
    table_settings,
    why_not_here,
)
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.table import (
    LATENCY_FIELDS,
    Calibration,
    LatencyTable,
    TableError,
    profile_command,
    round_to_resolution,
)
from hwnas.profilers.protocol import Protocol
from hwnas.spaces import Arch, SearchSpace

REFIT, FAIL, IGNORE = "refit", "fail", "ignore"
DRIFT_MODES = (REFIT, FAIL, IGNORE)
MIN_TAU = 0.6  # below this the measured ranking of the calibration subnets disagrees with the table's
# Pairs of subnets the table predicts closer than this (relative) are left out of that ranking: the
# brief protocol swaps near-ties on a busy machine, which says nothing of how the rows drifted.
DISTINCT = 0.10


class DriftError(HwnasError):
    """A table that does not hold on this machine, under `--drift fail`."""


class LatencyDriftWarning(HwnasWarning):
    """A table that was off on this machine (and was refitted), or whose rows drifted unevenly."""


@dataclass(frozen=True)
class DriftPolicy:
    """What to do when a table is used on a setup other than its own."""

    mode: str = REFIT  # refit: refit and go on; fail: refuse; ignore: do not check
    tolerance: float = 0.05  # the table holds while the median measured/predicted ratio is within this
    uneven: float = 0.10  # a refit that still misses a subnet by more means the rows drifted unevenly
    archs: int = 5  # calibration subnets a spot check measures (the smallest and the largest first)
    protocol: Protocol = field(default_factory=Protocol.brief)

    def __post_init__(self) -> None:
        if self.mode not in DRIFT_MODES:
            raise HwnasError(f"unknown --drift value {self.mode!r}; use {', '.join(DRIFT_MODES)}")


@dataclass(frozen=True)
class Comparison:
    """Calibration subnets measured here against what the table predicts for them."""

    digests: tuple[str, ...]
    sums: np.ndarray  # plain sums of the table's rows
    own: Calibration  # the table's calibration
    measured: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return self.own(self.sums)

    @property
    def ratio(self) -> float:
        """Median of measured / predicted: the factor by which this machine differs from the table."""
        return float(np.median(self.measured / self.predicted))

    @property
    def drift_pct(self) -> float:
        return 100 * (self.ratio - 1)

    @cached_property
    def refit(self) -> Calibration:
        return Calibration.fit(self.sums, self.measured)

    @property
    def residual_pct(self) -> float:
        """The largest miss of the refitted calibration on the measured subnets (%)."""
        return float(100 * np.max(np.abs(self.refit(self.sums) / self.measured - 1)))

    @property
    def kendall_tau(self) -> float:
        """Kendall tau of the measured against the predicted order, over the pairs the table predicts
        more than `DISTINCT` apart (NaN with fewer than 6 such pairs, four subnets' worth: too few to
        judge a ranking by)."""
        predicted = round_to_resolution(self.predicted)
        i, j = np.triu_indices(len(predicted), k=1)
        apart = np.abs(predicted[i] - predicted[j]) > DISTINCT * np.minimum(predicted[i], predicted[j])
        if apart.sum() < 6:
            return float("nan")
        i, j = i[apart], j[apart]
        return float(np.mean(np.sign(predicted[i] - predicted[j]) * np.sign(self.measured[i] - self.measured[j])))

    def uneven(self, limit: float) -> bool:
        return self.residual_pct > 100 * limit or self.kendall_tau < MIN_TAU

    def to_dict(self) -> dict[str, Any]:
        return {
            "subnets": list(self.digests),
            "sum_ms": self.sums.tolist(),
            "predicted_ms": self.predicted.tolist(),
            "measured_ms": self.measured.tolist(),
            "ratio": self.ratio,
            "drift_pct": self.drift_pct,
            "kendall_tau": self.kendall_tau,
            "refit": self.refit.to_dict(),
            "residual_after_refit_pct": self.residual_pct,
        }


def compare(table: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured: np.ndarray) -> Comparison:
    predictor = LatencyPredictor(table, space)
    sums = predictor.sum_many(archs)
    return Comparison(tuple(a.digest for a in archs), sums, predictor.calibration, np.asarray(measured, dtype=float))


def spot_check(
    table: LatencyTable, space: SearchSpace, policy: DriftPolicy = DriftPolicy(), progress: bool = True
) -> Comparison:
    """Measure the first `policy.archs` calibration subnets of `space` here and compare them with `table`."""
    n = min(policy.archs, table.calibration(space).n)
    archs = calibration_archs(space, n)
    return compare(table, space, archs, measure_archs(space, table, archs, None, policy.protocol, progress))


def check_drift(
    table: LatencyTable, space: SearchSpace, policy: DriftPolicy = DriftPolicy(), progress: bool = True
) -> LatencyTable:
    """`table` as it holds on this machine for `space`: as it is, or with its local calibration for
    this setup (stored earlier, or found now by a spot check). Says what it did in one line."""
    if policy.mode == IGNORE or table.calibration_source(space) is not None:
        return table
    if why_not_here(table.fingerprint):  # another device's table (searching for it here): used as measured there
        return table
    setup = setup_of(table)
    digest = table_digest(table, space)
    store = LocalCalibrations(table.path) if table.path else None
    stored = store.find(space, setup, digest) if store else None
    if store and stored:
        _notice(
            f"{space.key}: latency table {table.name} with this setup's local calibration "
            f"({describe_outcome(stored.to_dict())}; {store.path})"
        )
        if stored.uneven:
            _warn_uneven(table, space, f"found by the {stored.how} of {stored.created[:10]}")
        return _localize(table, space, stored, store.path)
    differences = table.setup_differences(setup, LATENCY_FIELDS)
    if not differences:
        return table
    began = time.perf_counter()
    comparison = spot_check(table, space, policy, progress)
    seconds = time.perf_counter() - began
    uneven = comparison.uneven(policy.uneven)
    holds = abs(comparison.ratio - 1) <= policy.tolerance and not uneven
    what = (
        f"{len(comparison.measured)} calibration subnets measured {direction(comparison.drift_pct)} its "
        f"predictions ({'; '.join(differences)})"
    )
    if not holds and policy.mode == FAIL:
        fix = (
            f"re-profile it with `{profile_command(table.fingerprint, space.key, None)} --out NEW.csv`"
            if uneven
            else f"recalibrate it for this setup with `hwnas profile --recalibrate --device {table.device} --space "
            f"{space.key} --table {table.path}`, or use --drift refit"
        )
        raise DriftError(f"latency table {table.name} does not hold on this machine for {space.key}: {what}; {fix}")
    entry = _record(
        table,
        space,
        setup,
        comparison,
        "spot check",
        refit=not holds,
        uneven=uneven,
        evidence={"seconds": round(seconds, 1), "differences": differences, "protocol": policy.protocol.to_dict()},
    )
    path = store.store(entry) if store else None
    kept = f"stored in {path}" if path else "not stored"
    if holds:
        _notice(
            f"latency table {table.name} holds on this machine for {space.key}: {what}; checked in {seconds:.0f} s, "
            f"{kept}"
        )
    elif uneven:
        _warn_uneven(
            table,
            space,
            f"{what}, ranked with Kendall tau {comparison.kendall_tau:.2f} (pairs predicted more than "
            f"{DISTINCT:.0%} apart), and a refit "
            f"still misses one by {comparison.residual_pct:.0f}%; refitted for now, {kept}",
        )
    else:
        warnings.warn(
            f"latency table {table.name} is off on this machine for {space.key}: {what}; refitted its "
            f"calibration for this setup (now within {comparison.residual_pct:.1f}% of them), {kept}",
            LatencyDriftWarning,
            stacklevel=2,
        )
    return _localize(table, space, entry, path)


def recalibrate(
    table: LatencyTable,
    space: SearchSpace,
    rows: int = 8,
    protocol: Protocol | None = None,
    policy: DriftPolicy = DriftPolicy(),
    progress: bool = True,
) -> dict[str, Any]:
    """Measure every calibration subnet of `space` and `rows` sampled rows of `table` on this machine,
    refit the calibration for this setup (stored as its local calibration), and report the drift of
    both. The table file is not changed."""
    require_here(table, "recalibrate")
    if not table.covers(space):
        spaces = ", ".join(table.calibrations) or "no space"
        raise TableError(
            f"latency table {table.name} does not cover {space.key} (it holds {spaces}); profile the space "
            f"first with `{profile_command(table.fingerprint, space.key, table.path)}`"
        )
    began = time.perf_counter()
    predictor = LatencyPredictor(table, space)  # every row there, or a one-line error naming the command
    settings = table_settings(table, protocol or policy.protocol)
    archs = calibration_archs(space, table.calibration(space).n)
    measured = table.measured_rows().index  # a fitted row's error is not drift
    candidates = [b for b in predictor.blocks if b.key in measured]
    blocks = random.Random(0).sample(candidates, min(rows, len(candidates)))
    plans = block_plans(blocks, settings.batch_size, settings.precision) + network_plans(
        archs, settings.batch_size, settings.precision
    )
    measured = measure_here(space, settings, plans, f"recalibrate {space.key}" if progress else None)
    now = statistic_by_plan(plans, measured)
    comparison = compare(table, space, archs, now[len(blocks) :])
    then = table.latencies(blocks, space.key)
    row_ratio = now[: len(blocks)] / then  # reported: whole subnets decide unevenness (a 10-us row may move 30%)
    setup = setup_of(table, settings)
    entry = _record(
        table,
        space,
        setup,
        comparison,
        "recalibration",
        refit=True,
        uneven=comparison.uneven(policy.uneven),
        evidence={
            "rows": [b.key for b in blocks],
            "rows_ratio": row_ratio.tolist(),
            "protocol": settings.protocol.to_dict(),
        },
    )
    stored = LocalCalibrations(table.path).store(entry) if table.path else None
    return {
        "table": table.name,
        "space": space.key,
        "seconds": round(time.perf_counter() - began, 1),
        "setup_differences": table.setup_differences(setup, LATENCY_FIELDS),
        "calibration_before": table.calibration(space).to_dict(),
        "calibration_after": entry.calibration.to_dict(),
        "calibration_subnets": comparison.to_dict(),
        "rows": [
            {"key": b.key, "table_ms": float(t), "measured_ms": float(m), "ratio": float(r)}
            for b, t, m, r in zip(blocks, then, now, row_ratio)
        ],
        "rows_ratio_median": float(np.median(row_ratio)),
        "rows_ratio_range": [float(row_ratio.min()), float(row_ratio.max())],
        "uneven": entry.uneven,
        "stored": str(stored) if stored else None,
        "reprofile": f"{profile_command(table.fingerprint, space.key, None)} --out NEW.csv" if entry.uneven else None,
    }


def _record(
    table: LatencyTable,
    space: SearchSpace,
    setup: Mapping[str, Any],
    comparison: Comparison,
    how: str,
    refit: bool,
    uneven: bool,
    evidence: dict[str, Any],
) -> LocalCalibration:
    """The local calibration a check found: the refit, or the table's own calibration where it held."""
    return LocalCalibration(
        space=space.ref,
        setup={k: setup[k] for k in ("device", "backend", *LATENCY_FIELDS) if k in setup},
        table_digest=table_digest(table, space),
        calibration=comparison.refit if refit else comparison.own,
        how=how,
        drift_pct=comparison.drift_pct,
        refit=refit,
        uneven=uneven,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        evidence={**comparison.to_dict(), **evidence},
    )


def _localize(table: LatencyTable, space: SearchSpace, entry: LocalCalibration, path: Path | None) -> LatencyTable:
    source = {
        "kind": "local",
        "how": entry.how,
        "file": str(path) if path else None,
        "created": entry.created,
        "drift_pct": entry.drift_pct,
        "refit": entry.refit,
        "uneven": entry.uneven,
        "table_calibration": table.calibration(space).to_dict(),
    }
    return table.with_calibration(space, entry.calibration, source)


def _warn_uneven(table: LatencyTable, space: SearchSpace, evidence: str) -> None:
    warnings.warn(
        f"latency table {table.name}: its rows drifted unevenly on this machine for {space.key} ({evidence}); "
        f"no calibration can make it hold, so its predictions here are approximate: re-profile with "
        f"`{profile_command(table.fingerprint, space.key, None)} --out NEW.csv`",
        LatencyDriftWarning,
        stacklevel=3,
    )


def _notice(message: str) -> None:
    warnings.warn(message, HwnasNotice, stacklevel=3)
