"""Rows a table lacks, filled from a per-kind fit: the fit itself, the in-memory fill, and a run on
another class count searched with the shipped table."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest

import hwnas
from hwnas.latency.resolve import FilledRowsNotice, resolve_table
from hwnas.latency.rowfit import KindFit, costs, fill_missing
from hwnas.latency.table import SHIPPED_DIR, LatencyTable, TableError
from hwnas.spaces import get_space
from tests.helpers import hwnas_in_process

SHIPPED = SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv"


def test_a_linear_kind_is_fitted_exactly_and_cross_validated():
    blocks = [b for b in get_space("autoformer-tiny").block_configs() if b.kind == "encoder"][:12]
    truth = costs(blocks) @ np.array([2e-9, 1e-8, 3e-7]) + 0.01  # ms: a positive combination of the costs
    fit = KindFit.fit(blocks, truth, "p50_ms")
    assert fit.n == 12 and fit.cv_error_pct < 0.5
    assert np.allclose(fit(blocks), truth, rtol=1e-3)
    few = KindFit.fit(blocks[:2], truth[:2], "p50_ms")  # too few rows for three costs: a line in MACs
    assert few.coef[1:] == (0.0, 0.0) and np.isnan(few.cv_error_pct)


def test_missing_rows_are_filled_in_memory_and_stay_marked_as_fitted(tmp_path):
    table = LatencyTable.load(SHIPPED)
    space = get_space("resnas-digits", num_classes=7)
    missing = table.missing(space.block_configs())
    assert [b.kind for b in missing] == ["head", "head"]  # only the heads differ from the 10-class space
    filled = fill_missing(table, space.block_configs())
    assert not filled.missing(space.block_configs()) and set(filled.filled_rows) == {b.key for b in missing}
    assert table.missing(space.block_configs()) == missing  # the loaded table is untouched
    heads = table.rows[table.rows["kind"] == "head"]["p50_ms"]
    assert all(heads.min() / 2 < filled.rows.loc[b.key, "p50_ms"] < heads.max() * 2 for b in missing)
    assert len(filled.measured_rows()) == len(table)
    saved = LatencyTable.load(filled.save(tmp_path / "copy.csv"))  # a saved copy keeps them marked
    assert saved.filled_rows.keys() == filled.filled_rows.keys() and len(saved.measured_rows()) == len(table)
    glit_only = LatencyTable(table.rows[table.rows["kind"] != "head"], table.fingerprint, table.calibrations)
    with pytest.raises(TableError, match="no row of block kind 'head'"):
        fill_missing(glit_only, space.block_configs())


def test_another_class_count_predicts_with_the_shipped_table_and_says_so(tmp_path):
    space = get_space("resnas-digits", num_classes=7)
    began = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = resolve_table(space, device="cpu", drift="ignore", progress=False)
    assert time.perf_counter() - began < 30
    (notice,) = [w for w in caught if issubclass(w.category, FilledRowsNotice)]
    assert "num_classes=7" in str(notice.message) and "resnas-digits@" in str(notice.message)
    arch_file = tmp_path / "arch.json"
    space.smallest().to_json(arch_file)
    printed = hwnas_in_process("predict", "--device", "cpu", "--arch", str(arch_file), "--drift", "ignore", "--json")
    assert printed.returncode == 0, printed.stderr
    assert "filled from a fit" in printed.stderr and len(printed.stderr.strip().splitlines()) == 1
    report = json.loads(printed.stdout)
    assert report["latency_ms"] > 0 and len(report["filled_rows"]) == 1  # the smallest arch runs one of the two heads
    assert set(report["filled_rows"]) < set(table.filled_rows)


def test_a_seven_class_run_searches_under_a_latency_budget_with_the_shipped_table(tmp_path):
    from tests.test_data import make_folder

    data = make_folder(tmp_path / "data", classes=tuple("abcdefg"), per_class=(4, 1))
    run = hwnas.train(
        "resnas-digits", tmp_path / "run", data=str(data), epochs=1, batch_size=8, search_val="1/class", progress=False
    )
    assert run.config["num_classes"] == 7
    space = get_space("resnas-digits", num_classes=7)
    ceiling = hwnas.predict(space.largest(), "cpu", space=None, drift="ignore").latency_ms
    result = hwnas.search(
        run.run,
        latency_ms=ceiling,
        device="cpu",
        population=4,
        generations=1,
        drift="ignore",
        out=tmp_path / "search",
        progress=False,
    )
    assert result.to_dict()["predicted_latency"]["latency_ms"] <= ceiling


# ---- tables from a sample of their rows -----------------------------------------------------------
SCALE = {"encoder": 1.5, "patch_embed": 0.8, "head": 1.0}  # a device change that scales kinds unevenly


def synthetic_ms(blocks, scale=None) -> np.ndarray:
    """A device whose rows are a positive combination of their costs (ms), optionally rescaled per kind."""
    base = costs(blocks) @ np.array([3e-9, 2e-8, 4e-7]) + 0.005
    return base * np.array([(scale or {}).get(b.kind, 1.0) for b in blocks])


def synthetic_measure(table, space, scale=None):
    """What `profile_space` gives `profile_sampled`: measure plans (here: synthetic timings, blocks
    by their costs and networks by the sum of theirs) and add the block rows to the table."""
    from hwnas.latency.profile import merge_measurements
    from hwnas.spaces.blocks import BlockConfig

    calls = []

    def measure(plans, name, show):
        calls.append((name, len(plans)))
        rows = []
        for p in plans:
            keys = p.entry.blocks if p.entry.kind == "network" else (p.entry.key,)
            ms = float(synthetic_ms([BlockConfig.from_key(k) for k in keys], scale).sum())
            rows.append(
                {
                    "file": p.entry.file,
                    **{s: ms for s in ("p10_ms", "p50_ms", "p90_ms", "mean_ms")},
                    "runs": 1,
                    "rounds": 1,
                    "round_spread": 0.0,
                }
            )
        merge_measurements(table, [p.entry for p in plans], rows, space, statistics=())
        return rows

    return measure, calls


def sample_setup(space, scale=None):
    from hwnas.latency.profile import ProfileSettings, plans_for

    table = LatencyTable.empty({"device": "cpu", "backend": "onnxruntime"})
    settings = ProfileSettings(calibration_archs=3)
    measure, calls = synthetic_measure(table, space, scale)
    calibration = plans_for(space, settings, [], calibrate=True)
    return table, calibration, measure, calls, lambda blocks: plans_for(space, settings, blocks, calibrate=False)


def test_a_sampled_table_measures_a_design_per_kind_and_fits_the_rest():
    from hwnas.latency.sampled import FIRST_PER_KIND, profile_sampled

    space = get_space("autoformer-tiny")
    blocks = list(dict.fromkeys(space.block_configs()))
    table, calibration, measure, calls, block_plan = sample_setup(space)
    result = profile_sampled(space, table, calibration, block_plan, measure, budget_s=None)
    kinds = {b.kind for b in blocks}
    assert [c[0] for c in calls] == ["probe", "calibration", "design"]
    assert result["rows_measured"] == sum(min(FIRST_PER_KIND, sum(b.kind == k for b in blocks)) for k in kinds)
    assert result["rows_fitted"] == len(blocks) - result["rows_measured"] > 0
    assert not table.missing(blocks) and len(table.filled_rows) == result["rows_fitted"]
    fitted = [b for b in blocks if b.key in table.filled_rows]
    truth = synthetic_ms(fitted)
    assert np.abs(table.latencies(fitted, space.key) / truth - 1).max() < 0.01  # costs' combination recovered


def test_a_table_transfers_to_a_device_that_scales_kinds_unevenly():
    from hwnas.latency.sampled import profile_sampled

    space = get_space("autoformer-tiny")
    blocks = list(dict.fromkeys(space.block_configs()))
    source = LatencyTable.empty({"device": "cpu-other", "backend": "onnxruntime"})
    source.add_rows(
        (b, {s: float(v) for s in ("p10_ms", "p50_ms", "p90_ms", "mean_ms", "runs", "rounds", "round_spread")})
        for b, v in zip(blocks, synthetic_ms(blocks))
    )
    table, calibration, measure, calls, block_plan = sample_setup(space, SCALE)
    result = profile_sampled(space, table, calibration, block_plan, measure, budget_s=None, source=source)
    assert result["rows_fitted"] > 0 and all(e is not None and e < 1 for e in result["fit_error_pct"].values())
    truth = synthetic_ms(blocks, SCALE)
    assert np.abs(table.latencies(blocks, space.key) / truth - 1).max() < 0.01  # each kind its own factor


def synthetic_table(space, path):
    """A table of `space` as another device measured it (synthetic timings, a calibration of 1:1)."""
    from hwnas.latency.table import Calibration

    blocks = list(dict.fromkeys(space.block_configs()))
    table = LatencyTable.empty({"device": "cpu-other", "backend": "onnxruntime"})
    stats = ("p10_ms", "p50_ms", "p90_ms", "mean_ms", "runs", "rounds", "round_spread")
    table.add_rows((b, dict.fromkeys(stats, float(v))) for b, v in zip(blocks, synthetic_ms(blocks)))
    table.set_calibration(space, Calibration(1.0, 0.0, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    return table.save(path)


def test_cli_profiles_from_another_devices_table_and_marks_the_fitted_rows(tmp_path, monkeypatch):
    from tests.helpers import assert_one_line_error, toy_space_yaml
    from tests.helpers import hwnas_in_process as hwnas

    yaml = toy_space_yaml(tmp_path, "toy-more", mlp_ratio=[2.0, 3.0, 4.0])  # 12 encoder rows: some fitted
    space = get_space(yaml)
    other = synthetic_table(space, tmp_path / "other" / "cpu-other.csv")
    out = tmp_path / "mine" / "cpu_mine.csv"
    base = ["profile", "--device", "cpu", "--space", str(yaml)]
    result = hwnas(*base, "--from", str(other), "--out", str(out), "--quick", "--calibration-archs", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    blocks = list(dict.fromkeys(space.block_configs()))
    assert report["blocks_fitted"] > 0 and report["blocks_measured"] + report["blocks_fitted"] == len(blocks)
    assert report["from_table"] == str(other) and set(report["fit_error_pct"]) == {b.kind for b in blocks}
    table = LatencyTable.load(out)
    assert len(table.filled_rows) == report["blocks_fitted"] and table.covers(space)
    monkeypatch.setenv("HWNAS_TABLES", str(out.parent))
    listed = hwnas("tables")
    assert f"{report['blocks_fitted']} of them fitted, not measured" in listed.stdout
    digits = ["profile", "--device", "cpu", "--space", "autoformer-digits", "--out", str(tmp_path / "x.csv")]
    assert_one_line_error(hwnas(*digits, "--from", str(other)), "does not cover autoformer-digits")
    assert_one_line_error(
        hwnas(*base, "--budget-min", "0.001", "--out", str(tmp_path / "y.csv")),
        "too small to measure even the 12 calibration subnets",
        "give at least --budget-min",
    )


def test_a_second_space_sampled_into_the_same_table_keeps_the_first_ones_fitted_rows():
    from hwnas.latency.sampled import profile_sampled

    first, second = get_space("autoformer-digits"), get_space("autoformer-tiny")  # no block in common
    table, calibration, measure, _, block_plan = sample_setup(first)
    profile_sampled(first, table, calibration, block_plan, measure, budget_s=None)
    before = dict(table.filled_rows)
    assert before, "the first space has rows fitted"
    _, calibration2, measure2, _, block_plan2 = sample_setup(second)
    measure_into = synthetic_measure(table, second)[0]
    profile_sampled(second, table, calibration2, block_plan2, measure_into, budget_s=None)
    assert not table.missing(first.block_configs()) and not table.missing(second.block_configs())
    assert all(k in table.filled_rows or k in table.measured_rows().index for k in before)
