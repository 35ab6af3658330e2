"""Files of older formats, read through `hwnas.migrate`: each step on a committed file of its format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwnas import migrate
from hwnas.data.split import Split
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.table import LatencyTable
from hwnas.profilers.protocol import STAT_COLUMNS
from hwnas.spaces import get_space
from hwnas.training import TrainConfig

OLD = Path(__file__).parent / "fixtures" / "old_formats"


def test_a_format_1_run_config_reads_as_what_its_settings_meant():
    saved = json.loads((OLD / "config_format1.json").read_text())
    config = TrainConfig.from_dict(saved)
    assert config.format == 1 and config.sampling == "distinct"  # its "uniform" drew distinct archs
    assert (config.alike_share, config.hflip, config.no_weight_decay, config.search_val) == (0.0, 0.0, False, "15%")
    today = config.to_dict()
    assert migrate.train_config(today) == today  # a current file passes unchanged


def test_a_split_saved_before_search_val_rules_reads_as_15_percent(tmp_path):
    split = Split.load(OLD / "split_without_rule.json")
    assert split.search_val_rule == "15%" and split.search_val == (3, 8)
    assert Split.load(split.save(tmp_path / "split.json")) == split


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_latency_table_predicts_from_its_own_rows_and_saves_as_format_3(version, tmp_path):
    """Format 1 spelled the first three kinds' fields as columns and keyed calibrations by space
    name; format 2 keyed them by ref; neither had a row `source` (every row was measured)."""
    for suffix in (".csv", ".json"):
        shutil.copyfile(OLD / f"table_format{version}{suffix}", tmp_path / f"old{suffix}")
    table = LatencyTable.load(tmp_path / "old.csv")
    space = get_space("autoformer-digits")
    saved = pd.read_csv(OLD / f"table_format{version}.csv").set_index("key")["p50_ms"]
    calibration = json.loads((OLD / f"table_format{version}.json").read_text())["calibration"]
    (a, b) = (next(iter(calibration.values()))[k] for k in ("a", "b"))
    archs = [space.sample(i) for i in range(20)]
    expected = [a * sum(saved[blk.key] for blk in arch.blocks()) + b for arch in archs]
    assert np.allclose(LatencyPredictor(table, space).predict_many(archs), expected, rtol=1e-9)
    assert set(table.rows["source"]) == {"measured"} and table.rows["fit_error_pct"].isna().all()
    table.save()
    assert json.loads((tmp_path / "old.json").read_text())["format"] == 3
    assert list(pd.read_csv(tmp_path / "old.csv").columns) == ["key", "kind", *STAT_COLUMNS, "source", "fit_error_pct"]
    current = json.loads((tmp_path / "old.json").read_text())
    assert migrate.latency_table_sidecar(current) == current  # a current file passes unchanged
