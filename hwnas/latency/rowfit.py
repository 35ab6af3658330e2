"""Rows a table lacks, filled from a fit on the rows it has.

A block's latency grows with the work it does, so within one block kind it is well described by a
few costs of its shape: MACs, parameters (the bytes of weights read) and input activations (the
bytes of tokens read), plus the MACs that run at another cost per MAC than dense products (the
kind's `mac_parts`: attention's activation products, a depthwise convolution's taps, which on a CPU
cost several times a dense MAC). `KindFit` fits, per kind and per statistic, a non-negative linear
model on those features (scikit-learn's `LinearRegression(positive=True)` on relative errors; with
too few rows for its features, a line in MACs), then corrects it near the measured rows by what
they say it misses there (`Neighbours`: a kernel-weighted, shrunk mean of their log residuals, in
log-cost and token space; a width whose kernels run faster or slower than the line is seen in its
neighbours, and a row far from every measured one keeps the line), and reports the cross-validated
error of the whole, so a filled row says how far it may be off.

A run on another class count than the table was profiled for needs its head rows:
`fill_missing` adds them to an in-memory copy of the table, never to its file, and
`LatencyTable.filled_rows` names them with their error. `hwnas.latency.sampled` uses the same fits
for the rows a time-budgeted profile does not measure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hwnas.latency.table import LATENCY, LatencyTable, TableError
from hwnas.profilers.protocol import STAT_COLUMNS
from hwnas.spaces.blocks import MAC_PARTS, BlockConfig

TIMINGS = tuple(s for s in STAT_COLUMNS if s.endswith("_ms"))  # fitted; the counts (runs, rounds) of a filled row are 0


# A measured row corrects the rows within about BANDWIDTH of it, on axes each spanning its kind's measured
# rows (0 to 1); SHRINK is kernel weight that says "no correction", so one distant neighbour moves a row
# little. Chosen a priori and checked on the shipped table (`benchmarks/rowfit.py`: held-out rows and
# whole subnets, over bandwidths 0.05-0.3 and shrinks 0.5-2, all of which rank subnets alike).
BANDWIDTH = 0.1
SHRINK = 1.0


def costs(blocks: Sequence[BlockConfig]) -> np.ndarray:
    """The (n, 3) costs of a row's shape: MACs, parameters and input elements per image."""
    return np.array([[b.macs(), b.params(), math.prod(b.definition.input_shape(b, 1))] for b in blocks], dtype=float)


def features(blocks: Sequence[BlockConfig]) -> np.ndarray:
    """The (n, 5) features a row's latency is fitted on: its `costs`, then its MACs of each of
    `MAC_PARTS` (0 where a kind has no such part)."""
    parts = [[b.mac_parts().get(part, 0) for part in MAC_PARTS] for b in blocks]
    return np.hstack([costs(blocks), np.array(parts, dtype=float).reshape(len(blocks), len(MAC_PARTS))])


def _where(blocks: Sequence[BlockConfig], x: np.ndarray) -> np.ndarray:
    """Where rows lie for `Neighbours`: their fitted-on features and token count, in log space."""
    return np.log1p(np.hstack([np.maximum(x, 0.0), np.array([[b.tokens] for b in blocks], dtype=float)]))


@dataclass(frozen=True, eq=False)
class Neighbours:
    """What the measured rows near a row say the linear fit misses there, as a factor: their log
    residuals, weighted by a Gaussian kernel of their distance and shrunk toward no correction."""

    low: np.ndarray
    span: np.ndarray
    points: np.ndarray  # the measured rows, scaled to their span
    log_residuals: np.ndarray

    @classmethod
    def fit(cls, where: np.ndarray, log_residuals: np.ndarray) -> Neighbours:
        low, span = where.min(axis=0), np.maximum(np.ptp(where, axis=0), 1e-9)
        return cls(low, span, (where - low) / span, log_residuals)

    def __call__(self, where: np.ndarray) -> np.ndarray:
        scaled = (where - self.low) / self.span
        distance2 = ((scaled[:, None, :] - self.points[None, :, :]) ** 2).sum(axis=2)
        weight = np.exp(-distance2 / BANDWIDTH**2)
        return np.exp(weight @ self.log_residuals / (weight.sum(axis=1) + SHRINK))


@dataclass(frozen=True)
class KindFit:
    """One statistic of one block kind as a function of the blocks' features."""

    kind: str
    statistic: str
    coef: tuple[float, ...]  # per feature, ms per unit; zeros but the first where a line in it was fitted
    intercept: float
    n: int  # rows fitted on
    cv_error_pct: float  # mean absolute percentage error of held-out rows (leave-one-out up to 20 rows, else 5-fold)
    # what a row is fitted on: its `features`, or another basis such as its latency on another device
    basis: Callable[[Sequence[BlockConfig]], np.ndarray] = field(default=features, compare=False, repr=False)
    neighbours: Neighbours | None = field(default=None, compare=False, repr=False)  # None: the line alone

    def __call__(self, blocks: Sequence[BlockConfig]) -> np.ndarray:
        x = self.basis(blocks)
        return _predict(x, _where(blocks, x), self.coef, self.intercept, self.neighbours)

    @classmethod
    def fit(
        cls,
        blocks: Sequence[BlockConfig],
        ms: Sequence[float],
        statistic: str,
        basis: Callable[[Sequence[BlockConfig]], np.ndarray] | None = None,
        local: bool = True,
    ) -> KindFit:
        """The fit on measured rows (at least one, all of one kind), on their `features` or on `basis`;
        `local` False: the line without the neighbours' correction (`benchmarks/rowfit.py` compares)."""
        basis = basis or features
        x, y = basis(blocks), np.asarray(ms, dtype=float)
        where = _where(blocks, x) if local else None
        coef, intercept, neighbours = _fit(x, y, where)
        held_out = _cross_validated(x, y, where)
        error = float(100 * np.mean(np.abs(held_out - y) / y)) if held_out is not None else float("nan")
        return cls(blocks[0].kind, statistic, coef, intercept, len(y), error, basis, neighbours)


def _fit(x: np.ndarray, y: np.ndarray, where: np.ndarray | None) -> tuple[tuple[float, ...], float, Neighbours | None]:
    """The line (`_line`) and, given where the rows lie, the neighbours' correction of it."""
    coef, intercept = _line(x, y)
    if where is None:
        return coef, intercept, None
    return coef, intercept, Neighbours.fit(where, np.log(y / _predict(x, where, coef, intercept, None)))


def _predict(
    x: np.ndarray, where: np.ndarray | None, coef: tuple[float, ...], intercept: float, neighbours: Neighbours | None
) -> np.ndarray:
    """The line at `x` (at least 1 ns), times the neighbours' correction at `where` when there is one."""
    line = np.maximum(x @ np.array(coef) + intercept, 1e-6)
    return line if neighbours is None or where is None else line * neighbours(where)


def _line(x: np.ndarray, y: np.ndarray) -> tuple[tuple[float, ...], float]:
    """Non-negative least squares on the features the rows have (a part a kind lacks is none of its
    features) given enough rows; else a line (or a ratio) in the first (MACs). Squared errors are
    relative (weights 1/y^2): a kind's rows span 100x (a digits space's 25-us reduction beside a
    224-px one's 2 ms), and plain least squares would fit the large rows and leave the small ones
    tens of percent off."""
    used = np.flatnonzero((x != 0).any(axis=0))
    if len(y) > len(used) + 1:
        from sklearn.linear_model import LinearRegression

        scale = np.maximum(x[:, used].max(axis=0), 1.0)  # costs span 10^3-10^9: fit on a common scale
        model = LinearRegression(positive=True).fit(x[:, used] / scale, y, sample_weight=1.0 / y**2)
        coef = np.zeros(x.shape[1])
        coef[used] = model.coef_ / scale
        return tuple(float(c) for c in coef), float(model.intercept_)
    first, rest = x[:, 0], (0.0,) * (x.shape[1] - 1)
    if len(y) >= 2 and np.ptp(first) > 0:
        slope, intercept = np.polyfit(first, y, 1, w=1.0 / y)  # polyfit weights multiply the residuals
        if slope > 0:
            return (float(slope), *rest), float(intercept)
    return (float(y.sum() / max(first.sum(), 1e-12)), *rest), 0.0


def _cross_validated(x: np.ndarray, y: np.ndarray, where: np.ndarray | None) -> np.ndarray | None:
    """Each row predicted by a fit on the others (None with fewer than 3 rows: no error to report)."""
    if len(y) < 3:
        return None
    folds = np.arange(len(y)) if len(y) <= 20 else np.arange(len(y)) % 5
    out = np.empty_like(y)
    for fold in np.unique(folds):
        held = folds == fold
        coef, intercept, neighbours = _fit(x[~held], y[~held], None if where is None else where[~held])
        out[held] = _predict(x[held], None if where is None else where[held], coef, intercept, neighbours)
    return out


def fit_kinds(
    table: LatencyTable, kinds: Sequence[str], source: LatencyTable | None = None
) -> dict[str, dict[str, KindFit]]:
    """Per kind and timing statistic, the fit on the table's measured rows: on their features, or, with
    `source` (a table from another device), on that table's latency of the same rows."""
    measured = table.measured_rows()
    if source is not None:  # a table shared with other spaces: only the rows the source has
        measured = measured[measured.index.isin(source.rows.index)]
    fits: dict[str, dict[str, KindFit]] = {}
    for kind in kinds:
        rows = measured[measured["kind"] == kind]
        if not rows.empty:
            blocks = [BlockConfig.from_key(k) for k in rows.index]
            fits[kind] = {s: KindFit.fit(blocks, rows[s].to_numpy(dtype=float), s, _basis(source, s)) for s in TIMINGS}
    return fits


def _basis(source: LatencyTable | None, statistic: str) -> Callable[[Sequence[BlockConfig]], np.ndarray] | None:
    if source is None:
        return None
    return lambda blocks: source.latencies(list(blocks), "", statistic)[:, None]


def fitted_rows(
    fits: dict[str, dict[str, KindFit]], blocks: Sequence[BlockConfig]
) -> tuple[list[tuple[BlockConfig, dict[str, float]]], dict[str, float | None]]:
    """The rows of `blocks` as their kinds' fits give them (the counts of a fitted row are 0), and
    each row's fit error (None: too few rows to cross-validate)."""
    rows, errors = [], {}
    for kind in sorted({b.kind for b in blocks}):
        of_kind = [b for b in blocks if b.kind == kind]
        stats = {s: fits[kind][s](of_kind) for s in TIMINGS}
        rows += [
            (b, {s: float(stats[s][i]) if s in TIMINGS else 0.0 for s in STAT_COLUMNS}) for i, b in enumerate(of_kind)
        ]
        error = fits[kind][LATENCY].cv_error_pct
        errors.update({b.key: None if math.isnan(error) else error for b in of_kind})
    return rows, errors


def fill_missing(table: LatencyTable, blocks: Sequence[BlockConfig]) -> LatencyTable:
    """`table` with the rows of `blocks` it lacks filled from per-kind fits (in memory; the file is
    untouched), or the table itself when none is missing. A kind the table has no row of cannot be
    fitted: that is a one-line error naming the profile command."""
    missing = table.missing(blocks)
    if not missing:
        return table
    kinds = sorted({b.kind for b in missing})
    fits = fit_kinds(table, kinds)
    unknown = [k for k in kinds if k not in fits]
    if unknown:
        example = next(b for b in missing if b.kind == unknown[0])
        raise TableError(
            f"latency table {table.name} has no row of block kind {unknown[0]!r} to fit {example.key} from; "
            f"profile the space for this table's device (`hwnas profile`)"
        )
    return table.with_filled_rows(*fitted_rows(fits, missing))
