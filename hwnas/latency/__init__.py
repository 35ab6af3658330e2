"""Latency lookup tables: block modules, bundles, profiling backends, tables and prediction.

The torch-free parts that search needs are importable from here; profiling and validation live in
`hwnas.latency.profile` and `hwnas.latency.validate`.
"""

from hwnas.latency.predict import LatencyPredictor, Prediction
from hwnas.latency.table import Calibration, LatencyTable, TableError, find_table

__all__ = ["Calibration", "LatencyPredictor", "LatencyTable", "Prediction", "TableError", "find_table"]
