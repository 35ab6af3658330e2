"""Budgets and what an arch costs under them: predicted latency (on one device or several), FLOPs
(MACs) and parameters.

Every cost is a sum over the arch's blocks (latency then calibrated by a * sum + b with a > 0), so
the cheapest and the costliest arch under each cost are found exactly by the space before any
evaluation, and so is one arch within all budgets together (`hwnas.subnet_search.feasibility`): an
infeasible budget fails at once with the minimum achievable or the budgets that conflict, and a
budget that every arch meets is reported instead of searched.

Latency on the first (or only) device is the metric `latency_ms`; on each further device
`latency_ms@DEVICE`, so a one-device search reads as it always did.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.latency.predict import LatencyPredictor
from hwnas.spaces import Arch, SearchSpace
from hwnas.spaces.blocks import BlockConfig
from hwnas.subnet_search.feasibility import RELATIVE_SLACK, within_all

# metric -> (CLI option, unit): FLOPs are multiply-accumulates, as the ViT papers count them
METRICS = {
    "latency_ms": ("--latency-ms", "ms"),
    "flops_g": ("--flops-g", "GMACs"),
    "params_m": ("--params-m", "M params"),
}
LATENCY_METRIC = "latency_ms"


def latency_metric(device: str, first: bool) -> str:
    """The metric of latency on `device`: `latency_ms` for the first device, `latency_ms@DEVICE` after."""
    return LATENCY_METRIC if first else f"{LATENCY_METRIC}@{device}"


def metric_device(metric: str) -> str | None:
    """The device a latency metric names (None: the first device's `latency_ms`, or not latency)."""
    return metric.partition("@")[2] or None


def is_latency(metric: str) -> bool:
    return metric.partition("@")[0] == LATENCY_METRIC


def metric_info(metric: str) -> tuple[str, str]:
    """(CLI option, unit) of a metric; latency on a further device names it."""
    device = metric_device(metric)
    if device:
        return f"--latency-ms (--device {device})", f"ms on {device}"
    return METRICS[metric]


class BudgetError(HwnasError):
    """A budget that no architecture can meet, or one that is not a budget at all."""


@dataclass(frozen=True)
class LatencyBudget:
    """At most `ms` of predicted latency on `device` (its table's label; None: the one table a
    search predicts with, when it names no device), latency meaning `statistic` of the run times
    (p50, or p90 for a tail budget: each table's rows and calibration of that statistic)."""

    ms: float
    device: str | None = None
    statistic: str = "p50"


@dataclass(frozen=True)
class Budget:
    """Upper bounds an arch must meet: latency on any number of devices (the first is the primary
    one), GMACs and M params; None leaves a metric free. At least one is required."""

    latency: tuple[LatencyBudget, ...] = ()
    flops_g: float | None = None
    params_m: float | None = None

    def __post_init__(self) -> None:
        if len({b.statistic for b in self.latency}) > 1:
            raise BudgetError("latency budgets of one search bound one statistic (p50 or p90) on every device")
        given = self.limits()
        if not given:
            raise BudgetError("give at least one constraint: --latency-ms (with --device), --flops-g or --params-m")
        for metric, value in given.items():
            if not math.isfinite(value) or value <= 0:
                raise BudgetError(f"{metric_info(metric)[0]} must be a positive number, got {value}")

    @classmethod
    def on(
        cls,
        latency_ms: Sequence[float] = (),
        devices: Sequence[str | None] = (),
        flops_g: float | None = None,
        params_m: float | None = None,
        statistic: str = "p50",
    ) -> Budget:
        """A budget pairing each latency limit with a device, in order (no device: the one table)."""
        devices = list(devices) or [None] * len(latency_ms)
        latency = tuple(LatencyBudget(float(ms), d, statistic) for ms, d in zip(latency_ms, devices))
        return cls(latency, flops_g, params_m)

    @property
    def latency_ms(self) -> float | None:
        """The limit on the primary (first) device."""
        return self.latency[0].ms if self.latency else None

    def limits(self) -> dict[str, float]:
        """Metric name -> limit: the one place a budget's metric names are made."""
        latency = {latency_metric(str(b.device), first=i == 0): float(b.ms) for i, b in enumerate(self.latency)}
        others = {k: float(v) for k, v in (("flops_g", self.flops_g), ("params_m", self.params_m)) if v is not None}
        return {**latency, **others}

    @property
    def statistic(self) -> str:
        """What latency means in this budget (p50 when it bounds no latency)."""
        return self.latency[0].statistic if self.latency else "p50"

    def describe(self) -> str:
        tail = f" ({self.statistic})" if self.statistic != "p50" else ""
        return ", ".join(
            f"{k.partition('@')[0].removesuffix('_ms').removesuffix('_g').removesuffix('_m')} <= {v:g} "
            f"{metric_info(k)[1]}{tail if is_latency(k) else ''}"
            for k, v in self.limits().items()
        )


class Costs:
    """Latency (with a predictor per device), GMACs and M params of archs of one space. `predictors`
    maps latency metrics (`latency_metric`) to predictors; one predictor alone is `latency_ms`."""

    def __init__(self, space: SearchSpace, predictors: LatencyPredictor | Mapping[str, LatencyPredictor] | None = None):
        self.space = space
        self.predictors: dict[str, LatencyPredictor] = (
            {}
            if predictors is None
            else {LATENCY_METRIC: predictors}
            if isinstance(predictors, LatencyPredictor)
            else dict(predictors)
        )
        self.metrics = [*self.predictors, "flops_g", "params_m"]

    def many(self, archs: Sequence[Arch], metrics: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        out = {}
        for metric in self.metrics if metrics is None else metrics:
            if is_latency(metric):
                if metric not in self.predictors:
                    raise BudgetError("--latency-ms needs --device (or --table) to predict latency")
                out[metric] = self.predictors[metric].predict_many(archs)
            elif metric == "flops_g":
                out[metric] = np.array([a.macs() / 1e9 for a in archs])
            else:
                out[metric] = np.array([a.params() / 1e6 for a in archs])
        return out

    def of(self, arch: Arch) -> dict[str, float]:
        return {k: float(v[0]) for k, v in self.many([arch]).items()}

    def block_cost(self, metric: str) -> Callable[[BlockConfig], float]:
        """The metric's additive part per block (latency: the table row, before calibration)."""
        if metric in self.predictors:
            predictor = self.predictors[metric]
            rows = dict(zip(predictor.blocks, predictor.row_ms.tolist()))
            return rows.__getitem__
        if metric == "flops_g":
            return lambda b: b.macs() / 1e9
        return lambda b: b.params() / 1e6

    def sum_limit(self, metric: str, limit: float) -> float:
        """The bound on the sum of `block_cost(metric)` that `limit` on the metric means (latency is
        calibrated as a * sum + b, a > 0)."""
        if metric in self.predictors:
            calibration = self.predictors[metric].calibration
            return (limit - calibration.b) / calibration.a
        return limit


class Constraints:
    """A budget applied to archs: how far each is over it (0 when it fits) and, with `min_fraction`,
    how far below its lower window (`min_fraction` x each limit) it falls. No budget (None): every
    arch fits (NSGA-II over the whole front)."""

    def __init__(self, budget: Budget | None, costs: Costs, min_fraction: float | None = None):
        self.budget, self.costs = budget, costs
        self.limits = budget.limits() if budget else {}
        self.min_fraction = min_fraction if self.limits else None
        costs.many([costs.space.smallest()], list(self.limits))  # fails now if latency has no predictor

    def violation(self, archs: Sequence[Arch]) -> np.ndarray:
        """Sum over constraints of the relative excess, max(0, cost / limit - 1); 0 means feasible."""
        costs = self.costs.many(archs, list(self.limits))
        return sum((np.maximum(0.0, costs[m] / limit - 1.0) for m, limit in self.limits.items()), np.zeros(len(archs)))

    def load(self, archs: Sequence[Arch]) -> np.ndarray:
        """Sum over constraints of cost / limit: one number to rank archs by what they cost under
        this budget (repair compares moves by how much of it they save)."""
        costs = self.costs.many(archs, list(self.limits))
        return sum((costs[m] / limit for m, limit in self.limits.items()), np.zeros(len(archs)))

    def fits(self, arch: Arch) -> bool:
        return bool(self.violation([arch])[0] == 0)

    def shortfall(self, archs: Sequence[Arch]) -> np.ndarray:
        """Sum over constraints of the relative shortfall below the window, max(0, 1 - cost /
        (min_fraction x limit)); 0 means within it (always, without a window)."""
        if self.min_fraction is None:
            return np.zeros(len(archs))
        costs = self.costs.many(archs, list(self.limits))
        return sum(
            (np.maximum(0.0, 1.0 - costs[m] / (self.min_fraction * limit)) for m, limit in self.limits.items()),
            np.zeros(len(archs)),
        )

    def admits(self, arch: Arch) -> bool:
        """Within the budget and its lower window: an arch the search may evaluate."""
        return self.fits(arch) and (self.min_fraction is None or bool(self.shortfall([arch])[0] == 0))


@dataclass(frozen=True)
class Feasibility:
    """What the budget leaves: an arch that meets it, and whether every arch does."""

    anchor: Arch  # a feasible arch (the repair of last resort)
    binds: bool  # False: every arch of the space meets the budget
    minimum: dict[str, float]  # per constrained metric, the cheapest any arch achieves
    maximum: dict[str, float]  # per constrained metric, the costliest arch's cost


def check_feasible(constraints: Constraints) -> Feasibility:
    """Before any evaluation: refuse a budget below the cheapest arch (naming the minimum), refuse
    constraints that no single arch meets together, and tell whether the budget binds at all."""
    costs, space, limits = constraints.costs, constraints.costs.space, constraints.limits
    cheapest = {m: space.extreme_arch(costs.block_cost(m)) for m in limits}
    costliest = {m: space.extreme_arch(costs.block_cost(m), costliest=True) for m in limits}
    minimum = {m: costs.of(a)[m] for m, a in cheapest.items()}
    maximum = {m: costs.of(a)[m] for m, a in costliest.items()}
    for metric, limit in limits.items():
        if limit < minimum[metric]:
            option, unit = metric_info(metric)
            raise BudgetError(
                f"{option} {limit:g} is below the cheapest arch of {space.key}: {minimum[metric]:.4g} "
                f"{unit} ({cheapest[metric]!r}); the minimum achievable is {minimum[metric]:.4g} {unit}"
            )
    # Each constraint alone can be met. Together: first the cheapest arch of each and of their
    # budget-weighted sum (enough when one arch is cheapest in all), else the exact joint check.
    weighted = {m: costs.block_cost(m) for m in limits}
    blend = space.extreme_arch(lambda b: sum(f(b) / limits[m] for m, f in weighted.items()))
    candidates = [blend, *cheapest.values(), space.smallest()]
    violations = constraints.violation(candidates)
    anchor = candidates[int(np.argmin(violations))] if violations.min() == 0 else _within_all(constraints, list(limits))
    if anchor is None:
        raise BudgetError(_conflict_message(constraints, cheapest))
    binds = any(limit < maximum[m] for m, limit in limits.items())
    return Feasibility(anchor, binds, minimum, maximum)


def check_window(constraints: Constraints, feasibility: Feasibility) -> None:
    """Refuse a lower window (`min_fraction`) above the costliest arch under some constraint: no
    arch could be evaluated. Exact, from the costliest archs `check_feasible` found."""
    fraction, space = constraints.min_fraction, constraints.costs.space
    if fraction is None:
        return
    for metric, limit in constraints.limits.items():
        if fraction * limit > feasibility.maximum[metric]:
            option, unit = metric_info(metric)
            raise BudgetError(
                f"--min-fraction {fraction:g} keeps archs of at least {fraction * limit:.4g} {unit} ({fraction:g} x "
                f"{option} {limit:g}), but the costliest arch of {space.key} has {feasibility.maximum[metric]:.4g} "
                f"{unit}: lower --min-fraction or the budget"
            )


def _within_all(constraints: Constraints, metrics: Sequence[str]) -> Arch | None:
    """One arch within the limits of `metrics` together (exact; None when there is none). A family
    without frames gets None: the cheapest archs tried before were all it could check."""
    costs, limits = constraints.costs, constraints.limits
    caps = [costs.sum_limit(m, limits[m]) for m in metrics]
    for slack in (RELATIVE_SLACK, -RELATIVE_SLACK):  # an arch on a limit's last bit: then one clear of it
        try:
            arch = within_all(costs.space, [costs.block_cost(m) for m in metrics], caps, slack)
        except NotImplementedError:
            return None
        if arch is None:
            return None
        if all(costs.of(arch)[m] <= limits[m] for m in metrics):
            return arch
    return None


def _conflict_message(constraints: Constraints, cheapest: Mapping[str, Arch]) -> str:
    """Which budgets conflict (the pairs that no arch meets together, or all of them), and what the
    cheapest arch under each costs under the others."""
    costs, limits, space = constraints.costs, constraints.limits, constraints.costs.space
    try:
        space.frames()
        exact = True
    except NotImplementedError:
        exact = False
    pairs = [p for p in itertools.combinations(limits, 2) if exact and _within_all(constraints, p) is None]
    groups = pairs or [tuple(limits)]
    named = "; ".join(" and ".join(f"{metric_info(m)[0]} {limits[m]:g}" for m in g) for g in groups)
    details = "; ".join(
        f"the cheapest in {metric_info(m)[0]} has "
        + ", ".join(f"{metric_info(o)[0]} {v:.4g}" for o, v in costs.of(a).items() if o in limits and o != m)
        for m, a in cheapest.items()
    )
    if exact:
        return (
            f"no arch of {space.key} meets these budgets together: {named} (exact check; {details}); relax one of them"
        )
    return (
        f"found no arch of {space.key} meeting these budgets together among the cheapest archs (the {space.family} "
        f"family gives no frames for an exact check): {named} ({details}); relax one of them"
    )


def budget_summary(feasibility: Feasibility, budget: Budget) -> dict[str, Any]:
    """Per constrained metric: the limit and the range the space spans."""
    return {
        m: {"limit": v, "min": feasibility.minimum[m], "max": feasibility.maximum[m]}
        for m, v in budget.limits().items()
    }
