"""Latency-constrained search over a trained supernet (evolution, random baseline, hierarchical, NSGA-II).

`hwnas.search(run, latency_ms=..., device=...)` is `search` here, a plain function.
"""

from hwnas.subnet_search.constraints import Budget, BudgetError, Constraints, Costs, LatencyBudget, check_feasible
from hwnas.subnet_search.evolution import STRATEGIES, EvolutionSettings, Record, SearchState
from hwnas.subnet_search.runner import SearchResult, search

__all__ = [
    "STRATEGIES",
    "Budget",
    "BudgetError",
    "LatencyBudget",
    "Constraints",
    "Costs",
    "EvolutionSettings",
    "Record",
    "SearchResult",
    "SearchState",
    "check_feasible",
    "search",
]
