"""Latency lookup tables: bundles, profiling backends, tables and prediction (block modules come
from each block kind, `hwnas.spaces.blocks`).

The torch-free parts that search needs are importable from here. Profiling lives in
`hwnas.latency.profile`, end-to-end measurement in `hwnas.latency.measure`, the check that a table
holds on this machine in `hwnas.latency.drift` (with `hwnas.latency.local` storing its outcome),
the one table resolution every command uses in `hwnas.latency.resolve`, and validation in
`hwnas.latency.validate`.
"""

from hwnas.latency.predict import LatencyPredictor, Prediction
from hwnas.latency.table import Calibration, LatencyTable, TableError, find_table

__all__ = ["Calibration", "LatencyPredictor", "LatencyTable", "Prediction", "TableError", "find_table"]
