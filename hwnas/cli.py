"""The `hwnas` command line.

Conventions for every command: `--help` describes every option; a command that reports figures
accepts `--json` and then prints exactly one JSON object on stdout; bad input or usage prints one
line on stderr and exits with code 2 (`hwnas --debug ...` shows the traceback instead).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from hwnas.errors import HwnasError
from hwnas.spaces import Arch, get_space, list_spaces

EXIT_USAGE = 2


def emit_json(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, indent=2))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="hwnas")
def cli(debug: bool) -> None:
    """Hardware-aware, latency-constrained NAS for Vision Transformers.

    Pipeline: spaces -> supernet -> train -> profile (latency table) -> search -> export.
    """


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def spaces(as_json: bool) -> None:
    """List the shipped search spaces with their sizes and cost ranges."""
    rows = [get_space(name).describe() for name in list_spaces()]
    if as_json:
        emit_json({"spaces": rows})
        return
    header = f"{'space':<20} {'family':<11} {'input':<13} {'archs':>9} {'blocks':>6} {'params (M)':>14} {'GMACs':>14}"
    click.echo(header)
    click.echo("-" * len(header))
    for r in rows:
        shape = f"{r['in_chans']}x{r['img_size']}/p{r['patch_size']}"
        params = "{:.2f}-{:.2f}".format(*r["params_m"])
        gmacs = "{:.3f}-{:.3f}".format(*r["gmacs"])
        click.echo(f"{r['name']:<20} {r['family']:<11} {shape:<13} {r['num_archs']:>9.2e} {r['num_block_configs']:>6} {params:>14} {gmacs:>14}")
    click.echo("")
    for r in rows:
        choices = "; ".join(f"{k} {v}" for k, v in r["choices"].items())
        click.echo(f"{r['name']}: {r['description']}. Choices: {choices}")
    click.echo("\narchs: distinct architectures; blocks: distinct block configurations (latency-table rows).")


@cli.command()
@click.option("--space", "space_name", required=True, help="Search space name (see `hwnas spaces`) or YAML path.")
@click.option("--seed", type=int, default=None, help="Seed of the random draw (default: a random one).")
@click.option("--largest", is_flag=True, help="Give the largest arch instead of a random one.")
@click.option("--smallest", is_flag=True, help="Give the smallest arch instead of a random one.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the arch JSON to this file as well as printing it.")
def sample(space_name: str, seed: int | None, largest: bool, smallest: bool, out: Path | None) -> None:
    """Print an arch of a space as JSON (random, largest or smallest)."""
    if largest and smallest:
        raise click.UsageError("--largest and --smallest exclude each other; give one")
    space = get_space(space_name)
    arch = space.largest() if largest else space.smallest() if smallest else space.sample(seed)
    text = arch.to_json(out)
    click.echo(text, nl=False)


@cli.command(name="arch")
@click.argument("arch_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def arch_cmd(arch_file: Path, as_json: bool) -> None:
    """Validate an arch JSON file and show its blocks, parameters and FLOPs (analytic)."""
    arch = Arch.from_json(arch_file)
    blocks = arch.blocks()
    summary = {
        "arch": arch.to_dict(),
        "digest": arch.digest,
        "params": arch.params(),
        "macs": arch.macs(),
        "blocks": [{"key": b.key, "params": b.params(), "macs": b.macs()} for b in blocks],
    }
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{arch!r}\ndigest {arch.digest}\n")
    width = max(len(b.key) for b in blocks)
    click.echo(f"{'block':<{width}} {'params':>10} {'MMACs':>10}")
    for b in blocks:
        click.echo(f"{b.key:<{width}} {b.params():>10,} {b.macs() / 1e6:>10.2f}")
    click.echo(f"{'total':<{width}} {arch.params():>10,} {arch.macs() / 1e6:>10.2f}")


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_out"),
              show_default=True, help="Folder for the demo's results.")
@click.option("--space", "space_name", default="autoformer-digits", show_default=True, help="Search space to demonstrate.")
@click.option("--num-archs", type=click.IntRange(min=1), default=8, show_default=True,
              help="Random archs to extract and check (plus the smallest and largest).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def demo(out: Path, space_name: str, num_archs: int, as_json: bool) -> None:
    """Run what the pipeline has so far: build a supernet, extract subnets, check them."""
    from hwnas.demo import run_demo

    report = run_demo(get_space(space_name), out, num_archs, progress=not as_json)
    if as_json:
        emit_json(report)
        return
    click.echo(f"{'arch':<18} {'params':>9} {'MMACs':>8} {'fvcore MMACs':>13} {'max |diff|':>11}")
    for row in report["archs"]:
        click.echo(f"{row['name']:<18} {row['params']:>9,} {row['macs'] / 1e6:>8.2f} {row['fvcore_macs'] / 1e6:>13.2f} {row['max_abs_diff']:>11.2e}")
    click.echo(f"\nall {len(report['archs'])} extracted subnets match the supernet: {report['all_match']}")
    click.echo(f"results: {report['results']}\nplot:    {report['plot']}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line on stderr and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    prog = "hwnas"
    try:
        cli.main(args=args, prog_name=prog, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        sys.exit(0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        if debug:
            traceback.print_exc()
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx else prog
        click.echo(f"{where}: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(EXIT_USAGE)
    except HwnasError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"{prog}: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except (click.Abort, KeyboardInterrupt):
        click.echo(f"{prog}: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug, not bad input: say so in one line unless debugging
        if debug:
            raise
        click.echo(f"{prog}: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True)
        sys.exit(1)
