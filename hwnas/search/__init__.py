"""Latency-constrained search over a trained supernet (evolution, random baseline, hierarchical).

`hwnas.search(run, latency_ms=..., device=...)` runs a search. The package itself is callable for
that: `hwnas.search` is both this package (for `from hwnas.search import Budget`) and the function,
which an attribute alone could not be once the package is imported.
"""

import sys
import types
from typing import Any

from hwnas.search.constraints import Budget, BudgetError, Constraints, Costs, check_feasible
from hwnas.search.evolution import STRATEGIES, EvolutionSettings, Record, SearchState
from hwnas.search.runner import SearchResult, search


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> SearchResult:
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["STRATEGIES", "Budget", "BudgetError", "Constraints", "Costs", "EvolutionSettings", "Record",
           "SearchResult", "SearchState", "check_feasible", "search"]
