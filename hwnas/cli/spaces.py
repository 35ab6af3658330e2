"""`hwnas spaces`, `sample` and `arch`: the search spaces and their archs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from hwnas.cli.app import cli, reports
from hwnas.spaces import Arch, get_space, list_spaces


def _spaces_text(report: dict[str, Any]) -> None:
    rows = report["spaces"]
    header = f"{'space':<20} {'family':<11} {'input':<13} {'archs':>9} {'blocks':>6} {'params (M)':>14} {'GMACs':>14}"
    click.echo(header)
    click.echo("-" * len(header))
    for r in rows:
        shape = f"{r['in_chans']}x{r['img_size']}/p{r['patch_size']}"
        params = "{:.2f}-{:.2f}".format(*r["params_m"])
        gmacs = "{:.3f}-{:.3f}".format(*r["gmacs"])
        click.echo(
            f"{r['name']:<20} {r['family']:<11} {shape:<13} {r['num_archs']:>9.2e} {r['num_block_configs']:>6} {params:>14} {gmacs:>14}"
        )
    click.echo("")
    for r in rows:
        choices = "; ".join(f"{k} {v}" for k, v in r["choices"].items())
        click.echo(f"{r['name']}: {r['description']}. Choices: {choices}")
    click.echo("\narchs: distinct architectures; blocks: distinct block configurations (latency-table rows).")


@cli.command()
@reports(_spaces_text, "Print one JSON object instead of a table.")
def spaces(as_json: bool) -> dict[str, Any]:
    """List the shipped search spaces with their sizes and cost ranges."""
    return {"spaces": [get_space(name).describe() for name in list_spaces()]}


@cli.command()
@click.option("--space", "space_name", required=True, help="Search space name (see `hwnas spaces`) or YAML path.")
@click.option("--seed", type=int, default=None, help="Seed of the random draw (default: a random one).")
@click.option("--largest", is_flag=True, help="Give the largest arch instead of a random one.")
@click.option("--smallest", is_flag=True, help="Give the smallest arch instead of a random one.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the arch JSON to this file as well as printing it.",
)
def sample(space_name: str, seed: int | None, largest: bool, smallest: bool, out: Path | None) -> None:
    """Print an arch of a space as JSON (random, largest or smallest)."""
    if largest and smallest:
        raise click.UsageError("--largest and --smallest exclude each other; give one")
    space = get_space(space_name)
    arch = space.largest() if largest else space.smallest() if smallest else space.sample(seed)
    text = arch.to_json(out)
    click.echo(text, nl=False)


@dataclass(frozen=True)
class ArchSummary:
    """An arch file checked: the arch, its digest, counts and blocks."""

    arch: Arch

    def to_dict(self) -> dict[str, Any]:
        a = self.arch
        return {
            "arch": a.to_dict(),
            "digest": a.digest,
            "params": a.params(),
            "macs": a.macs(),
            "blocks": [{"key": b.key, "params": b.params(), "macs": b.macs()} for b in a.blocks()],
        }


def _arch_text(summary: ArchSummary) -> None:
    arch, blocks = summary.arch, summary.arch.blocks()
    click.echo(f"{arch!r}\ndigest {arch.digest}\n")
    width = max(len(b.key) for b in blocks)
    click.echo(f"{'block':<{width}} {'params':>10} {'MMACs':>10}")
    for b in blocks:
        click.echo(f"{b.key:<{width}} {b.params():>10,} {b.macs() / 1e6:>10.2f}")
    click.echo(f"{'total':<{width}} {arch.params():>10,} {arch.macs() / 1e6:>10.2f}")


@cli.command(name="arch")
@click.argument("arch_file", type=click.Path(dir_okay=False, path_type=Path))
@reports(_arch_text, "Print one JSON object instead of a table.")
def arch_cmd(arch_file: Path, as_json: bool) -> ArchSummary:
    """Validate an arch JSON file and show its blocks, parameters and FLOPs (analytic)."""
    return ArchSummary(Arch.from_json(arch_file))
