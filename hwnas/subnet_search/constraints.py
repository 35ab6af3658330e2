"""Budgets and what an arch costs under them: predicted latency, FLOPs (MACs) and parameters.

Every cost is a sum over the arch's blocks (latency then calibrated by a * sum + b with a > 0), so
the cheapest and the costliest arch under each cost are found exactly by the space before any
evaluation: an infeasible budget fails at once with the minimum achievable, and a budget that
every arch meets is reported instead of searched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hwnas.errors import HwnasError
from hwnas.latency.predict import LatencyPredictor
from hwnas.spaces import Arch, SearchSpace
from hwnas.spaces.blocks import BlockConfig

# metric -> (CLI option, unit): FLOPs are multiply-accumulates, as the ViT papers count them
METRICS = {"latency_ms": ("--latency-ms", "ms"), "flops_g": ("--flops-g", "GMACs"), "params_m": ("--params-m", "M params")}


class BudgetError(HwnasError):
    """A budget that no architecture can meet, or one that is not a budget at all."""


@dataclass(frozen=True)
class Budget:
    """Upper bounds an arch must meet; None leaves a metric free. At least one is required."""

    latency_ms: float | None = None
    flops_g: float | None = None
    params_m: float | None = None

    def __post_init__(self) -> None:
        given = self.limits()
        if not given:
            raise BudgetError("give at least one constraint: --latency-ms (with --device), --flops-g or --params-m")
        for metric, value in given.items():
            if not math.isfinite(value) or value <= 0:
                raise BudgetError(f"{METRICS[metric][0]} must be a positive number, got {value}")

    def limits(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        return ", ".join(f"{k.removesuffix('_ms').removesuffix('_g').removesuffix('_m')} <= {v:g} {METRICS[k][1]}"
                         for k, v in self.limits().items())


class Costs:
    """Latency (with a predictor), GMACs and M params of archs of one space."""

    def __init__(self, space: SearchSpace, predictor: LatencyPredictor | None = None):
        self.space, self.predictor = space, predictor
        self.metrics = [m for m in METRICS if m != "latency_ms" or predictor is not None]

    def many(self, archs: Sequence[Arch], metrics: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        out = {}
        for metric in metrics or self.metrics:
            if metric == "latency_ms":
                if self.predictor is None:
                    raise BudgetError("--latency-ms needs --device (or --table) to predict latency")
                out[metric] = self.predictor.predict_many(archs)
            elif metric == "flops_g":
                out[metric] = np.array([a.macs() / 1e9 for a in archs])
            else:
                out[metric] = np.array([a.params() / 1e6 for a in archs])
        return out

    def of(self, arch: Arch) -> dict[str, float]:
        return {k: float(v[0]) for k, v in self.many([arch]).items()}

    def block_cost(self, metric: str) -> Callable[[BlockConfig], float]:
        """The metric's additive part per block (latency: the table row, before calibration)."""
        if metric == "latency_ms":
            assert self.predictor is not None
            rows = dict(zip(self.predictor.blocks, self.predictor.row_ms.tolist()))
            return rows.__getitem__
        if metric == "flops_g":
            return lambda b: b.macs() / 1e9
        return lambda b: b.params() / 1e6


class Constraints:
    """A budget applied to archs: how far each is over it (0 when it fits)."""

    def __init__(self, budget: Budget, costs: Costs):
        self.budget, self.costs = budget, costs
        self.limits = budget.limits()
        costs.many([costs.space.smallest()], list(self.limits))  # fails now if latency has no predictor

    def violation(self, archs: Sequence[Arch]) -> np.ndarray:
        """Sum over constraints of the relative excess, max(0, cost / limit - 1); 0 means feasible."""
        costs = self.costs.many(archs, list(self.limits))
        return sum((np.maximum(0.0, costs[m] / limit - 1.0) for m, limit in self.limits.items()),
                   np.zeros(len(archs)))

    def load(self, archs: Sequence[Arch]) -> np.ndarray:
        """Sum over constraints of cost / limit: one number to rank archs by what they cost under
        this budget (repair compares moves by how much of it they save)."""
        costs = self.costs.many(archs, list(self.limits))
        return sum((costs[m] / limit for m, limit in self.limits.items()), np.zeros(len(archs)))

    def fits(self, arch: Arch) -> bool:
        return bool(self.violation([arch])[0] == 0)


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
            option, unit = METRICS[metric]
            raise BudgetError(f"{option} {limit:g} is below the cheapest arch of {space.key}: {minimum[metric]:.4g} "
                              f"{unit} ({cheapest[metric]!r}); the minimum achievable is {minimum[metric]:.4g} {unit}")
    # Each constraint alone can be met. Together: try the cheapest arch of each and of their
    # budget-weighted sum (exact when one arch is cheapest in all, as in spaces whose costs grow
    # with every gene).
    weighted = {m: costs.block_cost(m) for m in limits}
    blend = space.extreme_arch(lambda b: sum(f(b) / limits[m] for m, f in weighted.items()))
    candidates = [blend, *cheapest.values(), space.smallest()]
    violations = constraints.violation(candidates)
    if violations.min() > 0:
        details = "; ".join(f"cheapest in {METRICS[m][0]} has " + ", ".join(
            f"{METRICS[o][0]} {v:.4g}" for o, v in costs.of(a).items() if o in limits) for m, a in cheapest.items())
        raise BudgetError(f"the constraints contradict each other: no arch of {space.key} meets "
                          f"{constraints.budget.describe()} together ({details}); relax one of them")
    anchor = candidates[int(np.argmin(violations))]
    binds = any(limit < maximum[m] for m, limit in limits.items())
    return Feasibility(anchor, binds, minimum, maximum)


def budget_summary(feasibility: Feasibility, budget: Budget) -> dict[str, Any]:
    """Per constrained metric: the limit and the range the space spans."""
    return {m: {"limit": v, "min": feasibility.minimum[m], "max": feasibility.maximum[m]}
            for m, v in budget.limits().items()}
