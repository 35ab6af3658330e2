"""A table from a sample of its rows: `hwnas profile --budget-min M` (and `--from TABLE`).

A space's rows grow with the product of its choices (480 for `resnas-tiny`), yet within one block
kind latency follows a few costs of the block's shape (`hwnas.latency.rowfit`). So, in the spirit
of nn-Meter's adaptive sampling: the calibration subnets are measured first (the table needs them
whatever else it has), then per kind a design of rows spread over the kind's costs (the cheapest
and costliest rows, then the rows farthest from those measured, in log-cost space), then, while
the budget lasts, more rows for the kinds whose cross-validated fit errs most. Every row not
measured is fitted and stored as such (`source` fit, with the fit's error), and the calibration is
fitted on the calibration subnets as for a full table.

With `source` (a table of the same space measured on another device), a row's latency there is
the one cost it is fitted on: a few measured rows per kind give per-kind factors, so a device
whose attention and MLP kernels scale differently is followed kind by kind, not by one line.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hwnas.errors import HwnasError, HwnasNotice
from hwnas.latency.bundle import Plan
from hwnas.latency.rowfit import KindFit, costs, fit_kinds, fitted_rows
from hwnas.latency.table import LATENCY, LatencyTable
from hwnas.spaces import SearchSpace
from hwnas.spaces.blocks import BlockConfig

FIRST_PER_KIND = 4  # rows of each kind in the first design (all of a kind with fewer)
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
    those `taken` so far, starting from the cheapest and the costliest."""
    if count <= 0 or not blocks:
        return []
    logs = np.log1p(costs(blocks))
    lo, span = logs.min(axis=0), np.maximum(np.ptp(logs, axis=0), 1e-9)
    x = (logs - lo) / span
    if taken:
        chosen: list[int] = []
        seen = (np.log1p(costs(taken)) - lo) / span
    else:  # the corners first: the cheapest and the costliest row by MACs
        chosen = list(dict.fromkeys([int(np.argmin(x[:, 0])), int(np.argmax(x[:, 0]))]))[:count]
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
    per_model = float(np.mean(seconds[1:])) if len(seconds) > 1 else float(seconds[0])
    # the first design, kind by kind in turn (so a cap keeps every kind): at least one row per kind,
    # at most what the budget left allows at a subnet's time per row (a row takes less)
    per_kind = [spread([b for b in blocks if b.kind == k], [], FIRST_PER_KIND) for k in kinds]
    design = [b for group in itertools.zip_longest(*per_kind) for b in group if b is not None]
    if budget_s is not None:
        design = design[: max(len(kinds), int((budget_s - (time.perf_counter() - began)) / per_model))]
    design = design[: max(len(kinds), max_rows) if max_rows is not None else len(design)]
    rows += measure(block_plan(design), "design", True)
    taken, rounds = len(design), 1
    while budget_s is not None or max_rows is not None:
        unmeasured = [b for b in blocks if b.key not in table.measured_rows().index]
        count = len(unmeasured) if max_rows is None else min(len(unmeasured), max_rows - taken)
        if budget_s is not None:
            left = budget_s - (time.perf_counter() - began)
            per_row = (time.perf_counter() - began) / max(len(rows), 1)
            count = min(count, int(left / per_row) if per_row > 0 else 0)
        if not unmeasured or count <= 0 or (budget_s is not None and count < min(len(kinds), len(unmeasured))):
            break
        fits = fit_kinds(table, kinds, source)
        more = _where_fits_err(unmeasured, table, fits, min(count, max(len(kinds), len(unmeasured) // 2)))[:count]
        rows += measure(block_plan(more), f"round {rounds + 1}", True)
        taken, rounds = taken + len(more), rounds + 1
    fits = fit_kinds(table, kinds, source)
    missing = [b for b in blocks if b.key not in table.measured_rows().index]
    kept = set(table.filled_rows) & keep
    table.replace_fitted(*fitted_rows(fits, [b for b in missing if b.key not in kept]))
    return {
        "rows_measured": len(blocks) - len(missing),
        "rows_fitted": len(missing),
        "calibration_subnets": len(calibration),
        "fit_error_pct": {
            k: (None if math.isnan(f[LATENCY].cv_error_pct) else f[LATENCY].cv_error_pct) for k, f in fits.items()
        },
        "measured": rows,
    }


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


def _where_fits_err(
    unmeasured: Sequence[BlockConfig], table: LatencyTable, fits: dict[str, dict[str, KindFit]], count: int
) -> list[BlockConfig]:
    """`count` rows shared among the kinds by how much each kind's fit errs (cross-validated, times
    its unmeasured rows; a kind too small to cross-validate counts as 100% off), spread within each."""
    measured = table.measured_rows()
    weight = {}
    for kind in {b.kind for b in unmeasured}:
        error = fits[kind][LATENCY].cv_error_pct if kind in fits else float("nan")
        weight[kind] = (100.0 if math.isnan(error) else error) * sum(b.kind == kind for b in unmeasured)
    total = sum(weight.values()) or 1.0
    chosen = []
    for kind, w in sorted(weight.items()):
        of_kind = [b for b in unmeasured if b.kind == kind]
        taken = [BlockConfig.from_key(k) for k in measured[measured["kind"] == kind].index]
        chosen += spread(of_kind, taken, max(1, round(count * w / total)))
    return chosen
