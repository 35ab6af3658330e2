"""Files written by older hwnas versions, brought to today's format when they are read: one step per
file kind, so that no loader branches on a format. A step takes the parsed JSON and returns what
today's loader reads; a file already current passes unchanged. Each step is tested on a committed
file of the old format (`tests/fixtures/old_formats/`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def train_config(d: dict[str, Any]) -> dict[str, Any]:
    """A run's config.json. Runs saved before the format field (format 1) had no alike draws, flips
    on folders only, weight decay on position embeddings, a 15% search-val split, and their
    `uniform` drew distinct archs (today's `distinct`). Runs before format 3 had no warm-up of
    choices. The format stays the run's: it says what its settings meant."""
    if int(d.get("format", 1)) >= 3:
        return d
    if "format" not in d:
        from hwnas.data.sources import IN_MEMORY

        d = {
            "alike_share": 0.0,
            "hflip": 0.0 if d.get("data") in IN_MEMORY else 0.5,
            "no_weight_decay": False,
            "search_val": "15%",
            **d,
            "format": 1,
        }
        if d.get("sampling") == "uniform":
            d["sampling"] = "distinct"
    return {"warmup_choices": False, **d}


def split(d: dict[str, Any]) -> dict[str, Any]:
    """A run's split.json. Splits saved before `--search-val` was a setting were all 15%."""
    return d if "search_val_rule" in d else {**d, "search_val_rule": "15%"}


def latency_table_sidecar(d: dict[str, Any]) -> dict[str, Any]:
    """A latency table's sidecar. Format 1 keyed calibrations by space name: a shipped space's name
    becomes its ref (its content is the one the table was profiled for); any other name stays and
    is matched by name (`LatencyTable.calibration_key`)."""
    if int(d.get("format", 1)) != 1:
        return d
    from hwnas.spaces import get_space, list_spaces

    shipped = set(list_spaces())
    calibrations = {(get_space(k).ref if k in shipped else k): c for k, c in d.get("calibration", {}).items()}
    return {**d, "calibration": calibrations, "format": 2}


def latency_table_rows(df: pd.DataFrame) -> pd.DataFrame:
    """A latency table's CSV. Formats 1 and 2 had no `source`: every row was measured (format 1's
    field columns are left for the loader to drop: a row's fields live in its key)."""
    if "source" in df.columns:
        return df
    from hwnas.latency.table import MEASURED

    return df.assign(source=MEASURED, fit_error_pct=np.nan)
