"""Network latency from a table: the sum of the arch's block rows, then the space's calibration.

Search scores whole populations, so `predict_many` works on index arrays: one Python lookup per
arch (`space.block_indexer`), one numpy gather and segment sum for the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from hwnas.latency.table import LATENCY, Calibration, LatencyTable
from hwnas.spaces import Arch, SearchSpace
from hwnas.spaces.blocks import BlockConfig


@dataclass(frozen=True)
class Prediction:
    latency_ms: float  # calibrated: what the arch is expected to take end to end
    sum_ms: float  # plain sum of the block rows
    blocks: tuple[tuple[str, float], ...]  # (block key, row latency) in network order
    statistic: str = LATENCY  # of the timing distribution: p50_ms, p90_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "statistic": self.statistic,
            "sum_ms": self.sum_ms,
            "blocks": [{"key": k, "latency_ms": ms} for k, ms in self.blocks],
        }


class LatencyPredictor:
    """Predicts latency for archs of one space from one table, as one statistic of the timing
    distribution (p50 by default; p90 for a tail budget: that statistic's rows and calibration).
    Construction checks that the table has every block the space can produce and a calibration for
    it, so a search cannot fail halfway."""

    def __init__(self, table: LatencyTable, space: SearchSpace, statistic: str = LATENCY):
        self.table, self.space, self.statistic = table, space, statistic
        self.blocks: list[BlockConfig] = space.block_configs()
        self.row_ms = table.latencies(self.blocks, space.key, statistic)
        self.calibration: Calibration = table.calibration(space, statistic)
        self._indices = space.block_indexer({b: i for i, b in enumerate(self.blocks)})

    def predict(self, arch: Arch) -> Prediction:
        idx = self._indices(arch)
        parts = self.row_ms[idx]
        # summed as `predict_many` sums (`parts.sum()` is pairwise and may differ by an ulp), so a search's
        # budget check and its report agree to the last bit
        total = float(self.sum_many([arch])[0])
        keys = (self.blocks[i].key for i in idx)
        return Prediction(float(self.calibration(total)), total, tuple(zip(keys, parts.tolist())), self.statistic)

    def predict_many(self, archs: Sequence[Arch]) -> np.ndarray:
        """Calibrated latency (ms) of every arch, as one array."""
        return self.calibration(self.sum_many(archs))

    def sum_many(self, archs: Sequence[Arch]) -> np.ndarray:
        """Plain sums of the block rows (ms) of every arch, as one array."""
        if not archs:
            return np.zeros(0)
        rows = [self._indices(a) for a in archs]
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        return np.add.reduceat(self.row_ms[flat], starts)
