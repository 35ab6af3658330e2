"""Latency tables: real ONNX exports measured by real ONNX Runtime sessions on a toy space."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import unittest.mock
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import tomllib
import torch

import hwnas.profilers.protocol as protocol_mod
from hwnas.errors import HwnasError
from hwnas.latency.bundle import (
    BundleError,
    block_plans,
    example_input,
    export_onnx,
    export_peak_bytes,
    export_workers,
    network_plans,
    write_bundle,
)
from hwnas.latency.device import DeviceError, choose_backend, parse_device
from hwnas.latency.measure import MeasureError, table_settings
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.profile import ProfileSettings, profile_space
from hwnas.latency.resolve import select_table
from hwnas.latency.table import SHIPPED_DIR, Calibration, LatencyTable, TableError, find_table, round_to_resolution
from hwnas.latency.validate import agreement, rescore, validate_table
from hwnas.profilers.protocol import Protocol, Stats
from hwnas.resources import available_cores
from hwnas.spaces import Arch, get_space
from tests.helpers import assert_one_line_error, hwnas, toy_space_yaml

ROOT = Path(__file__).resolve().parents[1]
QUICK = Protocol(warmup_runs=3, warmup_s=0.01, rounds=2, round_s=0.01, group_size=3)
SETTINGS = ProfileSettings(device="cpu", calibration_archs=3, protocol=QUICK)


@pytest.fixture(scope="module")
def toy_table(toy, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tables") / "cpu.csv"
    profile_space(toy, SETTINGS, path, progress=False)
    return path


# ---- devices ---------------------------------------------------------------------------------------
def test_device_labels_and_backends():
    assert parse_device("cpu").backends == ("onnxruntime",) and parse_device("cpu-graviton3").label == "cpu-graviton3"
    a100 = parse_device("A100")
    assert a100.is_gpu and a100.gpu_name == "A100" and parse_device("gpu-mycard").gpu_name is None
    assert choose_backend(parse_device("cpu"), None, "fp32") == "onnxruntime"
    assert choose_backend(a100, None, "fp16") in ("tensorrt", "torch")
    with pytest.raises(DeviceError, match="unknown device label 'foo'.*cpu-<name>"):
        parse_device("foo")
    with pytest.raises(DeviceError, match="fp32 only"):
        choose_backend(parse_device("cpu"), None, "fp16")
    with pytest.raises(DeviceError, match="use `backend` tensorrt or torch"):
        choose_backend(a100, "onnxruntime", "fp32")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_gpu_label_without_that_gpu_is_refused(toy, tmp_path):
    with pytest.raises(DeviceError, match="has no CUDA GPU.*--export-blocks"):
        profile_space(toy, replace(SETTINGS, device="a100", backend="torch"), tmp_path / "t.csv", progress=False)
    assert not (tmp_path / "t.csv").exists()


# ---- block modules and export ----------------------------------------------------------------------
def test_block_modules_have_the_analytic_size_and_export_exactly(toy, tmp_path):
    for plan in block_plans(toy.block_configs(), batch_size=2, precision="fp32"):
        cfg = toy.block_configs()[[b.key for b in toy.block_configs()].index(plan.entry.key)]
        module = plan.build()
        assert sum(p.numel() for p in module.parameters()) == cfg.params(), cfg.key
        x = example_input(plan.entry)
        path = export_onnx(module, x, tmp_path / plan.entry.file)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"x": x.numpy()})
        with torch.no_grad():
            assert np.abs(got - module(x).numpy()).max() < 1e-4, cfg.key
    text = path.read_bytes()
    assert str(ROOT).encode() not in text and b".py" not in text  # exporter metadata (local paths) stripped


def test_building_what_is_measured_leaves_the_callers_rng_alone(toy):
    """Block modules, calibration subnets and extraction seed their own generator, never the caller's."""
    from hwnas.supernet import build_supernet

    supernet = build_supernet(toy)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    for plan in block_plans(toy.block_configs(), 1, "fp32") + network_plans([toy.largest()], 1, "fp32"):
        plan.build()
    supernet.extract(toy.smallest())
    assert torch.equal(torch.rand(4), expected)
    first, second = (network_plans([toy.largest()], 1, "fp32")[0].build() for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(first.parameters(), second.parameters()))  # and reproducibly so


def test_exports_in_parallel_processes_write_the_same_files_and_a_dead_one_is_one_line(toy, tmp_path):
    plans = block_plans(toy.block_configs()[:3], 1, "fp32") + network_plans([toy.smallest(), toy.largest()], 1, "fp32")
    one, two = tmp_path / "one", tmp_path / "two"
    write_bundle(one, plans, {}, progress=False, workers=1)
    (two / plans[0].entry.file).parent.mkdir(parents=True)
    (two / plans[0].entry.file).write_bytes(b"kept")  # a file already there is kept (an interrupted export resumes)
    write_bundle(two, plans, {}, progress=False, workers=2)
    assert (two / plans[0].entry.file).read_bytes() == b"kept"
    assert all((one / p.entry.file).read_bytes() == (two / p.entry.file).read_bytes() for p in plans[1:])
    assert (one / "manifest.json").read_text() == (two / "manifest.json").read_text()

    context = multiprocessing.get_context("fork")
    counts = context.SimpleQueue()
    daemon = context.Process(target=lambda: counts.put(export_workers(plans)), daemon=True)  # a daemon may not fork
    daemon.start()
    daemon.join()
    assert counts.get() == 1
    # no more at once than the free memory holds at the largest one's peak
    peak = max(map(export_peak_bytes, plans))
    assert peak > export_peak_bytes(plans[0])  # a whole network's weights outweigh a block's
    for room, most in ((1.5 * peak, 1), (2.5 * peak, 2)):
        with unittest.mock.patch("hwnas.latency.bundle.available_memory_bytes", return_value=int(room)):
            assert export_workers(plans) == min(most, available_cores())

    def killed() -> torch.nn.Module:  # an export process killed (the kernel's OOM killer does this)
        os._exit(9)

    dying = [replace(plans[1], build=killed)]
    with pytest.raises(BundleError, match="export process died .* rerun to resume"):
        write_bundle(tmp_path / "dead", dying + plans[2:], {}, progress=False, workers=2)


def test_a_table_of_a_newer_format_is_refused(tmp_path):
    shipped_path = SHIPPED_DIR / "cpu_onnxruntime_fp32_bs1_t1.csv"
    shutil.copyfile(shipped_path, tmp_path / "new.csv")
    side = json.loads(shipped_path.with_suffix(".json").read_text())
    (tmp_path / "new.json").write_text(json.dumps({**side, "format": 99}))
    with pytest.raises(TableError, match="has format 99, newer than this hwnas reads"):
        LatencyTable.load(tmp_path / "new.csv")


def test_encoder_block_module_is_the_extracted_block(toy):
    """The row is measured on the same module type/layout that extraction produces."""
    from hwnas.supernet import build_supernet

    arch = toy.largest()
    extracted = build_supernet(toy).extract(arch).blocks[0]
    cfg = arch.blocks()[1]
    standalone = cfg.definition.module(cfg)
    assert [type(m) for m in extracted.modules()] == [type(m) for m in standalone.modules()]
    assert [p.shape for p in extracted.parameters()] == [p.shape for p in standalone.parameters()]


# ---- profiling --------------------------------------------------------------------------------------
def test_profile_measures_every_block_and_records_the_setup(toy, toy_table):
    table = LatencyTable.load(toy_table)
    assert sorted(table.rows.index) == sorted(b.key for b in toy.block_configs())
    rows = table.rows
    assert (rows["p10_ms"] <= rows["p50_ms"]).all() and (rows["p50_ms"] <= rows["p90_ms"]).all()
    # `rounds` counts the rounds kept by the round filter (at least the fastest one)
    assert (
        rows["rounds"].between(1, QUICK.rounds).all()
        and (rows["runs"] >= rows["rounds"] * QUICK.min_runs_per_round).all()
    )
    fp = table.fingerprint
    for field in (
        "device",
        "cpu_model",
        "cpu_id",
        "cpu_isa",
        "cpu_count",
        "threads",
        "backend",
        "backend_version",
        "onnxruntime",
        "torch",
        "precision",
        "batch_size",
        "session_options",
        "created",
    ):
        assert fp.get(field) not in (None, ""), field
    assert fp["session_options"]["intra_op_num_threads"] == 1 and fp["backend"] == "onnxruntime"
    cal = table.calibration(toy)
    assert cal.n == 3 and cal.a > 0
    # every encoder block (attention and MLP) takes longer than every head (a norm and a 10-way linear):
    # the table measured something real (widths 32 vs 48 are too close to order on a noisy shared VM)
    rows = table.expanded()
    assert rows.loc[rows["kind"] == "encoder", "p50_ms"].min() > rows.loc[rows["kind"] == "head", "p50_ms"].max()
    assert set(rows["in_dim"]) >= {32, 48}  # the expanded view spells the fields out
    assert not list(toy_table.parent.glob(".*work"))  # the work folder is cleaned up


def test_rerun_is_up_to_date_and_measures_nothing(toy, toy_table):
    before = toy_table.read_bytes()
    report = profile_space(toy, SETTINGS, toy_table, progress=False)
    assert report["up_to_date"] and toy_table.read_bytes() == before


def test_interrupted_profile_keeps_rows_and_resumes(toy, tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    real_time_group = protocol_mod.time_group
    groups = []

    def dies_on_third_group(*args, **kwargs):
        if len(groups) == 2:
            raise KeyboardInterrupt
        groups.append(1)
        return real_time_group(*args, **kwargs)

    monkeypatch.setattr(protocol_mod, "time_group", dies_on_third_group)
    with pytest.raises(KeyboardInterrupt):
        profile_space(toy, SETTINGS, path, progress=False)
    saved = LatencyTable.load(path)
    assert len(saved) == 2 * QUICK.group_size  # both finished groups reached the table
    kept = saved.rows["p50_ms"].copy()

    groups.clear()
    monkeypatch.setattr(protocol_mod, "time_group", lambda *a, **k: (groups.append(a[0]), real_time_group(*a, **k))[1])
    report = profile_space(toy, SETTINGS, path, progress=False)
    measured_again = sum(len(runners) for runners in groups)
    assert measured_again == len(toy.block_configs()) - len(kept) + SETTINGS.calibration_archs
    assert report["blocks_measured"] == len(toy.block_configs()) - len(kept)
    final = LatencyTable.load(path)
    pd.testing.assert_series_equal(final.rows.loc[kept.index, "p50_ms"], kept)
    assert final.covers(toy)


def test_tables_share_rows_between_spaces(toy, toy_table, tmp_path):
    path = tmp_path / "shared.csv"
    shutil.copy(toy_table, path)
    shutil.copy(toy_table.with_suffix(".json"), path.with_suffix(".json"))
    wider = get_space(toy_space_yaml(tmp_path, "toy-wider", embed_dim=[48, 64]))
    report = profile_space(wider, replace(SETTINGS, protocol=None), path, progress=False)  # None: the table's protocol
    new_blocks = [b for b in wider.block_configs() if b.in_dim == 64 or b.out_dim == 64]
    assert report["blocks_measured"] == len(new_blocks) < len(wider.block_configs())
    table = LatencyTable.load(path)
    assert set(table.calibrations) == {toy.ref, wider.ref}
    assert LatencyPredictor(table, wider).predict(wider.largest()).latency_ms > 0


def test_profile_refuses_to_mix_setups(toy, toy_table, tmp_path):
    with pytest.raises(TableError, match="another setup.*threads.*`out` NEW.csv"):
        profile_space(toy, replace(SETTINGS, threads=2), toy_table, progress=False)
    with pytest.raises(TableError, match="another setup.*protocol"):  # rows timed otherwise are another statistic
        profile_space(toy, replace(SETTINGS, protocol=replace(QUICK, round_tolerance=None)), toy_table, progress=False)


# ---- prediction ------------------------------------------------------------------------------------
def test_prediction_is_calibrated_sum_and_vectorised(toy, toy_table):
    table = LatencyTable.load(toy_table)
    predictor = LatencyPredictor(table, toy)
    archs = [toy.sample(i) for i in range(40)]
    many = predictor.predict_many(archs)
    cal = table.calibration(toy)
    for arch, value in zip(archs, many):
        p = predictor.predict(arch)
        assert [k for k, _ in p.blocks] == [b.key for b in arch.blocks()]
        assert p.sum_ms == pytest.approx(table.rows.loc[[b.key for b in arch.blocks()], "p50_ms"].sum())
        assert p.latency_ms == pytest.approx(cal.a * p.sum_ms + cal.b) == pytest.approx(value)
        assert p.latency_ms == value  # exactly: a budget met by one is met by the other
    assert predictor.predict(toy.largest()).latency_ms > predictor.predict(toy.smallest()).latency_ms


def test_p90_has_its_own_rows_calibration_and_validation(toy, toy_table, tmp_path):
    table = LatencyTable.load(toy_table)
    p50, p90 = LatencyPredictor(table, toy), LatencyPredictor(table, toy, "p90_ms")
    arch = toy.largest()
    tail = p90.predict(arch)
    assert tail.statistic == "p90_ms" and tail.sum_ms == pytest.approx(
        table.rows.loc[[b.key for b in arch.blocks()], "p90_ms"].sum()
    )
    assert table.calibration(toy, "p90_ms") != table.calibration(toy) and tail.sum_ms > p50.predict(arch).sum_ms
    report = validate_table(
        toy, table, n=3, seed=5, out=tmp_path / "val", protocol=QUICK, processes=2, progress=False, statistic="p90_ms"
    )
    df = pd.read_csv(report["csv"])
    assert report["statistic"] == "p90_ms"
    assert df["predicted_ms"].to_numpy() == pytest.approx(
        p90.predict_many([Arch.from_dict(json.loads(a), toy) for a in df["arch"]])
    )


def test_table_profiled_before_tail_statistics_gets_their_calibration_only(toy, toy_table, tmp_path):
    old = LatencyTable.load(toy_table)
    old.tail_calibrations = {}  # as tables were saved before p90 was calibrated
    path = old.save(tmp_path / "old.csv")
    with pytest.raises(TableError, match="has no p90_ms calibration for toy-space .*hwnas profile --device cpu"):
        LatencyPredictor(LatencyTable.load(path), toy, "p90_ms")
    summary = profile_space(toy, replace(SETTINGS, calibration_archs=3), path, progress=False)
    assert summary["blocks_measured"] == 0 and summary["calibrated_statistics"] == ["p90_ms"]
    again = LatencyTable.load(path)
    assert again.calibration(toy) == old.calibration(toy)  # p50 kept as it was
    assert LatencyPredictor(again, toy, "p90_ms").calibration.n == 3
    assert profile_space(toy, SETTINGS, path, progress=False)["up_to_date"]


def test_calibration_fit():
    cal = Calibration.fit([1.0, 2.0, 3.0, 4.0], [1.1, 2.1, 3.1, 4.1])
    assert cal.a == pytest.approx(1.0) and cal.b == pytest.approx(0.1) and cal(10.0) == pytest.approx(10.1)
    assert Calibration.fit([2.0], [3.0]).a == pytest.approx(1.5)  # one point: a pure scale
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_missing_row_names_the_block_and_the_command(toy, toy_table, tmp_path):
    table = LatencyTable.load(toy_table)
    dropped = toy.largest().blocks()[1].key
    table.rows = table.rows.drop(index=dropped)
    table.save(tmp_path / "holey.csv")
    with pytest.raises(TableError) as err:
        LatencyPredictor(LatencyTable.load(tmp_path / "holey.csv"), toy)
    message = str(err.value)
    assert dropped in message and f"hwnas profile --device cpu --space {toy.key}" in message and "\n" not in message


def test_table_of_another_space_is_refused(toy_table):
    digits = get_space("autoformer-digits")
    with pytest.raises(TableError, match="no row for block .*hwnas profile --device cpu --space autoformer-digits"):
        LatencyPredictor(LatencyTable.load(toy_table), digits)
    table = LatencyTable.load(toy_table)
    with pytest.raises(TableError, match="was profiled for .*toy-space.*not autoformer-digits@"):
        table.calibration(digits)


def _set_cell(path: Path, row: int, column: str, value: str) -> None:
    lines = path.read_text().splitlines()
    cells = lines[row].split(",")
    cells[lines[0].split(",").index(column)] = value
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.write_text("not,a\ncsv table"), "missing column"),
        (lambda p: _set_cell(p, row=1, column="p50_ms", value="oops"), "non-numeric"),
        (lambda p: p.write_bytes(b"\xff\xfe\x00garbage"), "corrupted"),
        (lambda p: p.with_suffix(".json").write_text("{"), "sidecar"),
        (lambda p: p.with_suffix(".json").unlink(), "no sidecar"),
    ],
)
def test_corrupted_tables_are_clear_errors(toy_table, tmp_path, damage, reason):
    path = tmp_path / "t.csv"
    shutil.copy(toy_table, path)
    shutil.copy(toy_table.with_suffix(".json"), path.with_suffix(".json"))
    damage(path)
    with pytest.raises(TableError, match=reason):
        LatencyTable.load(path)


def test_find_table_by_device(toy_table, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HWNAS_TABLES", str(toy_table.parent))
    assert find_table("cpu").path == toy_table
    with pytest.raises(TableError, match="no latency table for device 'a100'.*hwnas profile --device a100"):
        find_table("a100")
    assert select_table("cpu", toy_table, "any").path == toy_table == select_table(None, toy_table, "any").path
    with pytest.raises(TableError, match="measured on device 'cpu', not 'cpu-other'; pass `device` cpu"):
        select_table("cpu-other", toy_table, "any")


def test_setup_differences_name_the_table_and_this_machine(toy_table):
    table = LatencyTable.load(toy_table)
    here = {**table.fingerprint, "backend_version": "9.9.9", "cpu_id": None}
    table.fingerprint.pop("cpu_isa")
    assert table.setup_differences(here) == [
        f"backend_version: table {table.fingerprint['backend_version']!r}, here '9.9.9'",
        f"cpu_id: table {table.fingerprint['cpu_id']!r}, here not recorded",
        f"cpu_isa: table not recorded, here {here['cpu_isa']!r}",
    ]


# ---- validation -------------------------------------------------------------------------------------
def test_agreement_metrics():
    measured = np.array([10.0, 20.0, 30.0, 40.0])
    m = agreement(np.array([11.0, 19.0, 30.0, 48.0]), measured)
    assert m["mape_pct"] == pytest.approx(100 * (0.1 + 0.05 + 0 + 0.2) / 4)
    assert m["within_10pct"] == pytest.approx(75.0) and m["kendall_tau"] == pytest.approx(1.0)
    assert agreement(measured[::-1].copy(), measured)["kendall_tau"] == pytest.approx(-1.0)


def test_kendall_tau_ranks_at_the_table_resolution():
    # the same rows summed in another order differ in the last bit: a tie, not a (wrong) ranking
    a = 0.1 + 0.2 + 0.3
    b = 0.3 + 0.2 + 0.1
    assert a != b and round_to_resolution([a])[0] == round_to_resolution([b])[0] == 0.6
    tau = agreement(np.array([a, b, 2.0]), np.array([1.1, 1.0, 2.0]))["kendall_tau"]
    assert tau == pytest.approx(2 / np.sqrt(6))  # tau-b with one tie; 1/3 if the last bit ranked them
    assert round_to_resolution([123.4567891, 0.000123456789, 0.0]).tolist() == [123.457, 0.000123457, 0.0]


def test_validate_table_measures_in_separate_processes(toy, toy_table, tmp_path, monkeypatch):
    import hwnas.latency.measure as measure_mod

    calls = []
    real_run = measure_mod.subprocess.run

    def spy(args, **kwargs):
        if "hwnas.latency.measure" in args:  # the global subprocess.run also serves other callers
            calls.append(args)
        return real_run(args, **kwargs)

    monkeypatch.setattr(measure_mod.subprocess, "run", spy)
    report = validate_table(
        toy,
        LatencyTable.load(toy_table),
        n=4,
        seed=3,
        out=tmp_path / "val",
        protocol=QUICK,
        processes=2,
        progress=False,
    )
    jobs = [str(tmp_path / "val" / "work" / f"process{i}.job.json") for i in (1, 2)]
    assert [c[1:4] for c in calls] == [["-m", "hwnas.latency.measure", job] for job in jobs]
    assert report["n"] == 4 and report["processes"] == 2
    assert (
        len(report["calibrated"]) == len(report["uncalibrated_sum"]) == 2
        and len(report["floor_process_vs_process"]) == 1
    )
    df = pd.read_csv(report["csv"])
    assert len(df) == 4 and (df[["process1_ms", "process2_ms"]] > 0).all().all()
    # each process's measurement is compared on its own, not their mean
    assert report["calibrated"][0] == agreement(df["predicted_ms"].to_numpy(), df["process1_ms"].to_numpy())
    assert report["floor_process_vs_process"][0] == agreement(
        df["process2_ms"].to_numpy(), df["process1_ms"].to_numpy()
    )
    # the MACs-only baseline: a line fitted on the calibration subnets' measurements, applied to each subnet
    line, calibration = report["macs_line"], LatencyTable.load(toy_table).calibration(toy)
    assert line["n"] == calibration.n and sorted(p[1] for p in line["points"]) == sorted(
        p[1] for p in calibration.points
    )
    mmacs = np.array([Arch.from_dict(json.loads(a), toy).macs() / 1e6 for a in df["arch"]])
    assert report["macs_only"][1] == agreement(line["a"] * mmacs + line["b"], df["process2_ms"].to_numpy())
    assert all(0 <= m["within_5pct"] <= m["within_10pct"] for m in report["calibrated"] + report["macs_only"])
    # the calibration subnets measured again in both processes: how far the machine moved since profiling,
    # and the calibration refitted on them now, applied to the same sums of rows
    again = report["calibration_remeasured"]
    assert again["then_ms"] == [p[1] for p in calibration.points] and len(again["now_ms"]) == 2
    now = np.array(again["now_ms"])
    assert (now > 0).all() and again["drift_pct"][1] == pytest.approx(100 * np.median(now[1] / again["then_ms"] - 1))
    refit = Calibration.fit([p[0] for p in calibration.points], now.mean(axis=0))
    expected = agreement(refit(df["sum_ms"].to_numpy()), df["process1_ms"].to_numpy())
    assert report["recalibrated_now"][0] == pytest.approx(expected, rel=1e-6)
    assert Path(report["plot"]).read_bytes()[:4] == b"\x89PNG"
    assert json.loads(Path(report["json"]).read_text())["n"] == 4
    assert not (tmp_path / "val" / "work").exists()
    # scored again on the table as it is now, nothing measured: the same table gives the same figures; its
    # rows refitted (here all x1.1) and its calibration refitted on the same subnets move the sum of rows
    again = rescore(toy, LatencyTable.load(toy_table), tmp_path / "val")
    assert again["rescored"] and {k: v for k, v in again.items() if k != "rescored"} == {
        k: v for k, v in report.items() if k != "rescored"
    }
    table = LatencyTable.load(toy_table)
    table.rows[["p50_ms", "p90_ms"]] *= 1.1
    table.set_calibration(
        toy, Calibration.fit([1.1 * p[0] for p in calibration.points], again["calibration_remeasured"]["then_ms"])
    )
    refitted = rescore(toy, table, tmp_path / "val")
    assert refitted["floor_process_vs_process"] == report["floor_process_vs_process"]
    assert refitted["uncalibrated_sum"] != report["uncalibrated_sum"]
    assert np.allclose(pd.read_csv(report["csv"])["sum_ms"], 1.1 * df["sum_ms"])
    table.set_calibration(toy, Calibration.fit([1.1 * p[0] for p in calibration.points], 0.9 * now.mean(axis=0)))
    with pytest.raises(HwnasError, match="on other measurements than those .* validate it again instead"):
        rescore(toy, table, tmp_path / "val")  # profiled again since: the validation's subnets are not its
    with pytest.raises(HwnasError, match="no validation to rescore in .*; run `hwnas validate-table` first"):
        rescore(toy, table, tmp_path / "none")
    with pytest.raises(HwnasError, match="`processes` must be at least 2"):
        validate_table(toy, LatencyTable.load(toy_table), n=4, processes=1, progress=False)


def test_validate_refuses_a_setup_this_machine_cannot_run(toy, toy_table, tmp_path):
    table = LatencyTable.load(toy_table)
    table.fingerprint = {**table.fingerprint, "device": "cpu-graviton3", "cpu_model": "Neoverse-V1"}
    with pytest.raises(MeasureError, match="cpu-graviton3 is a CPU 'Neoverse-V1'.*run it on the cpu-graviton3 itself"):
        validate_table(toy, table, n=2, out=tmp_path / "val", protocol=QUICK, progress=False)


# ---- device-side bundles ---------------------------------------------------------------------------
def test_bundle_measured_without_torch_imports_as_a_table(toy, toy_yaml, tmp_path):
    bundle = tmp_path / "bundle"
    result = hwnas(
        "profile",
        "--device",
        "cpu-target",
        "--space",
        str(toy_yaml),
        "--export-blocks",
        str(bundle),
        "--calibration-archs",
        "3",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["next"][0].startswith("python profilers/ort_profile.py")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert len([m for m in manifest["models"] if m["kind"] == "block"]) == len(toy.block_configs())
    # the device-side script, with torch and hwnas made unimportable
    script = ROOT / "profilers" / "ort_profile.py"
    code = (
        "import runpy, sys; sys.modules['torch'] = None; sys.modules['hwnas'] = None; "
        f"sys.path.insert(0, {str(script.parent)!r}); "  # as `python profilers/ort_profile.py` would
        f"sys.argv = ['ort_profile.py', {str(bundle)!r}, '--device', 'cpu-target', '--rounds', '2', '--group-size', '4']; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert run.returncode == 0, run.stderr
    assert "hwnas import-table" in run.stdout
    imported = hwnas("import-table", str(bundle), "--out", str(tmp_path / "dev.csv"), "--json")
    assert imported.returncode == 0, imported.stderr
    table = LatencyTable.load(tmp_path / "dev.csv")
    assert json.loads(imported.stdout)["added"] == len(table)
    assert table.device == "cpu-target" and len(table) == len(toy.block_configs()) and table.covers(toy)
    assert table.fingerprint["session_options"]["intra_op_num_threads"] == 1
    assert table.fingerprint["protocol"]["group_size"] == 4 and table.fingerprint["protocol"]["round_tolerance"] == 0.1


def test_unmeasured_bundle_is_a_clear_error(toy, tmp_path):
    bundle = tmp_path / "bundle"
    from hwnas.latency.profile import export_bundle

    export_bundle(toy, SETTINGS, bundle, progress=False)
    assert_one_line_error(hwnas("import-table", str(bundle)), "has not been measured yet", "ort_profile.py")


def test_trt_profiler_without_tensorrt_fails_in_one_line(tmp_path):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed; the GPU test below covers it")
    except ImportError:
        pass
    (tmp_path / "manifest.json").write_text(json.dumps({"version": 1, "models": []}))
    run = subprocess.run(
        [sys.executable, str(ROOT / "profilers" / "trt_profile.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        run.returncode == 2
        and run.stderr.strip()
        == "trt_profile: error: tensorrt is not installed; pip install tensorrt (or use an NGC container)"
    )


def test_stats_of_rounds():
    s = Stats.of([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]])
    assert s.p50_ms == 2.0 and s.runs == 6 and s.rounds == 2 and s.round_spread == 0.0


def test_stats_drop_the_rounds_of_a_slow_phase():
    """A host running 1.5x slower for a while moves the median of all calls; the rounds within the
    tolerance of the fastest round's median give the uncontended speed, and the spread still shows
    the slow phase."""
    fast, slow = [1.0, 1.02, 0.98], [1.5, 1.52, 1.48]
    rounds = [fast, slow, slow, fast, slow]
    everything = Stats.of(rounds)
    kept = Stats.of(rounds, tolerance=0.1)
    assert everything.p50_ms == 1.48 and everything.rounds == 5
    assert kept.p50_ms == 1.0 and kept.rounds == 2 and kept.runs == 6
    assert kept.round_spread == everything.round_spread == pytest.approx(0.5 / 1.5)
    assert Stats.of([[1.0], [1.08]], tolerance=0.1).rounds == 2  # within the tolerance: both kept


def test_protocols_recorded_before_the_round_filter_keep_every_round():
    recorded = {k: v for k, v in Protocol().to_dict().items() if k != "round_tolerance"}
    assert Protocol.from_dict(recorded).round_tolerance is None
    assert Protocol.from_dict(Protocol().to_dict()) == Protocol()
    # a spot check's shorter protocol computes the statistic the table's rows hold
    old_table = LatencyTable.empty(
        {"device": "cpu", "backend": "onnxruntime", "precision": "fp32", "batch_size": 1, "protocol": recorded}
    )
    brief = table_settings(old_table, Protocol.brief()).protocol
    assert brief.round_tolerance is None and brief.rounds == Protocol.brief().rounds
    assert table_settings(old_table).protocol == Protocol.from_dict(recorded)


# ---- GPU backends (run where a GPU is present) ----------------------------------------------------
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@gpu
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_torch_cuda_backend(toy, tmp_path, cuda_graphs):
    settings = replace(SETTINGS, device="gpu-local", backend="torch", cuda_graphs=cuda_graphs)
    profile_space(toy, settings, tmp_path / "t.csv", progress=False)
    table = LatencyTable.load(tmp_path / "t.csv")
    assert len(table) == len(toy.block_configs()) and table.fingerprint["gpu_model"] == torch.cuda.get_device_name(0)
    assert table.fingerprint["cuda_graphs"] is cuda_graphs
    report = validate_table(toy, table, n=3, out=tmp_path / "val", protocol=QUICK, progress=False)
    assert report["n"] == 3


@gpu
def test_tensorrt_backend(toy, tmp_path):
    pytest.importorskip("tensorrt")
    settings = replace(SETTINGS, device="gpu-local", backend="tensorrt", precision="fp16")
    profile_space(toy, settings, tmp_path / "t.csv", progress=False)
    assert len(LatencyTable.load(tmp_path / "t.csv")) == len(toy.block_configs())


# ---- CLI ---------------------------------------------------------------------------------------------
def test_cli_predict(toy, toy_yaml, toy_table, tmp_path):
    arch = toy.largest()
    arch.to_json(tmp_path / "arch.json")
    args = [
        "predict",
        "--arch",
        str(tmp_path / "arch.json"),
        "--device",
        "cpu",
        "--table",
        str(toy_table),
        "--space",
        str(toy_yaml),
    ]
    result = hwnas(*args, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    expected = LatencyPredictor(LatencyTable.load(toy_table), toy).predict(arch)
    assert data["latency_ms"] == pytest.approx(expected.latency_ms) and len(data["blocks"]) == len(arch.blocks())
    text = hwnas(*args)
    assert "predicted latency" in text.stdout and arch.blocks()[1].key in text.stdout


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["profile", "--device", "foo", "--space", "autoformer-digits"], ["unknown device label 'foo'"]),
        (["profile", "--device", "cpu", "--space", "nope"], ["nope"]),
        (["profile", "--device", "cpu", "--space", "autoformer-digits", "--threads", "0"], ["--threads", "0"]),
        (["profile", "--device", "cpu", "--space", "autoformer-digits", "--precision", "fp16"], ["fp32 only"]),
        (
            ["validate-table", "--device", "cpu", "--space", "autoformer-digits", "--table", "missing.csv"],
            ["does not exist"],
        ),
    ],
)
def test_cli_bad_input_is_one_line(args, fragments, tmp_path):
    assert_one_line_error(hwnas(*args, cwd=tmp_path), *fragments)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_cli_gpu_label_here_is_refused(tmp_path):
    assert_one_line_error(
        hwnas("profile", "--device", "a100", "--space", "autoformer-digits", "--backend", "torch", cwd=tmp_path),
        "no CUDA GPU",
    )


def test_cli_missing_table(tmp_path):
    arch_file = tmp_path / "a.json"
    get_space("autoformer-digits").smallest().to_json(arch_file)
    env = {**os.environ, "HWNAS_TABLES": str(tmp_path / "none")}
    result = hwnas("predict", "--arch", str(arch_file), "--device", "jetson-orin", cwd=tmp_path, env=env)
    assert_one_line_error(result, "no latency table for device 'jetson-orin'", "hwnas profile --device jetson-orin")


# ---- shipped tables and packaging ------------------------------------------------------------------
@pytest.mark.parametrize("space_name", ["autoformer-tiny", "autoformer-digits"])
def test_shipped_cpu_table_covers_its_spaces(space_name):
    table = LatencyTable.load(ROOT / "latency_tables" / "cpu_onnxruntime_fp32_bs1_t1.csv")
    space = get_space(space_name)
    predictor = LatencyPredictor(table, space)
    assert table.fingerprint["cpu_model"] and table.fingerprint["threads"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small, large = predictor.predict_many([space.smallest(), space.largest()])
    assert 0 < small < large


def test_every_package_is_installed():
    """pyproject lists packages explicitly (profilers/ and latency_tables/ map into hwnas); none may be left out."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "hwnas").rglob("__init__.py")}
    assert found | {"hwnas.profilers", "hwnas.latency_tables"} == listed


def test_bad_threads_in_protocol():
    from hwnas.profilers.ort_profile import session_settings
    from hwnas.profilers.protocol import ProfilerError

    with pytest.raises(ProfilerError, match="at least 1"):
        session_settings(0)
    with pytest.raises(HwnasError, match="`batch_size` must be at least 1"):
        replace(SETTINGS, batch_size=0).resolve()
