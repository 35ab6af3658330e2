"""`hwnas search`: the most accurate subnet within a budget."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from hwnas.cli.app import cli, drift_option, latency_stat_option, reports

if TYPE_CHECKING:
    from hwnas.subnet_search.runner import SearchResult


def _search_text(result: SearchResult) -> None:
    from hwnas.subnet_search.constraints import is_latency, metric_device

    r = result.to_dict()
    preset = f", preset {r['preset']}" if r.get("preset", "default") != "default" else ""
    window = f", within {r['min_fraction']:g}-1 x the budget" if r.get("min_fraction") is not None else ""
    click.echo(
        f"best of {r['evaluations']} archs ({r['strategy']}{preset}{window}, seed {r['seed']}, {r['seconds']:.0f} s): "
        f"{result.best!r}"
    )
    click.echo(f"top-1: search-val {r['top1_search_val']:.2f}%, test {r['top1_test']:.2f}%")
    devices = list(r["predicted_latency_by_device"] or {})
    for metric, b in r["budget"].items():
        on = metric_device(metric) or (devices[0] if devices else None)
        value = r["predicted_latency_by_device"][on]["latency_ms"] if is_latency(metric) else r[metric]
        label = f"latency on {on} (ms)" if is_latency(metric) else metric
        click.echo(f"{label}: {value:.4g} (budget {b['limit']:g}; space spans {b['min']:.4g}-{b['max']:.4g})")
    for entry in r.get("per_budget", []):
        if entry["arch"] is None:
            click.echo(f"budget {entry['budget']}: {entry['note']}")
            continue
        limits = ", ".join(f"{k} <= {v['limit']:g}" for k, v in entry["budget"].items())
        click.echo(
            f"within {limits}: top-1 search-val {entry['top1_search_val']:.2f}%, test {entry['top1_test']:.2f}% "
            f"({entry['file']})"
        )
    for name, m in r.get("measured_by_device", {}).items():
        click.echo(f"measured here end to end with the {name} table's setup: {m['measured_latency_ms']:.4g} ms")
    for note in r["notes"]:
        click.echo(f"note: {note}")
    click.echo("\n".join(f"{name + ':':<18} {path}" for name, path in r["outputs"].items()))


# ---- export ---------------------------------------------------------------------------------------


@cli.command(name="search")
@click.option(
    "--run",
    "--run-dir",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run folder written by `hwnas train` (its supernet and search-val split). Under torchrun write "
    "--run-dir: torchrun takes --run as an abbreviation of its own --run-path.",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0, min_open=True),
    multiple=True,
    help="Latency budget (ms) on the --device in the same position, predicted from its table. Several "
    "devices: repeat both options in pairs, in order. With --strategy nsga2 and one device: repeat "
    "it for several budgets.",
)
@click.option(
    "--device",
    multiple=True,
    help="Device label whose latency table predicts latency (cpu, a100, ...); repeatable (the first is primary).",
)
@click.option(
    "--table",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    help="Table CSV instead of the one found for its device (under $HWNAS_TABLES, ./latency_tables or "
    "shipped); repeatable: each table goes to the device it was measured on.",
)
@click.option(
    "--flops-g",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="FLOPs budget in G multiply-accumulates (the ViT papers' FLOPs).",
)
@click.option(
    "--params-m", type=click.FloatRange(min=0, min_open=True), default=None, help="Parameter budget in millions."
)
@click.option(
    "--preset",
    default="default",
    show_default=True,
    metavar="NAME",
    help="Search settings: default (AutoFormer's evolution, 50 archs x 20 generations, for every family) or "
    "paper (the search as the family's release runs it; ViT-ResNAS: 500 initial archs, then 19 generations of "
    "75 mutations + 75 crossovers within 0.975-1 x the budget). The options below override single settings.",
)
@click.option(
    "--strategy",
    type=click.Choice(["evolution", "random", "hierarchical", "nsga2"]),
    default=None,
    metavar="NAME",
    help="evolution (AutoFormer; the default preset's), random (baseline, same evaluations), hierarchical "
    "(GLiT) or nsga2 (the whole accuracy-latency front in one run; with a single device a latency budget may repeat, "
    "one best-<budget>.json each; no budget at all is allowed).",
)
@click.option(
    "--population", type=click.IntRange(min=2), default=None, help="Archs per generation (default preset: 50)."
)
@click.option(
    "--generations",
    type=click.IntRange(min=1),
    default=None,
    help="Generations, the first included (default preset: 20).",
)
@click.option(
    "--initial",
    type=click.IntRange(min=1),
    default=None,
    help="Archs of the first generation (default: the population; ViT-ResNAS's paper preset: 500).",
)
@click.option(
    "--parents",
    type=click.IntRange(min=1),
    default=None,
    help="Top archs bred from (default preset: a fifth of the population, at least 2; AutoFormer's 10 of 50).",
)
@click.option(
    "--mutation-prob",
    type=click.FloatRange(0, 1),
    default=None,
    help="Chance each layer's values are redrawn in a mutation (default preset: 0.2).",
)
@click.option(
    "--resample-prob",
    type=click.FloatRange(0, 1),
    default=None,
    help="Chance the depth and the embed width are redrawn in a mutation (default preset: 0.4).",
)
@click.option(
    "--min-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    metavar="F",
    help="Evaluate only archs within F..1 x each budget (latency, FLOPs or params), as ViT-ResNAS (0.975) and "
    "AutoFormer (a parameter window) do; children below are redrawn, then grown into the window. Default: "
    "the preset's (none for the default preset).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed: the same seed gives the same search.")
@click.option(
    "--high-level-share",
    type=float,
    default=0.5,
    show_default=True,
    help="hierarchical: share of the generations that evolve the high-level genes (GLiT's G) first.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for best.json, history.csv, pareto.csv/.png (default "
    "RUN/search/<strategy>-<budgets>-<devices>-seed<S>, e.g. RUN/search/evolution-latency0.8-cpu-seed0).",
)
@click.option("--measure", is_flag=True, help="Also time the winner end to end with the table's backend and settings.")
@latency_stat_option
@drift_option
@reports(_search_text, "Print one JSON object (best.json) instead of text.")
def search_cmd(
    run_dir: Path,
    latency_ms: tuple[float, ...],
    device: tuple[str, ...],
    table: tuple[Path, ...],
    flops_g: float | None,
    params_m: float | None,
    preset: str,
    strategy: str | None,
    population: int | None,
    generations: int | None,
    initial: int | None,
    parents: int | None,
    mutation_prob: float | None,
    resample_prob: float | None,
    min_fraction: float | None,
    seed: int,
    high_level_share: float,
    out: Path | None,
    measure: bool,
    latency_stat: str,
    drift: str,
    as_json: bool,
) -> SearchResult | None:
    """Find the most accurate subnet of a trained supernet within a latency, FLOPs or params budget.

    Fitness is top-1 with inherited weights on the run's search-val split; the winner is scored once
    on the test split. State is saved every generation: rerunning the same command resumes. --preset
    picks the search settings; the options given override single ones."""
    from hwnas.api import search

    result = search(
        run_dir,
        latency_ms=list(latency_ms),
        device=list(device),
        table=list(table),
        flops_g=flops_g,
        params_m=params_m,
        strategy=strategy,
        population=population,
        generations=generations,
        parents=parents,
        mutation_prob=mutation_prob,
        resample_prob=resample_prob,
        seed=seed,
        high_level_share=high_level_share,
        preset=preset,
        initial=initial,
        min_fraction=min_fraction,
        out=out,
        measure=measure,
        latency_stat=latency_stat,
        drift=drift,
        progress=not as_json,
    )
    return result if result.summary.rank == 0 else None  # under torchrun, rank 0 reports for all
