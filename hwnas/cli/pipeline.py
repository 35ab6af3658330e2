"""`hwnas demo` (every stage on the embedded digits) and `hwnas show` (any output folder, summarised)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from hwnas.cli.app import cli, drift_option, reports


def _demo_text(report: dict[str, Any]) -> None:
    low, high = report["space_latency_ms"]
    click.echo(f"\n{report['space']}: supernet {report['stages']['train']}; latency table {report['stages']['table']}")
    click.echo(f"budget: {report['budget_ms']} ms predicted on this CPU (subnets span {low:.3f}-{high:.3f} ms)\n")
    click.echo(
        f"{'subnet':<22} {'test top-1 (95% interval)':>26} {'search-val':>10} {'params':>9} {'MMACs':>7} "
        f"{'predicted ms':>12} {'measured ms':>11}"
    )
    for r in report["rows"]:
        measured = f"{r['measured_ms']:.3f}" if r["measured_ms"] else "-"
        low, high = r["test_top1_95ci"]
        click.echo(
            f"{r['name']:<22} {r['test_top1']:>8.2f}% ({low:5.1f}-{high:5.1f}%) {r['search_val_top1']:>9.2f}% "
            f"{r['params']:>9,} {r['macs'] / 1e6:>7.2f} {r['predicted_ms']:>12.3f} {measured:>11}"
        )
    click.echo(f"{report['comparison']} ({report['test_images']} test images)")
    for r in report["rows"][1:]:
        click.echo(f"{r['name']}: {json.dumps(r['arch'])}")
    for note in report["notes"]:
        click.echo(f"note: {note}")
    click.echo("")
    for name, path in {
        **report["artifacts"],
        **report["plots"],
        "best arch": report["search"],
        "summary": report["results"],
    }.items():
        click.echo(f"{name + ':':<20} {path}")
    click.echo(f"demo took {report['seconds']:.0f} s")


@cli.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo_out"),
    show_default=True,
    help="Folder for the demo's run, search, export and summary.",
)
@click.option(
    "--space",
    "space_name",
    default="autoformer-digits",
    show_default=True,
    help="A digits space (10 classes): autoformer-digits, vitas-digits, resnas-digits, glit-digits or a YAML path.",
)
@click.option(
    "--budget-ms",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Predicted CPU latency budget (default: 40% of the way from the fastest to the slowest subnet).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Supernet epochs (default: the family's digits budget: 40; GLiT 160).",
)
@click.option("--population", type=click.IntRange(min=2), default=50, show_default=True, help="Search population.")
@click.option("--generations", type=click.IntRange(min=1), default=20, show_default=True, help="Search generations.")
@drift_option
@reports(_demo_text, "Print one JSON object instead of a table.")
def demo(
    out: Path,
    space_name: str,
    budget_ms: float | None,
    epochs: int | None,
    population: int,
    generations: int,
    drift: str,
    as_json: bool,
) -> dict[str, Any]:
    """The whole pipeline on the embedded digits data on CPU: train, table, search, fine-tune, export.

    A rerun reuses every finished stage (training resumes, the search continues, the export is kept)."""
    from hwnas.demo import run_demo

    report = run_demo(
        out, budget_ms, epochs, population, generations, drift=drift, progress=not as_json, space_name=space_name
    )
    return report


# ---- training -------------------------------------------------------------------------------------


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@reports(lambda summary: click.echo("\n".join(summary.lines())))
def show(path: Path, as_json: bool) -> Any:
    """Summarise an output: a run, fine-tuning, search, export, validation or latency table."""
    from hwnas.show import summarise

    return summarise(path)
