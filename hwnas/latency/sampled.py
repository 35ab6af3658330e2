"""A table from a sample of its rows: `hwnas profile --budget-min M` (and `--from TABLE`).

A space's rows grow with the product of its choices (480 for `resnas-tiny`), yet within one block
kind latency follows a few costs of the block's shape (`hwnas.latency.rowfit`). So, in the spirit
of nn-Meter's adaptive sampling: the calibration subnets are measured first (the table needs them
whatever else it has), then a design of rows shared among the kinds by their weight in a subnet,
spread over each kind's costs (each the row farthest, in log-cost space, from those measured, the
rows other spaces put in the table included; in a new table the costliest rows by MACs, parameters
and input come first), then, while the budget lasts, more rows for the kinds whose cross-validated
fit errs most in a subnet's latency. Every row not
measured is fitted and stored as such (`source` fit, with the fit's error), and the calibration is
fitted on the calibration subnets as for a full table.

With `source` (a table of the same space measured on another device), a row's latency there is
the one cost it is fitted on: a few measured rows per kind give per-kind factors, so a device
whose attention and MLP kernels scale differently is followed kind by kind, not by one line.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hwnas.errors import HwnasError, HwnasNotice
from hwnas.latency.bundle import Plan
from hwnas.latency.calibration_subnets import calibration_pairs
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.rowfit import KindFit, costs, fit_kinds, fitted_rows
from hwnas.latency.table import LATENCY, STATISTICS, Calibration, LatencyTable, TableError, profile_command
from hwnas.spaces import SearchSpace
from hwnas.spaces.blocks import BlockConfig

FIRST_PER_KIND = 4  # rows per kind in the first design, on average: shared by the kinds' weight in a subnet
LEAST_PER_KIND = 3  # but at least these (where a kind has them): its fit's error is cross-validated from 3
# A budget that the calibration subnets would mostly fill measures fewer of them, down to 8, so the
# rows keep a quarter of it (`benchmarks/calibration_subnets.py`: calibrations refitted on 8 of the
# shipped table's 12 subnets predict the validation subnets within a few tenths of a MAPE point).
CALIBRATION_SHARE = 0.75
MIN_CALIBRATION = 8
PROBES = 3  # calibration subnets measured one by one first, to time a subnet here
# (plans, round name, show progress) -> measured rows, which it also adds to the table
MEASURE = Callable[[Sequence[Plan], str, bool], list[dict[str, Any]]]


class BudgetTooSmall(HwnasError):
    """A `--budget-min` below what the fewest calibration subnets a table is fitted on take here."""


def spread(blocks: Sequence[BlockConfig], taken: Sequence[BlockConfig], count: int) -> list[BlockConfig]:
    """`count` of `blocks` spread over their costs: each the one farthest (in log-cost space) from
    those `taken` so far; with none taken, the corners first (a fit extrapolates worst along the cost
    it has not seen: a few-token stage's widest rows are weight-heavy, not MAC-heavy)."""
    if count <= 0 or not blocks:
        return []
    logs = np.log1p(costs(blocks))
    lo, span = logs.min(axis=0), np.maximum(np.ptp(logs, axis=0), 1e-9)
    x = (logs - lo) / span
    if taken:
        chosen: list[int] = []
        seen = (np.log1p(costs(taken)) - lo) / span
    else:  # the corners first: the costliest row by MACs, by parameters and by input, then the cheapest
        corners = [int(np.argmax(x[:, 0])), int(np.argmax(x[:, 1])), int(np.argmax(x[:, 2])), int(np.argmin(x[:, 0]))]
        chosen = list(dict.fromkeys(corners))[:count]
        seen = x[chosen]
    while len(chosen) < min(count, len(blocks)):
        distance = np.min(np.linalg.norm(x[:, None, :] - seen[None, :, :], axis=2), axis=1)
        distance[chosen] = -1.0
        pick = int(np.argmax(distance))
        chosen.append(pick)
        seen = np.vstack([seen, x[pick]])
    return [blocks[i] for i in chosen]


def profile_sampled(
    space: SearchSpace,
    table: LatencyTable,
    calibration: Sequence[Plan],
    block_plan: Callable[[Sequence[BlockConfig]], list[Plan]],
    measure: MEASURE,
    budget_s: float | None,
    source: LatencyTable | None = None,
    max_rows: int | None = None,
    keep: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Measure the calibration subnets and a sample of `space`'s rows into `table` within `budget_s`
    seconds and at most `max_rows` rows (but one per kind; both None: the first design only), then
    fit every other row; a fitted row in `keep` (in another space's calibration) keeps its value.
    Returns what it measured (with `calibration_subnets`: how many of `calibration`, in order, were
    measured)."""
    began = time.perf_counter()
    blocks = [b for b in dict.fromkeys(space.block_configs()) if b.key not in table.measured_rows().index]
    kinds = sorted({b.kind for b in blocks})
    # three subnets first, one at a time and quietly: the first (the smallest) pays the exporter's
    # start-up once, the second (the largest) and the third (a random one) say what a subnet takes
    # here, as a line in its MACs (timing the first alone overstated it: 7.6 s for a digits subnet,
    # the next 4.5 s; the largest alone overstates the others: 24 s for autoformer-base, 15 s a subnet)
    rows, took = [], []
    for plan in calibration[:PROBES]:
        start = time.perf_counter()
        rows += measure([plan], "probe", False)
        took.append(time.perf_counter() - start)
    seconds = _seconds_per_subnet(calibration, took)
    calibration = calibration[: _calibration_count(space, seconds, budget_s, time.perf_counter() - began)]
    if len(calibration) > PROBES:
        rows += measure(calibration[PROBES:], "calibration", True)
    # the first design: a row of each kind first (so a cap keeps every kind), then the others in turn
    # by their kind's share; with a budget, that first row of each is measured alone, to time a row
    # here (a row takes a fraction of a subnet: timing rows as subnets left resnas-small's 3 minutes
    # with one measured row per kind), then the rest as time allows
    shares = kind_shares(space)
    design = first_design(table, blocks, shares)
    design = design[: max(len(kinds), max_rows) if max_rows is not None else len(design)]
    first, pending = (design[: len(kinds)], design[len(kinds) :]) if budget_s is not None else (design, [])
    rows_began = time.perf_counter()
    rows += measure(block_plan(first), "design", True)
    taken, rounds = len(first), 1
    while budget_s is not None or max_rows is not None:
        unmeasured = [b for b in blocks if b.key not in table.measured_rows().index]
        count = len(unmeasured) if max_rows is None else min(len(unmeasured), max_rows - taken)
        if budget_s is not None:  # as many rows as fit, less one: the last fits and the save take time too
            left = budget_s - (time.perf_counter() - began)
            count = min(count, int(left * taken / max(time.perf_counter() - rows_began, 1e-9)) - 1)
        least = 1 if pending else min(len(kinds), len(unmeasured))  # a round of the fit's: a row per kind
        if not unmeasured or count < max(least, 1):
            break
        if pending:
            more, pending = pending[:count], pending[count:]
        else:
            fits = fit_kinds(table, kinds, source)
            wanted = min(count, max(len(kinds), len(unmeasured) // 2))
            more = _where_fits_err(unmeasured, table, fits, shares, wanted)[:count]
        rows += measure(block_plan(more), f"round {rounds + 1}", True)
        taken, rounds = taken + len(more), rounds + 1
    fits, fitted = fit_unmeasured(table, blocks, source, keep)
    return {
        "rows_measured": len(blocks) - fitted,
        "rows_fitted": fitted,
        "calibration_subnets": len(calibration),
        "fit_error_pct": {k: _error(f[LATENCY]) for k, f in fits.items()},
        "measured": rows,
    }


def fit_unmeasured(
    table: LatencyTable, blocks: Sequence[BlockConfig], source: LatencyTable | None, keep: frozenset[str]
) -> tuple[dict[str, dict[str, KindFit]], int]:
    """Fit every row of `blocks` the table has not measured from its kind's measured rows (on their
    features, or on `source`'s latency of them); a fitted row in `keep` (another space's calibration
    sums it) keeps its value. Returns the fits and how many of `blocks` are not measured."""
    fits = fit_kinds(table, sorted({b.kind for b in blocks}), source)
    missing = [b for b in blocks if b.key not in table.measured_rows().index]
    kept = set(table.filled_rows) & keep
    table.replace_fitted(*fitted_rows(fits, [b for b in missing if b.key not in kept]))
    return fits, len(missing)


def refit(
    table: LatencyTable, space: SearchSpace, source: LatencyTable | None = None, keep: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Fit `space`'s fitted rows again, with the fit as it is now on every row the table has
    measured (other spaces' rows included), and its calibration of each statistic again on the
    calibration subnets' measurements it stores; nothing is measured. The calibration's points are
    sums of rows, so its subnets are found by those sums before any row moves. Returns what moved."""
    pairs = {}
    for statistic in [s for s in STATISTICS.values() if s not in table.missing_statistics(space)]:
        calibration = table.calibration(space, statistic)
        archs, then = calibration_pairs(space, LatencyPredictor(table, space, statistic))
        if len(archs) < calibration.n:
            raise TableError(
                f"only {len(archs)} of the {calibration.n} calibration subnets of {space.key} in {table.name} are found "
                f"by their sums of rows (rows were measured again after its calibration); re-profile it instead: "
                f"`{profile_command(table.fingerprint, space.key, table.path)}`"
            )
        pairs[statistic] = (archs, then)
    blocks = list(dict.fromkeys(space.block_configs()))
    keys, before, stored = {b.key for b in blocks}, table.rows[LATENCY].copy(), table.filled_rows
    errors_before: dict[str, float | None] = {}  # the error a kind's fitted rows of the space store
    for block in blocks:
        if block.key in stored:
            errors_before.setdefault(block.kind, stored[block.key])
    fits, _ = fit_unmeasured(table, blocks, source, keep)
    moved = [k for k in table.filled_rows if k in keys and k in before.index and k not in keep]
    change = 100 * (table.rows.loc[moved, LATENCY] / before.loc[moved] - 1).to_numpy(dtype=float)
    kinds_moved = set(table.rows.loc[moved, "kind"])
    calibration_before = table.calibration(space).to_dict()
    for statistic, (archs, then) in pairs.items():
        sums = LatencyPredictor(table, space, statistic).sum_many(archs)
        table.set_calibration(space, Calibration.fit(sums, then), statistic)
    return {
        "rows_refitted": len(moved),
        "rows_kept": len(set(stored) & keep & keys),
        "row_change_pct": {
            "median_abs": float(np.median(np.abs(change))) if len(change) else 0.0,
            "max_abs": float(np.max(np.abs(change))) if len(change) else 0.0,
        },
        "fit_error_pct_before": errors_before,
        "fit_error_pct": {k: _error(f[LATENCY]) for k, f in fits.items() if k in kinds_moved},
        "calibration_before": calibration_before,
        "calibration": table.calibration(space).to_dict(),
        "calibrated_statistics": list(pairs),
    }


def _error(fit: KindFit) -> float | None:
    return None if math.isnan(fit.cv_error_pct) else fit.cv_error_pct


def _seconds_per_subnet(calibration: Sequence[Plan], took: Sequence[float]) -> np.ndarray:
    """What measuring each calibration subnet takes here: the probes' own times (`took`, all
    `PROBES` of them when there are more subnets), and for the others a line in their MACs through
    the second and third probes' (their mean where that line fails)."""
    seconds = np.array([*took, *[np.nan] * (len(calibration) - len(took))], dtype=float)
    if len(took) < len(calibration):
        macs = np.array([sum(BlockConfig.from_key(k).macs() for k in p.entry.blocks) for p in calibration], float)
        (x1, x2), (t1, t2) = macs[1:3], took[1:3]
        slope = (t1 - t2) / (x1 - x2) if x1 != x2 else 0.0
        estimate = (
            np.maximum(t2 + slope * (macs - x2), min(t1, t2) / 4) if slope > 0 else np.full(len(macs), (t1 + t2) / 2)
        )
        seconds[len(took) :] = estimate[len(took) :]
    return seconds


def _calibration_count(space: SearchSpace, seconds: np.ndarray, budget_s: float | None, probed: float) -> int:
    """How many of the calibration subnets (the probes measured in `probed` seconds, each other one
    taking `seconds`) to measure: all, unless they would take more than `CALIBRATION_SHARE` of the
    budget; then as many as fit in that share but at least `MIN_CALIBRATION`. A budget too small for
    those is refused with the minimum it needs."""
    count, least = len(seconds), min(len(seconds), MIN_CALIBRATION)
    done = min(count, PROBES)
    needed = probed + np.concatenate(([0.0] * done, np.cumsum(seconds[done:])))  # for the first 1, 2, ... subnets
    if budget_s is None or needed[-1] <= CALIBRATION_SHARE * budget_s:
        return count
    typical = float(np.median(seconds[1:] if count > 1 else seconds))
    if budget_s < needed[least - 1]:
        minimum = math.ceil(needed[least - 1] * 1.2 / 6) / 10  # minutes, rounded up to 0.1
        raise BudgetTooSmall(
            f"--budget-min {budget_s / 60:g} is too small to measure even {least} calibration subnets of "
            f"{space.key} here (one takes about {typical:.1f} s); give at least --budget-min {minimum:g}"
        )
    used = max(least, int(np.sum(needed <= CALIBRATION_SHARE * budget_s)))
    if used < count:
        full = math.ceil(needed[-1] / CALIBRATION_SHARE * 1.05 / 6) / 10
        warnings.warn(
            f"--budget-min {budget_s / 60:g} holds {used} of the {count} calibration subnets of {space.key} here "
            f"(one takes about {typical:.1f} s), so its calibration is fitted on {used}; --budget-min {full:g} "
            f"measures all {count}",
            HwnasNotice,
            stacklevel=3,
        )
    return used


def kind_shares(space: SearchSpace, subnets: int = 32) -> dict[str, float]:
    """Each block kind's share of the MACs of random subnets (a fixed draw): how much its rows weigh
    in a subnet's latency (a ViT-ResNAS space's encoders about 85%, its head well under 1%)."""
    rng, macs = random.Random(0), dict[str, float]()
    for arch in [space.sample(rng) for _ in range(subnets)]:
        for block in arch.blocks():
            macs[block.kind] = macs.get(block.kind, 0.0) + block.macs()
    total = sum(macs.values()) or 1.0
    return {kind: m / total for kind, m in macs.items()}


def first_design(table: LatencyTable, blocks: Sequence[BlockConfig], shares: dict[str, float]) -> list[BlockConfig]:
    """FIRST_PER_KIND rows per kind in all, shared among the kinds by their `shares` (at least
    LEAST_PER_KIND, at most all of a kind), each kind's spread from the rows the table has measured:
    the first row of every kind, then the others in turn, a kind's next row as soon as its share is due."""
    kinds = sorted({b.kind for b in blocks})
    per_kind = {}
    for kind in kinds:
        of_kind = [b for b in blocks if b.kind == kind]
        count = min(len(of_kind), max(LEAST_PER_KIND, round(FIRST_PER_KIND * len(kinds) * shares.get(kind, 0.0))))
        per_kind[kind] = spread(of_kind, _measured_of_kind(table, kind), count)
    rest = sorted((i / len(rows), kind, i) for kind, rows in per_kind.items() for i in range(1, len(rows)))
    return [per_kind[k][0] for k in kinds] + [per_kind[kind][i] for _, kind, i in rest]


def _where_fits_err(
    unmeasured: Sequence[BlockConfig],
    table: LatencyTable,
    fits: dict[str, dict[str, KindFit]],
    shares: dict[str, float],
    count: int,
) -> list[BlockConfig]:
    """`count` rows shared among the kinds by how much each kind's fit errs in a subnet's latency
    (cross-validated, times the kind's share; a kind too small to cross-validate counts as 100% off),
    spread within each (but at least one row of each kind)."""
    weight = {}
    for kind in {b.kind for b in unmeasured}:
        error = fits[kind][LATENCY].cv_error_pct if kind in fits else float("nan")
        weight[kind] = (100.0 if math.isnan(error) else error) * shares.get(kind, 0.0)
    total = sum(weight.values()) or 1.0
    chosen = []
    for kind, w in sorted(weight.items()):
        of_kind = [b for b in unmeasured if b.kind == kind]
        chosen += spread(of_kind, _measured_of_kind(table, kind), max(1, round(count * w / total)))
    return chosen


def _measured_of_kind(table: LatencyTable, kind: str) -> list[BlockConfig]:
    measured = table.measured_rows()
    return [BlockConfig.from_key(k) for k in measured[measured["kind"] == kind].index]
