"""`hwnas profile`, `import-table`, `tables`, `predict` and `validate-table`: latency tables."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import click

from hwnas.cli.app import QUICK_HELP, cli, drift_option, latency_stat_option, reports
from hwnas.profilers.protocol import Protocol
from hwnas.reports import PredictReport
from hwnas.spaces import Arch, get_space


def _profile_text(report: Any) -> None:
    """A profile's summary, or (a dict) a refit's or a recalibration's."""
    if isinstance(report, dict):
        (_refit_text if "rows_refitted" in report else _recalibrate_text)(report)
        return
    if report.bundle is not None:
        click.echo(
            f"wrote bundle {report.bundle}; on the target run\n  {report.next[0]}\nthen here\n  {report.next[1]}"
        )
        return
    if report.up_to_date:
        click.echo(f"{report.table} already has every block of {report.space} and its calibration; nothing to measure")
        return
    cal = report.calibration or {}
    click.echo(
        f"measured {report.blocks_measured} of {report.blocks_in_space} blocks and "
        f"{report.calibration_subnets} calibration subnets of {report.space} in {report.seconds:.0f} s"
    )
    if report.blocks_fitted is not None:
        errors = ", ".join(
            f"{kind} {'n/a' if e is None else f'{e:.1f}%'}" for kind, e in sorted((report.fit_error_pct or {}).items())
        )
        basis = (
            f"per-kind factors on {report.from_table}" if report.from_table else "per-kind fits on the blocks' costs"
        )
        click.echo(f"fitted {report.blocks_fitted} blocks from {basis} (cross-validated error: {errors})")
    click.echo(f"calibration: measured = {cal['a']:.4f} x sum + {cal['b']:.4f} ms (n={cal['n']})")
    click.echo(f"table: {report.table}")


def _refit_text(report: dict[str, Any]) -> None:
    if report["up_to_date"]:
        click.echo(f"{report['table']} has no fitted row of {report['space']}: every row is measured, nothing to refit")
        return
    change, before, after = report["row_change_pct"], report["calibration_before"], report["calibration"]
    errors = ", ".join(
        f"{kind} {_pct(report['fit_error_pct_before'].get(kind))} -> {_pct(e)}"
        for kind, e in sorted(report["fit_error_pct"].items())
    )
    click.echo(
        f"refitted {report['rows_refitted']} fitted rows of {report['space']} in {report['table']} (nothing measured): "
        f"they moved {change['median_abs']:.1f}% (median), at most {change['max_abs']:.1f}%"
    )
    if report["rows_kept"]:
        click.echo(f"kept {report['rows_kept']} fitted rows as they were: other spaces' calibrations sum them")
    click.echo(f"cross-validated fit error per kind: {errors}")
    click.echo(
        f"calibration refitted on its {after['n']} subnets as measured then: measured = {before['a']:.4f} x sum + "
        f"{before['b']:.4f} ms -> {after['a']:.4f} x sum + {after['b']:.4f} ms ({', '.join(report['calibrated_statistics'])})"
    )


def _pct(error: float | None) -> str:
    return "n/a" if error is None else f"{error:.1f}%"


def _recalibrate_text(report: dict[str, Any]) -> None:
    subnets, after = report["calibration_subnets"], report["calibration_after"]
    low, high = report["rows_ratio_range"]
    differs = "; ".join(report["setup_differences"]) or "none"
    click.echo(
        f"recalibrated {report['table']} for {report['space']} on this machine in {report['seconds']:.0f} s "
        f"(setup differences: {differs})"
    )
    click.echo(
        f"calibration subnets: {len(subnets['measured_ms'])} measured at {subnets['ratio']:.3f}x the table's "
        f"predictions (median); refit: measured = {after['a']:.4f} x sum + {after['b']:.4f} ms, within "
        f"{subnets['residual_after_refit_pct']:.1f}% of them"
    )
    click.echo(
        f"rows: {len(report['rows'])} sampled rows measured at {report['rows_ratio_median']:.3f}x the table's "
        f"(range {low:.3f}-{high:.3f}x)"
    )
    click.echo(
        f"stored: {report['stored']} (used on this setup by predict, search, export and demo)"
        if report["stored"]
        else "not stored: see the warning above"
    )
    if report["reprofile"]:
        click.echo(
            f"the rows drifted unevenly: no calibration can make this table hold here; re-profile with "
            f"`{report['reprofile']}`"
        )


def _tables_text(report: dict[str, Any]) -> None:
    found = report["tables"]
    if not found:
        click.echo(f"no latency tables in {', '.join(report['dirs'])}; build one with `hwnas profile`")
    for t in found:
        click.echo(f"{t['path']} ({t['source']})")
        if t["here"] == "unreadable":
            click.echo(f"  unreadable: {t['error']}\n")
            continue
        click.echo(f"  setup:  {t['setup']}; measured {str(t['created'])[:10]}")
        fitted = f", {t['fitted_rows']} of them fitted, not measured" if t["fitted_rows"] else ""
        click.echo(f"  spaces: {', '.join(t['spaces']) or 'none'} ({t['rows']} rows{fitted})")
        if t["here"] == "elsewhere":
            click.echo(f"  here:   not this machine ({t['why']}); its predictions are used as measured there")
        elif t["here"] == "matches":
            click.echo("  here:   matches this machine's setup")
        else:
            click.echo(
                f"  here:   runs here, but the setup differs ({'; '.join(t['differences'])}); each space is "
                f"spot-checked on first use"
            )
        for space, local in t.get("local_calibrations", {}).items():
            click.echo(f"  local calibration of {space}: {local['outcome']}")
        click.echo("")


def _import_text(report: dict[str, Any]) -> None:
    click.echo(
        f"added {report['added']} rows to {report['table']} ({report['rows']} rows; calibrated spaces: "
        f"{', '.join(report['calibrated_spaces'])})"
    )


def _predict_text(report: PredictReport, arch: Arch, latency_stat: str) -> None:
    found = report.devices
    width = max(len(b["key"]) for b in found[0].blocks)
    click.echo(f"{arch!r}\n" + "\n".join(f"table {t.table}: {t.setup}" for t in found) + "\n")
    click.echo(f"{'block':<{width}} " + " ".join(f"{t.device + ' ms':>12}" for t in found))
    for i, block in enumerate(found[0].blocks):
        click.echo(f"{block['key']:<{width}} " + " ".join(f"{t.blocks[i]['latency_ms']:>12.4f}" for t in found))
    click.echo(f"{'sum of rows':<{width}} " + " ".join(f"{t.sum_ms:>12.4f}" for t in found))
    click.echo(
        f"{'predicted latency':<{width}} " + " ".join(f"{t.latency_ms:>12.4f}" for t in found) + f"   ({latency_stat})"
    )
    for t in found:
        cal, source = t.calibration, t.calibration_source
        whose = f"this setup's local calibration, {source['how']}" if source else "the table's calibration"
        click.echo(f"  {t.device}: = {cal['a']:.4f} x sum + {cal['b']:.4f} ({whose})")


def _validate_text(report: dict[str, Any], space_key: str, latency_stat: str, device: str, processes: int) -> None:
    click.echo(
        f"{report['n']} subnets of {space_key}, measured {report['measured_ms_range'][0]:.3f}-"
        f"{report['measured_ms_range'][1]:.3f} ms ({latency_stat}) on {device} ({report['backend']}) in "
        f"{processes} processes" + (" earlier, scored on the table as it is now" if report.get("rescored") else "")
    )
    click.echo(f"{'':<34} {'MAPE %':>7} {'within 5%':>10} {'within 10%':>11} {'Kendall tau':>12}")
    rows = [(f"calibrated, vs process {i + 1}", m) for i, m in enumerate(report["calibrated"])]
    rows += [(f"MACs only, vs process {i + 1}", m) for i, m in enumerate(report["macs_only"] or [])]
    rows += [(f"sum of rows, vs process {i + 1}", m) for i, m in enumerate(report["uncalibrated_sum"])]
    rows += [(f"recalibrated now, vs process {i + 1}", m) for i, m in enumerate(report["recalibrated_now"] or [])]
    rows += [
        (f"floor: process {j + 1} vs {i + 1}", m)
        for (i, j), m in zip(itertools.combinations(range(processes), 2), report["floor_process_vs_process"])
    ]
    for label, m in rows:
        click.echo(
            f"{label:<34} {m['mape_pct']:>7.2f} {m['within_5pct']:>9.0f}% {m['within_10pct']:>10.0f}% "
            f"{m['kendall_tau']:>12.3f}"
        )
    if report["calibration_remeasured"]:
        drift = ", ".join(f"{d:+.1f}%" for d in report["calibration_remeasured"]["drift_pct"])
        click.echo(
            f"this machine since profiling: the calibration subnets measure {drift} (median, per process); "
            f"`recalibrated now` refits the calibration on them"
        )
    if report["fitted_rows"]:
        click.echo(f"the table's prediction sums {report['fitted_rows']} fitted rows of {space_key} (not measured)")
    if report["macs_only"] is None:
        click.echo("MACs only: not fitted (the table's calibration subnets were not found by their sums of rows)")
    click.echo(f"results: {report['json']}\nplot:    {report['plot']}")


@cli.command()
@click.option(
    "--device", required=True, help="Label of the target: cpu, cpu-<name>, a100, h100, jetson-orin, gpu-<name>, ..."
)
@click.option("--space", "space_name", required=True, help="Search space name (see `hwnas spaces`) or YAML path.")
@click.option(
    "--backend",
    type=click.Choice(["onnxruntime", "torch", "tensorrt"]),
    default=None,
    metavar="NAME",
    help="onnxruntime, torch or tensorrt. Default: onnxruntime for CPU labels; tensorrt (else torch CUDA) "
    "for GPU labels.",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16"]),
    default="fp32",
    show_default=True,
    help="Precision the blocks run in (fp16 needs a GPU backend).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True, help="Images per call.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Intra-op threads of CPU backends (1 is the most stable on small hosts).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Table CSV to create or add to (default latency_tables/<device>_<backend>_<precision>_bs<N>[_t<T>].csv).",
)
@click.option(
    "--export-blocks",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Only write every block (and calibration subnet) as ONNX plus a manifest to this folder, "
    "for profilers/ort_profile.py or trt_profile.py on the target.",
)
@click.option(
    "--calibration-archs",
    type=click.IntRange(min=1),
    default=12,
    show_default=True,
    metavar="N",
    help="Subnets measured end to end to calibrate the sum of rows (smallest and largest included).",
)
@click.option("--cuda-graphs", is_flag=True, help="torch backend: time CUDA-graph replays instead of eager calls.")
@click.option(
    "--recalibrate",
    is_flag=True,
    help="Instead of profiling: re-measure the calibration subnets and a sample of rows of an existing "
    "table on this machine (with the table's own settings), refit its calibration for this setup "
    "(stored beside the table, never in it) and report the drift of both.",
)
@click.option(
    "--refit",
    is_flag=True,
    help="Instead of profiling: fit the space's fitted rows again on every row the table has measured (other "
    "spaces' included) and refit its calibration on the subnets it measured then; nothing is measured, the "
    "table is rewritten in place.",
)
@click.option(
    "--table",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --recalibrate or --refit: the table to work on (default: the one table for --device).",
)
@click.option(
    "--budget-min",
    type=float,
    default=None,
    metavar="M",
    help="Measure what fits in M minutes (the calibration subnets, then a sample of rows spread over each "
    "block kind's costs, more where the fit errs most) and fit the other rows per kind, each stored with "
    "its fit's cross-validated error. Default: measure every row.",
)
@click.option(
    "--from",
    "from_table",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="TABLE",
    help="A table of this space measured on another device: measure a few rows per kind here and fit "
    "per-kind factors from its rows (with --budget-min: as many rows as fit).",
)
@click.option("--quick", is_flag=True, help=QUICK_HELP)
@reports(_profile_text, "Print one JSON object instead of text.")
def profile(
    device: str,
    space_name: str,
    backend: str | None,
    precision: str,
    batch_size: int,
    threads: int,
    out: Path | None,
    export_blocks: Path | None,
    calibration_archs: int,
    cuda_graphs: bool,
    recalibrate: bool,
    refit: bool,
    table: Path | None,
    budget_min: float | None,
    from_table: Path | None,
    quick: bool,
    as_json: bool,
) -> Any:
    """Measure every block configuration of a space on this machine into a latency table.

    Rows are saved as they finish; rerunning after an interruption resumes, and blocks already in
    the table (from any space) are not measured again."""
    from hwnas.api import profile as profile_space

    space = get_space(space_name)
    sampled = budget_min is not None or from_table is not None
    if export_blocks is not None and sampled:
        raise click.UsageError("--export-blocks writes every block for a target; it excludes --budget-min and --from")
    if refit:
        if recalibrate or export_blocks is not None or budget_min is not None:
            raise click.UsageError(
                "--refit measures nothing: it excludes --recalibrate, --export-blocks and --budget-min"
            )
        return _refit(device, space, table, from_table)
    if recalibrate or table is not None:
        if not recalibrate or export_blocks is not None or sampled:
            raise click.UsageError(
                "--table goes with --recalibrate or --refit; --recalibrate excludes --export-blocks, --budget-min "
                "and --from"
            )
        return _recalibrate(device, space, table, Protocol.quick() if quick else None, as_json)
    report = profile_space(
        space,
        device,
        backend=backend,
        precision=precision,
        batch_size=batch_size,
        threads=threads,
        out=out,
        export_blocks=export_blocks,
        calibration_archs=calibration_archs,
        cuda_graphs=cuda_graphs,
        quick=quick,
        budget_min=budget_min,
        from_table=from_table,
        progress=not as_json,
    )
    return report


def _refit(device: str, space: Any, table: Path | None, from_table: Path | None) -> dict[str, Any]:
    from hwnas.latency.profile import refit_space
    from hwnas.latency.resolve import select_table
    from hwnas.latency.table import SHIPPED_DIR, LatencyTable

    found = select_table(device, table, space)
    if table is None and found.path is not None and found.path.resolve().parent == SHIPPED_DIR.resolve():
        raise click.UsageError(
            f"the table for --device {device} is the one installed with hwnas ({found.path}); to refit it in place "
            f"or a copy of it, name it with --table"
        )
    return refit_space(space, found, LatencyTable.load(from_table) if from_table is not None else None)


def _recalibrate(
    device: str, space: Any, table: Path | None, protocol: Protocol | None, as_json: bool
) -> dict[str, Any]:
    from hwnas.latency.drift import recalibrate
    from hwnas.latency.resolve import select_table

    return recalibrate(select_table(device, table, space), space, protocol=protocol, progress=not as_json)


@cli.command()
@reports(_tables_text, "Print one JSON object instead of text.")
def tables(as_json: bool) -> dict[str, Any]:
    """List the latency tables found ($HWNAS_TABLES, ./latency_tables, shipped) and how each stands here.

    matches: measured on this setup. differs: this machine runs its setup with other versions or
    another processor (checked on first use; local calibrations listed). elsewhere: another device."""
    from hwnas.latency.resolve import list_tables
    from hwnas.latency.table import table_dirs

    return {"dirs": [str(d) for d in table_dirs()], "tables": list_tables()}


@cli.command(name="import-table")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.option("--device", default=None, help="Label of the device that measured it (default: the one it recorded).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Table CSV to create or add to (default: latency_tables/<setup>.csv).",
)
@reports(_import_text, "Print one JSON object instead of text.")
def import_table(bundle: Path, device: str | None, out: Path | None, as_json: bool) -> dict[str, Any]:
    """Turn a bundle measured on a target by profilers/*.py into a latency table."""
    from hwnas.latency.profile import import_bundle

    table, added = import_bundle(bundle, device, out)
    return {"table": table.name, "added": added, "rows": len(table), "calibrated_spaces": list(table.calibrations)}


@cli.command()
@click.option(
    "--arch",
    "arch_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Arch JSON (from `hwnas sample` or a search).",
)
@click.option("--device", multiple=True, help="Device label whose table to use; repeat for several devices.")
@click.option(
    "--table",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    help="Table CSV (default: the one table for --device under $HWNAS_TABLES, ./latency_tables or the "
    "shipped ones); repeatable: each goes to the device it was measured on.",
)
@click.option("--space", "space_name", default=None, help="The arch's space YAML, for archs of a user space.")
@latency_stat_option
@drift_option
@reports(_predict_text, "Print one JSON object instead of a table.")
def predict(
    arch_file: Path,
    device: tuple[str, ...],
    table: tuple[Path, ...],
    space_name: str | None,
    latency_stat: str,
    drift: str,
    as_json: bool,
) -> tuple[PredictReport, dict[str, Any]]:
    """Predict an arch's latency on one device or several: the sum of its block rows, calibrated,
    with the breakdown (a column per device)."""
    from hwnas.api import predict as predict_arch

    if not device and not table:
        raise click.UsageError("name the latency table to predict with: --device LABEL (repeatable) or --table PATH")
    arch = Arch.from_json(arch_file, get_space(space_name) if space_name else None)
    report = predict_arch(arch, device, table=table, latency_stat=latency_stat, drift=drift, progress=not as_json)
    return report, {"arch": arch, "latency_stat": latency_stat}


@cli.command(name="validate-table")
@click.option("--device", required=True, help="Device label whose table to validate (on this machine).")
@click.option("--space", "space_name", required=True, help="Search space whose subnets to measure.")
@click.option(
    "--table",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Table CSV (default: found by --device).",
)
@click.option("--n", "n", type=click.IntRange(min=2), default=50, show_default=True, help="Random subnets to measure.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random subnets.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for validate.json/.csv/.png (default runs/validate/<device>_<space>).",
)
@click.option(
    "--processes",
    type=click.IntRange(min=2),
    default=2,
    show_default=True,
    help="Separate processes that each measure every subnet (the floor compares them).",
)
@click.option("--quick", is_flag=True, help=QUICK_HELP)
@click.option(
    "--rescore",
    is_flag=True,
    help="Measure nothing: score the subnets an earlier validation measured (in --out) against the table "
    "as it is now, e.g. after `hwnas profile --refit`.",
)
@latency_stat_option
@drift_option
@reports(_validate_text, "Print one JSON object instead of text.")
def validate_table(
    device: str,
    space_name: str,
    table: Path | None,
    n: int,
    seed: int,
    out: Path | None,
    processes: int,
    quick: bool,
    rescore: bool,
    latency_stat: str,
    drift: str,
    as_json: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measure N random subnets end to end and report how well the table predicts them.

    Each of --processes fresh processes measures every subnet; the prediction is compared with
    each one's measurement, and the processes with each other (the noise floor)."""
    from hwnas.latency.resolve import resolve_table, select_table
    from hwnas.latency.table import STATISTICS
    from hwnas.latency.validate import default_folder
    from hwnas.latency.validate import rescore as rescore_validation
    from hwnas.latency.validate import validate_table as run

    space = get_space(space_name)
    if rescore:
        found = select_table(device, table, space)
        report = rescore_validation(space, found, out or default_folder(found, space))
        stat = next(k for k, v in STATISTICS.items() if v == report["statistic"])
        return report, {
            "space_key": space.key,
            "latency_stat": stat,
            "device": device,
            "processes": report["processes"],
        }
    found = resolve_table(space, device=device, table=table, drift=drift, progress=not as_json)
    report = run(
        space,
        found,
        n,
        seed,
        out,
        Protocol.quick() if quick else None,
        processes,
        progress=not as_json,
        statistic=STATISTICS[latency_stat],
    )
    return report, {"space_key": space.key, "latency_stat": latency_stat, "device": device, "processes": processes}


# ---- search ---------------------------------------------------------------------------------------
