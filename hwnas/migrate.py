"""Files written by older hwnas versions, brought to today's format when they are read: one step per
file kind, so that no loader branches on a format. A step takes the parsed JSON and returns what
today's loader reads; a file already current passes unchanged. Each step is tested on a committed
file of the old format (`tests/fixtures/old_formats/`).

The latency table's formats 1 and 2 (CSV plus sidecar) are read as format 3 by
`hwnas.latency.table.LatencyTable.load` itself, which holds both files.
"""

from __future__ import annotations

from typing import Any


def train_config(d: dict[str, Any]) -> dict[str, Any]:
    """A run's config.json. Runs saved before the format field (format 1) had no alike draws, flips
    on folders only, weight decay on position embeddings, a 15% search-val split, and their
    `uniform` drew distinct archs (today's `distinct`)."""
    if "format" in d:
        return d
    from hwnas.data.sources import IN_MEMORY

    migrated = {
        "alike_share": 0.0,
        "hflip": 0.0 if d.get("data") in IN_MEMORY else 0.5,
        "no_weight_decay": False,
        "search_val": "15%",
        **d,
        "format": 1,
    }
    if migrated.get("sampling") == "uniform":
        migrated["sampling"] = "distinct"
    return migrated


def split(d: dict[str, Any]) -> dict[str, Any]:
    """A run's split.json. Splits saved before `--search-val` was a setting were all 15%."""
    return d if "search_val_rule" in d else {**d, "search_val_rule": "15%"}
