"""`hwnas export`: a subnet as deployable artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from hwnas.cli.app import cli, drift_option, reports
from hwnas.reports import ExportReport


def _export_text(report: ExportReport, out: Path) -> None:
    gate = report.gate
    acc, lat = report.accuracy_top1, report.latency
    click.echo(
        f"arch {report.digest}: {json.dumps(report.arch)}\ntop-1: search-val {acc['search_val']:.2f}%, test {acc['test']:.2f}%; "
        f"{report.params:,} params, {report.macs / 1e6:.2f} MMACs"
    )
    if lat["predicted"]:
        click.echo(f"latency on {lat['predicted']['device']}: predicted {lat['predicted']['latency_ms']:.4g} ms")
    if lat["measured"]:
        m = lat["measured"]
        versus = f" ({m['vs_predicted_pct']:+.1f}% vs predicted)" if m["comparable"] else f" ({m['note']})"
        click.echo(
            f"measured here: {m['file'] or 'the PyTorch model'} {m['latency_ms']:.4g} ms with "
            f"{m['setup']['backend']} {m['setup']['backend_version']}{versus}"
        )
    elif lat["not_measured"]:
        click.echo(f"not timed here: {lat['not_measured']}")
    for fmt, check in report.checks.items():
        click.echo(f"  {fmt:<12} max |diff| vs PyTorch {check['max_abs_diff']:.1e}")
    for fmt, why in report.skipped.items():
        click.echo(f"  {fmt:<12} skipped: {why}")
    click.echo("\n".join(f"{name:<18} {out / name}" for name in [*report.artifacts, "manifest.json"]))
    if gate:
        click.echo(
            f"latency gate: {'passed' if gate['passed'] else 'FAILED'}: {gate['reason']}", err=not gate["passed"]
        )


@cli.command(name="export")
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run folder written by `hwnas train` (the supernet the arch inherits from).",
)
@click.option(
    "--arch",
    "arch_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="A search's best.json, or an arch JSON.",
)
@click.option(
    "--formats",
    default="onnx,pt2,safetensors",
    show_default=True,
    help="Comma-separated: onnx, pt2 (torch.export), safetensors (+ config.json), tensorrt (GPU).",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for the artifacts."
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16"]),
    default="fp32",
    show_default=True,
    help="Precision of the ONNX, .pt2 and engine (safetensors keep fp32).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True, help="Static batch size.")
@click.option(
    "--opset", type=click.IntRange(min=18), default=20, show_default=True, help="ONNX opset (dynamo exporter)."
)
@click.option(
    "--device", default=None, help="Device label whose table predicts latency (default: cpu, if it covers the space)."
)
@click.option(
    "--table", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Table CSV instead of --device."
)
@click.option("--no-measure", is_flag=True, help="Skip timing the written model here with the table's backend.")
@click.option(
    "--max-latency-error",
    type=click.FloatRange(min=0),
    default=None,
    metavar="PCT",
    help="Exit 1 (artifacts kept, the reason in the manifest) when the measured latency is more than PCT% "
    "above the prediction.",
)
@drift_option
@reports(
    _export_text,
    "Print the manifest as one JSON object instead of text.",
    exit_code=lambda report: 0 if report.passed else 1,
)
def export_cmd(
    run_dir: Path,
    arch_file: Path,
    formats: str,
    out: Path,
    precision: str,
    batch_size: int,
    opset: int,
    device: str | None,
    table: Path | None,
    no_measure: bool,
    max_latency_error: float | None,
    drift: str,
    as_json: bool,
) -> tuple[ExportReport, dict[str, Any]]:
    """Export a subnet as deployable artifacts, each loaded back and checked against PyTorch.

    Writes into a staging folder and moves each file into --out only once all are checked, with a
    manifest.json (arch, accuracy, FLOPs, params, predicted and measured latency, versions, sha256)."""
    from hwnas.api import export

    report = export(
        run_dir,
        arch_file,
        out,
        formats=formats,
        precision=precision,
        batch_size=batch_size,
        opset=opset,
        device=device,
        table=table,
        measure=not no_measure,
        max_latency_error=max_latency_error,
        drift=drift,
        progress=not as_json,
    )
    return report, {"out": out}


# ---- outputs --------------------------------------------------------------------------------------
