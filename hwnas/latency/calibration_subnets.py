"""A space's calibration subnets: the subnets a table's calibration is fitted on.

They are drawn with a seed of their own (apart from validation's), smallest and largest first, so
any later step finds the same subnets again: a drift check re-measures them, a validation leaves
them out, and a refit of a table's rows (`hwnas profile --refit`) refits the calibration on the
measurements it stores as points.
"""

from __future__ import annotations

import numpy as np

from hwnas.latency.bundle import sample_archs
from hwnas.latency.predict import LatencyPredictor
from hwnas.spaces import Arch, SearchSpace

CALIBRATION_SEED = 1_000_003


def calibration_archs(space: SearchSpace, n: int) -> list[Arch]:
    """The first `n` calibration subnets of `space` (the smallest and the largest first)."""
    return sample_archs(space, n, CALIBRATION_SEED, extremes=True)


def calibration_pairs(space: SearchSpace, predictor: LatencyPredictor) -> tuple[list[Arch], np.ndarray]:
    """The subnets the table's calibration was fitted on and their measurements then (its points,
    found by their sums of rows); those whose sum no longer matches (a row re-measured) are left out."""
    points = predictor.calibration.points
    archs = calibration_archs(space, max(len(points), 2))
    sums = predictor.sum_many(archs)
    found: dict[int, float] = {}
    for total, measured in points:
        i = int(np.argmin(np.abs(sums - total)))
        if abs(sums[i] - total) <= 1e-4 * abs(total):
            found.setdefault(i, measured)
    return [archs[i] for i in found], np.array(list(found.values()), dtype=float)
