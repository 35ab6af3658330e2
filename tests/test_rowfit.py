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


def test_missing_rows_are_filled_in_memory_and_never_saved(tmp_path):
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
    with pytest.raises(TableError, match="filled rows"):
        filled.save(tmp_path / "copy.csv")
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
