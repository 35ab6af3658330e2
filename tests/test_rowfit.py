"""Rows a table lacks: the per-kind fit itself, the in-memory fill, rows measured here on the spot,
and a run on another class count searched with the shipped table."""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import replace

import numpy as np
import pytest

import hwnas
from hwnas.latency.local import CALIBRATION_DIR_ENV, LocalCalibrations
from hwnas.latency.measure import setup_of
from hwnas.latency.missing_rows import anchor_for, measure_missing
from hwnas.latency.resolve import FilledRowsNotice, complete, resolve_table
from hwnas.latency.rowfit import KindFit, costs, fill_missing
from hwnas.latency.table import SHIPPED_DIR, LatencyTable, TableError
from hwnas.profilers.protocol import STAT_COLUMNS
from hwnas.spaces import get_space
from tests.helpers import hwnas_in_process

SHIPPED = SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv"


def test_a_linear_kind_is_fitted_exactly_and_cross_validated():
    blocks = [b for b in get_space("autoformer-tiny").block_configs() if b.kind == "encoder"][:12]
    truth = costs(blocks) @ np.array([2e-9, 1e-8, 3e-7]) + 0.01  # ms: a positive combination of the costs
    fit = KindFit.fit(blocks, truth, "p50_ms")
    assert fit.n == 12 and fit.cv_error_pct < 0.5
    assert np.allclose(fit(blocks), truth, rtol=1e-3)
    few = KindFit.fit(blocks[:2], truth[:2], "p50_ms")  # too few rows for its features: a line in MACs
    assert not any(few.coef[1:]) and np.isnan(few.cv_error_pct)


def test_macs_that_cost_more_than_a_dense_products_are_weighed_on_their_own():
    """A GLiT block's depthwise taps cost several dense MACs each on a CPU: a line in the total MACs
    misses rows whose share of them differs, the fit on the MACs by part does not."""
    from hwnas.spaces.blocks import MAC_PARTS

    blocks = list(dict.fromkeys(b for b in get_space("glit-tiny").block_configs() if b.kind == "glit"))
    depthwise = np.array([b.mac_parts()["depthwise"] for b in blocks], dtype=float)
    share = depthwise / np.array([b.macs() for b in blocks])
    assert MAC_PARTS == ("attention", "depthwise") and share.max() > 2 * share.min() > 0
    truth = costs(blocks) @ np.array([2e-9, 1e-8, 3e-7]) + 15 * 2e-9 * depthwise + 0.01
    by_parts, by_costs = KindFit.fit(blocks, truth, "p50_ms"), KindFit.fit(blocks, truth, "p50_ms", basis=costs)
    assert by_parts.cv_error_pct < 0.1 and by_costs.cv_error_pct > 3
    encoders = [b for b in get_space("autoformer-tiny").block_configs() if b.kind == "encoder"]
    assert all(b.mac_parts() == {"attention": 2 * b.tokens**2 * b.qkv_dim} for b in encoders)
    assert all(b.macs() > sum(b.mac_parts().values()) for b in blocks + encoders)  # a part of the MACs


def test_a_width_slower_than_the_line_is_corrected_near_its_measured_rows_and_far_rows_keep_the_line():
    """A kernel that suits one width worse than the line says (here every in_dim=1024 row 25%
    slower) is seen in that width's measured neighbours; a row far from every measured one is the line's."""
    blocks = list(dict.fromkeys(b for b in get_space("resnas-tiny").block_configs() if b.kind == "encoder"))
    slow = np.array([b.in_dim == 1024 for b in blocks])
    truth = (costs(blocks) @ np.array([2e-9, 1e-8, 3e-7]) + 0.01) * np.where(slow, 1.25, 1.0)
    seen = np.zeros(len(blocks), bool)
    seen[np.random.default_rng(0).choice(len(blocks), len(blocks) // 3, replace=False)] = True
    train, held = [b for b, s in zip(blocks, seen) if s], [b for b, s in zip(blocks, seen) if not s]
    local, line = (KindFit.fit(train, truth[seen], "p50_ms", local=flag) for flag in (True, False))
    miss = {name: np.abs(fit(held) / truth[~seen] - 1) for name, fit in (("local", local), ("line", line))}
    assert miss["local"][slow[~seen]].mean() < 0.6 * miss["line"][slow[~seen]].mean()
    assert miss["local"][~slow[~seen]].mean() <= miss["line"][~slow[~seen]].mean()
    assert local.cv_error_pct < 0.6 * line.cv_error_pct  # the stored error is the corrected fit's
    far = [b for b in get_space("autoformer-digits").block_configs() if b.kind == "encoder"][:3]  # 8x8 px, 17 tokens
    np.testing.assert_allclose(local(far), line(far), rtol=1e-6)


def test_missing_rows_are_filled_in_memory_and_stay_marked_as_fitted(tmp_path):
    table = LatencyTable.load(SHIPPED)
    space = get_space("resnas-digits", num_classes=7)
    missing = table.missing(space.block_configs())
    assert [b.kind for b in missing] == ["head", "head"]  # only the heads differ from the 10-class space
    filled = fill_missing(table, space.block_configs())
    new = set(filled.filled_rows) - set(table.filled_rows)  # the shipped table has fitted rows of its own
    assert not filled.missing(space.block_configs()) and new == {b.key for b in missing}
    assert table.missing(space.block_configs()) == missing  # the loaded table is untouched
    heads = table.rows[table.rows["kind"] == "head"]["p50_ms"]
    assert all(heads.min() / 2 < filled.rows.loc[b.key, "p50_ms"] < heads.max() * 2 for b in missing)
    assert len(filled.measured_rows()) == len(table.measured_rows())
    saved = LatencyTable.load(filled.save(tmp_path / "copy.csv"))  # a saved copy keeps them marked
    assert saved.filled_rows.keys() == filled.filled_rows.keys()
    assert len(saved.measured_rows()) == len(table.measured_rows())
    glit_only = LatencyTable(table.rows[table.rows["kind"] != "head"], table.fingerprint, table.calibrations)
    with pytest.raises(TableError, match="no row of block kind 'head'"):
        fill_missing(glit_only, space.block_configs())


def test_another_class_count_measures_its_heads_here_keeps_them_locally_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(CALIBRATION_DIR_ENV, str(tmp_path / "local"))
    space = get_space("resnas-digits", num_classes=7)
    shipped = LatencyTable.load(SHIPPED)
    began = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = resolve_table(space, device="cpu", drift="ignore", progress=False)
    assert time.perf_counter() - began < 30  # two rows and their anchor, not a profile
    (notice,) = [w for w in caught if issubclass(w.category, FilledRowsNotice)]
    assert "num_classes=7" in str(notice.message) and "measured here in" in str(notice.message)
    heads = [b.key for b in shipped.missing(space.block_configs())]
    assert sorted(table.rows_here) == sorted(heads) and not set(table.filled_rows) & set(heads)
    # scaled to the table by the 10-class head of the same width: a few classes fewer cost about the same
    for key in heads:
        ten = key.replace("out_dim=7/num_classes=7", "out_dim=10/num_classes=10")
        assert 0.5 < table.rows.loc[key, "p50_ms"] / shipped.rows.loc[ten, "p50_ms"] < 2
    assert LatencyTable.load(SHIPPED).missing(space.block_configs())  # the table file is untouched
    stored = LocalCalibrations(SHIPPED).rows_for(setup_of(shipped))
    assert set(stored) == set(heads)
    with pytest.raises(TableError, match="rows measured here"):
        table.save(tmp_path / "copy.csv")

    arch_file = tmp_path / "arch.json"
    space.smallest().to_json(arch_file)
    printed = hwnas_in_process("predict", "--device", "cpu", "--arch", str(arch_file), "--drift", "ignore", "--json")
    assert printed.returncode == 0, printed.stderr
    assert "measured here before" in printed.stderr and len(printed.stderr.strip().splitlines()) == 1
    report = json.loads(printed.stdout)
    assert report["latency_ms"] > 0 and not report["filled_rows"]
    assert len(report["rows_here"]) == 1 and report["rows_here"][0] in heads  # the smallest arch runs one head


def test_a_stale_local_row_is_measured_again_and_a_setup_not_runnable_here_is_fitted(tmp_path, monkeypatch):
    monkeypatch.setenv(CALIBRATION_DIR_ENV, str(tmp_path / "local"))
    space = get_space("resnas-digits", num_classes=7)
    shipped = LatencyTable.load(SHIPPED)
    heads = shipped.missing(space.block_configs())
    store = LocalCalibrations(SHIPPED)
    anchor = anchor_for(shipped, heads[0])
    assert anchor is not None and "out_dim=10" in anchor and shipped.rows.loc[anchor, "kind"] == "head"
    fake = {"stats": {c: 99.0 for c in STAT_COLUMNS}, "anchor": anchor, "anchor_ms": 1.0, "table_created": "then"}
    store.store_rows(setup_of(shipped), {heads[0].key: fake})  # made for another table than this one
    filled, rows = measure_missing(shipped, space, heads[:1], progress=False)
    assert rows.measured == [heads[0].key] and not rows.reused
    assert filled.rows.loc[heads[0].key, "p50_ms"] < 1  # measured again, not the stale 99 ms
    again = measure_missing(shipped, space, heads[:1], progress=False)[1]
    assert again.reused == [heads[0].key] and not again.measured

    elsewhere = replace(shipped, fingerprint={**shipped.fingerprint, "device": "cpu-other", "cpu_model": "Other CPU"})
    assert measure_missing(elsewhere, space, heads, progress=False) is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = complete(elsewhere, space, progress=False)
    assert set(table.filled_rows) - set(elsewhere.filled_rows) == {b.key for b in heads} and not table.rows_here
    assert any("filled from a fit" in str(w.message) for w in caught)


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


def sample_setup(space, scale=None, calibration_archs=3):
    from hwnas.latency.profile import ProfileSettings, plans_for

    table = LatencyTable.empty({"device": "cpu", "backend": "onnxruntime"})
    settings = ProfileSettings(calibration_archs=calibration_archs)
    measure, calls = synthetic_measure(table, space, scale)
    calibration = plans_for(space, settings, [], calibrate=True)
    return table, calibration, measure, calls, lambda blocks: plans_for(space, settings, blocks, calibrate=False)


def test_a_sampled_table_measures_a_design_per_kind_and_fits_the_rest():
    """The first design gives each kind rows by its weight in a subnet (at least 3, for a
    cross-validated error): most to the encoders, which are most of a subnet's latency."""
    from hwnas.latency.sampled import LEAST_PER_KIND, first_design, kind_shares, profile_sampled

    space = get_space("resnas-tiny")
    blocks = list(dict.fromkeys(space.block_configs()))
    table, calibration, measure, calls, block_plan = sample_setup(space)
    design = first_design(table, blocks, kind_shares(space))
    per_kind = {k: sum(b.kind == k for b in design) for k in {b.kind for b in blocks}}
    assert min(per_kind.values()) == LEAST_PER_KIND and per_kind["encoder"] > 3 * LEAST_PER_KIND
    assert [b.kind for b in design[:4]] == sorted(per_kind)  # a row of each kind first
    result = profile_sampled(space, table, calibration, block_plan, measure, budget_s=None)
    assert [c[0] for c in calls] == ["probe", "probe", "probe", "design"]  # three subnets timed one by one
    assert result["rows_measured"] == len(design)
    assert result["rows_fitted"] == len(blocks) - result["rows_measured"] > 0
    assert not table.missing(blocks) and len(table.filled_rows) == result["rows_fitted"]
    fitted = [b for b in blocks if b.key in table.filled_rows and b.kind == "encoder"]
    truth = synthetic_ms(fitted)
    assert np.abs(table.latencies(fitted, space.key) / truth - 1).max() < 0.01  # costs' combination recovered


def test_the_budget_minimum_leaves_out_the_first_models_start_up():
    """The first model measured pays one-time costs (the exporter's start-up); the minimum a refused
    budget names comes from the next two, so a 0.2-s model behind a 2-s first one asks for 0.1 minute
    (up to 0.3 on a loaded machine), not the half minute eight first models would take."""
    import time

    from hwnas.latency.sampled import MIN_CALIBRATION, BudgetTooSmall, profile_sampled

    space = get_space("autoformer-digits")
    table, calibration, measure, calls, block_plan = sample_setup(space, calibration_archs=12)

    def slow_start(plans, name, show):
        time.sleep(2.0 if not calls else 0.2 * len(plans))
        return measure(plans, name, show)

    with pytest.raises(
        BudgetTooSmall,
        match=rf"even {MIN_CALIBRATION} calibration subnets .* \(one takes about 0\.[2-5] s\); give at least `budget_min` 0\.[1-3]$",
    ):
        profile_sampled(space, table, calibration, block_plan, slow_start, budget_s=1.0)
    assert [c[0] for c in calls] == ["probe"] * 3  # refused before the other nine


def test_a_tight_budget_measures_fewer_calibration_subnets_and_says_so():
    """Twelve 0.2-s subnets would fill more than three quarters of a 3-s budget: fewer are measured
    (the first ones, so the smallest and the largest stay), never fewer than the minimum, with a
    notice naming the budget that measures all twelve."""
    import time

    from hwnas.errors import HwnasNotice
    from hwnas.latency.sampled import MIN_CALIBRATION, profile_sampled

    space = get_space("autoformer-digits")
    table, calibration, measure, calls, block_plan = sample_setup(space, calibration_archs=12)

    def timed(plans, name, show):
        time.sleep(0.2 * len(plans))
        return measure(plans, name, show)

    with pytest.warns(HwnasNotice, match=r"holds \d+ of the 12 calibration subnets .* measures all 12$"):
        result = profile_sampled(space, table, calibration, block_plan, timed, budget_s=3.0)
    used = result["calibration_subnets"]
    assert MIN_CALIBRATION <= used < 12
    assert calls[:4] == [("probe", 1)] * 3 + [("calibration", used - 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a budget that holds them all measures all, without a word
        table, calibration, measure, calls, block_plan = sample_setup(space, calibration_archs=12)
        assert profile_sampled(space, table, calibration, block_plan, timed, budget_s=30.0)["calibration_subnets"] == 12


def test_a_budget_measures_as_many_rows_as_a_rows_own_time_allows():
    """A row takes a fraction of a subnet's time (an export of one block, not of a network): the
    time left after the calibration subnets goes to rows at what the first rows took, not at a
    subnet's time per row."""
    from hwnas.latency.sampled import profile_sampled

    space = get_space("resnas-tiny")
    table, calibration, measure, calls, block_plan = sample_setup(space, calibration_archs=12)

    def timed(plans, name, show):
        time.sleep(sum(0.2 if p.entry.kind == "network" else 0.01 for p in plans))
        return measure(plans, name, show)

    result = profile_sampled(space, table, calibration, block_plan, timed, budget_s=4.0)
    assert result["calibration_subnets"] == 12  # 2.4 s, within three quarters of the budget
    assert result["rows_measured"] >= 60  # ~1.5 s left at 0.01 s a row (at a subnet's 0.2 s: 8)
    assert [c[0] for c in calls][4:6] == ["design", "round 2"]


def test_a_wider_space_in_a_shared_table_measures_its_rows_beyond_the_tables_first():
    """A table shared with a narrower space fits each kind on that space's rows too; the wider
    space's first rows are the ones farthest from those (its costliest), not its cheapest, which
    the fit would have predicted anyway."""
    from hwnas.latency.sampled import profile_sampled
    from hwnas.spaces.blocks import BlockConfig

    narrow, wide = get_space("autoformer-tiny"), get_space("autoformer-small")
    table, calibration, measure, _, block_plan = sample_setup(narrow)
    profile_sampled(narrow, table, calibration, block_plan, measure, budget_s=None)
    before = set(table.measured_rows().index)
    _, calibration2, _, _, block_plan2 = sample_setup(wide)
    measure_into = synthetic_measure(table, wide)[0]
    profile_sampled(wide, table, calibration2, block_plan2, measure_into, budget_s=None, max_rows=3)
    new = [k for k in table.measured_rows().index if k not in before]
    assert sorted(BlockConfig.from_key(k).kind for k in new) == ["encoder", "head", "patch_embed"]
    encoders = [b for b in dict.fromkeys(wide.block_configs()) if b.kind == "encoder"]
    chosen = costs([BlockConfig.from_key(k) for k in new if k.startswith("encoder")])[0]
    assert chosen[0] >= np.quantile(costs(encoders)[:, 0], 0.9)  # MACs among the costliest tenth


def test_a_subnets_measuring_time_is_estimated_from_its_macs_not_from_the_largest():
    """The probes are the smallest (start-up included), the largest and a random subnet: the others
    are estimated on the line in MACs through the last two, so a space whose largest subnet takes
    twice the typical one is not refused for twice what it needs."""
    from hwnas.latency.sampled import _seconds_per_subnet
    from hwnas.spaces.blocks import BlockConfig

    space = get_space("autoformer-base")
    _, calibration, *_ = sample_setup(space, calibration_archs=12)
    macs = np.array([sum(BlockConfig.from_key(k).macs() for k in p.entry.blocks) for p in calibration])
    truth = 1.0 + macs / macs.max() * 20.0  # seconds: a fixed cost and a share that grows with MACs
    seconds = _seconds_per_subnet(calibration, [30.0, *truth[1:3]])
    assert seconds[0] == 30.0 and macs[1] == macs.max()
    np.testing.assert_allclose(seconds[3:], truth[3:], rtol=1e-9)
    assert seconds[3:].mean() < 0.9 * seconds[1]


def test_a_table_transfers_to_a_device_that_scales_kinds_unevenly():
    from hwnas.latency.sampled import profile_sampled

    space = get_space("vitas-deit-tiny")
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


def test_a_row_cap_keeps_one_row_per_kind_and_measures_no_more():
    from hwnas.latency.sampled import profile_sampled

    space = get_space("resnas-tiny")
    blocks = list(dict.fromkeys(space.block_configs()))
    kinds = {b.kind for b in blocks}
    for cap in (2, 48):  # below the kinds' count: one each; 10% of the rows: the design, then rounds
        table, calibration, measure, calls, block_plan = sample_setup(space)
        result = profile_sampled(space, table, calibration, block_plan, measure, budget_s=None, max_rows=cap)
        assert result["rows_measured"] == max(cap, len(kinds))
        assert set(table.measured_rows()["kind"]) == kinds
        assert ("round 2" in [c[0] for c in calls]) == (cap > 4 * len(kinds))


def synthetic_table(space, path):
    """A table of `space` as another device measured it (synthetic timings, a calibration of 1:1)."""
    from hwnas.latency.table import Calibration

    blocks = list(dict.fromkeys(space.block_configs()))
    table = LatencyTable.empty({"device": "cpu-other", "backend": "onnxruntime"})
    stats = ("p10_ms", "p50_ms", "p90_ms", "mean_ms", "runs", "rounds", "round_spread")
    rows = [(b, dict.fromkeys(stats, float(v))) for b, v in zip(blocks, synthetic_ms(blocks))]
    table.add_rows(rows[1:])
    table.add_rows(rows[:1], errors={blocks[0].key: 2.0})  # one row fitted there
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
    assert f"has 1 of {len(set(space.block_configs()))} rows of toy-more fitted, not measured" in result.stderr
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
        "too small to measure even 8 calibration subnets",
        "give at least --budget-min",
    )
    # refitting measures nothing: the same fit on the same rows gives the same rows and calibration
    refit = hwnas(*base, "--refit", "--table", str(out), "--from", str(other), "--json")
    assert refit.returncode == 0, refit.stderr
    refitted = json.loads(refit.stdout)
    assert refitted["rows_refitted"] == report["blocks_fitted"] and refitted["row_change_pct"]["max_abs"] < 1e-3
    assert refitted["calibration"]["n"] == 3 and refitted["calibration"]["a"] == pytest.approx(
        report["calibration"]["a"]
    )
    assert_one_line_error(hwnas(*base, "--refit", "--budget-min", "3"), "--refit measures nothing")


def test_a_second_space_sampled_into_the_same_table_keeps_the_first_ones_fitted_rows():
    from hwnas.latency.sampled import profile_sampled

    first, second = get_space("resnas-digits"), get_space("autoformer-tiny")  # no block in common
    table, calibration, measure, _, block_plan = sample_setup(first)
    profile_sampled(first, table, calibration, block_plan, measure, budget_s=None)
    before = dict(table.filled_rows)
    assert before, "the first space has rows fitted"
    _, calibration2, measure2, _, block_plan2 = sample_setup(second)
    measure_into = synthetic_measure(table, second)[0]
    profile_sampled(second, table, calibration2, block_plan2, measure_into, budget_s=None)
    assert not table.missing(first.block_configs()) and not table.missing(second.block_configs())
    assert all(k in table.filled_rows or k in table.measured_rows().index for k in before)


def test_a_fitted_row_in_another_spaces_calibration_keeps_its_value():
    from hwnas.latency.profile import merge_measurements
    from hwnas.latency.sampled import profile_sampled

    first, second = get_space("vitas-deit-tiny"), get_space("autoformer-tiny")  # 6 rows in common
    table, calibration, measure, _, block_plan = sample_setup(first)
    result = profile_sampled(first, table, calibration, block_plan, measure, budget_s=None)
    merge_measurements(table, [p.entry for p in calibration], result["measured"], first)  # first is calibrated
    shared = {b.key for b in first.block_configs()} & {b.key for b in second.block_configs()}
    fitted = {k: table.rows.loc[k, "p50_ms"] for k in shared if k in table.filled_rows}
    assert fitted, "some shared rows are fitted for the first space"
    keep = frozenset(table.rows_of_other_spaces(second))
    assert shared <= keep and not keep & ({b.key for b in second.block_configs()} - shared)
    _, calibration2, _, _, block_plan2 = sample_setup(second)
    measure_into = synthetic_measure(table, second, scale={"encoder": 1.3})[0]  # the second fit differs
    profile_sampled(second, table, calibration2, block_plan2, measure_into, budget_s=None, max_rows=4, keep=keep)
    still = {k: v for k, v in fitted.items() if k in table.filled_rows}
    assert still and all(table.rows.loc[k, "p50_ms"] == v for k, v in still.items())


def test_a_refit_fits_a_spaces_rows_on_every_measured_row_and_its_calibration_on_what_it_measured():
    """`hwnas profile --refit`: a space's fitted rows fitted again on the rows the table has measured
    since (here another space's, of the same kinds), its calibration refitted on the subnets it
    measured then (found by their sums of rows before the rows move); nothing measured."""
    from hwnas.latency.calibration_subnets import calibration_pairs
    from hwnas.latency.predict import LatencyPredictor
    from hwnas.latency.profile import merge_measurements
    from hwnas.latency.sampled import profile_sampled, refit

    space, other = get_space("autoformer-tiny"), get_space("glit-tiny")  # encoders, heads and stems in both
    table, calibration, measure, _, block_plan = sample_setup(space, scale={"encoder": 1.2})
    result = profile_sampled(space, table, calibration, block_plan, measure, budget_s=None, max_rows=4)
    merge_measurements(table, [p.entry for p in calibration], result["measured"], space)
    then = {s: calibration_pairs(space, LatencyPredictor(table, space, s))[1] for s in ("p50_ms", "p90_ms")}
    fitted = [b for b in dict.fromkeys(space.block_configs()) if b.key in table.filled_rows]
    encoders = [b for b in fitted if b.kind == "encoder"]
    truth = synthetic_ms(encoders, {"encoder": 1.2})
    off_before = np.abs(table.latencies(encoders, space.key) / truth - 1).mean()
    measured = {k: table.rows.loc[k, "p50_ms"] for k in table.measured_rows().index}
    # the other space's rows, measured on the same device (not its calibration: its own rows only)
    rows = [b for b in dict.fromkeys(other.block_configs()) if b.key not in table]
    stats = ("p10_ms", "p50_ms", "p90_ms", "mean_ms", "runs", "rounds", "round_spread")
    table.add_rows((b, dict.fromkeys(stats, float(v))) for b, v in zip(rows, synthetic_ms(rows, {"encoder": 1.2})))

    moved = refit(table, space)
    assert moved["rows_refitted"] == len(fitted) and moved["row_change_pct"]["max_abs"] > 1
    assert np.abs(table.latencies(encoders, space.key) / truth - 1).mean() < off_before / 10
    assert all(table.rows.loc[k, "p50_ms"] == v for k, v in measured.items())  # measured rows stay
    for statistic in ("p50_ms", "p90_ms"):
        archs, now = calibration_pairs(space, LatencyPredictor(table, space, statistic))
        assert np.array_equal(now, then[statistic])  # the same subnets, found by the new sums
    again = refit(table, space)
    assert again["row_change_pct"]["max_abs"] < 1e-9
    table.rows.loc[table.measured_rows().index[0], "p50_ms"] *= 1.1  # a row measured again since calibrating
    with pytest.raises(TableError, match="found by their sums of rows .* re-profile it instead: `hwnas profile"):
        refit(table, space)
