"""How well latency predictions agree with measurements: MAPE, the shares within +-5% and +-10%
(LitePred's units), Kendall tau and the largest error, and the worst of them over several
measuring processes.

Torch-free, so that reading a validation (`hwnas show`, the results pages) needs no model code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import kendalltau

from hwnas.latency.table import round_to_resolution


def agreement(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Relative error of `predicted` against `measured`, and their rank agreement. Kendall tau
    ranks the predictions at the table's resolution, so reordered equal blocks tie."""
    rel = np.abs(predicted - measured) / measured
    tau = kendalltau(round_to_resolution(predicted), measured).statistic if len(measured) > 1 else float("nan")
    return {
        "mape_pct": float(100 * rel.mean()),
        "within_5pct": float(100 * (rel <= 0.05).mean()),
        "within_10pct": float(100 * (rel <= 0.10).mean()),
        "kendall_tau": float(tau),
        "max_error_pct": float(100 * rel.max()),
    }


def worst(metrics: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The least favourable value of each metric over processes (or process pairs); {} for none."""
    if not metrics:
        return {}
    least = {
        "mape_pct": max(m["mape_pct"] for m in metrics),
        "within_10pct": min(m["within_10pct"] for m in metrics),
        "kendall_tau": min(m["kendall_tau"] for m in metrics),
        "max_error_pct": max(m["max_error_pct"] for m in metrics),
    }
    if all("within_5pct" in m for m in metrics):  # validations before the +-5% share have none
        least["within_5pct"] = min(m["within_5pct"] for m in metrics)
    return least
