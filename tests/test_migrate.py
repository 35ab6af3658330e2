"""Files of older formats, read through `hwnas.migrate`: each step on a committed file of its format."""

from __future__ import annotations

import json
from pathlib import Path

from hwnas import migrate
from hwnas.data.split import Split
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
