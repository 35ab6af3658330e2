"""The `hwnas` command group and its entry point: commands listed by stage, options shared by
several commands, and user errors as one line on stderr (exit code 2)."""

from __future__ import annotations

import functools
import json
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import click

from hwnas.errors import HwnasError, HwnasNotice, HwnasWarning, cli_message
from hwnas.profilers.protocol import ProfilerError

EXIT_USAGE = 2
DRIFT_MODES = (
    "refit",
    "fail",
    "ignore",
)  # hwnas.latency.drift.DRIFT_MODES, spelled here so the CLI starts without torch
LATENCY_STATS = ("p50", "p90")  # hwnas.latency.table.STATISTICS, likewise
latency_stat_option = click.option(
    "--latency-stat",
    type=click.Choice(LATENCY_STATS),
    default="p50",
    show_default=True,
    help="Statistic of the timing distribution that latency means: p50 (the median) or p90 (the tail: a budget on "
    "it holds for 9 runs in 10). Each has its own rows and calibration in a table.",
)
drift_option = click.option(
    "--drift",
    type=click.Choice(DRIFT_MODES),
    default="refit",
    show_default=True,
    metavar="MODE",
    help="When this machine runs the table's setup with other versions or another CPU/GPU: refit (measure a few "
    "calibration subnets end to end and refit the calibration for this setup if the table is off), fail (refuse "
    "if it is off) or ignore (no check). A refit is stored beside the table and reused.",
)


def emit_json(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, indent=2))


F = TypeVar("F", bound=Callable[..., Any])


def reports(
    text: Callable[..., None],
    json_help: str = "Print one JSON object instead of text.",
    exit_code: Callable[[Any], int] | None = None,
) -> Callable[[F], F]:
    """Give a command `--json` and one way out: the command returns its report (an object with
    `to_dict()`, or a dict; None when it has nothing to say, as a torchrun rank other than 0), which
    `--json` prints as one JSON object and `text(report)` otherwise prints for people. A command
    whose text shows more than the report returns `(report, {name: value})`, and `text` gets those
    as keyword arguments. The command still gets `as_json` (no progress bars under `--json`).
    `exit_code(report)`, when given, is the status the command exits with after printing."""

    def decorate(command: F) -> F:
        @click.option("--json", "as_json", is_flag=True, help=json_help)
        @functools.wraps(command)
        def reporting(*args: Any, as_json: bool, **kwargs: Any) -> None:
            report = command(*args, as_json=as_json, **kwargs)
            if report is None:
                return
            report, shown = report if isinstance(report, tuple) else (report, {})
            if as_json:
                emit_json(report.to_dict() if hasattr(report, "to_dict") else report)
            else:
                text(report, **shown)
            status = exit_code(report) if exit_code is not None else 0
            if status:
                sys.exit(status)

        return reporting  # type: ignore[return-value]

    return decorate


# `hwnas --help` lists the commands by stage, in pipeline order, each with a summary that fits a line
STAGES = {
    "Whole pipeline": {"demo": "Run every stage on the embedded digits data (CPU)"},
    "Spaces": {
        "spaces": "List the shipped search spaces",
        "sample": "Print a random, the largest or the smallest arch",
        "arch": "Check an arch file; show its blocks, params, MACs",
    },
    "Training": {
        "train": "Train a weight-sharing supernet",
        "finetune": "Train a searched subnet alone",
        "eval": "Top-1 of an arch with its inherited weights",
    },
    "Latency": {
        "profile": "Measure a space's blocks into a latency table",
        "import-table": "Turn blocks measured on a target into a table",
        "tables": "List the latency tables and how each holds here",
        "predict": "Predict an arch's latency on one or more devices",
        "validate-table": "Check a table against measured subnets",
    },
    "Search": {"search": "Find the best subnet within a budget"},
    "Export": {"export": "Export a subnet: ONNX, .pt2, safetensors, TensorRT"},
    "Outputs": {"show": "Summarise a run, search, export or table folder"},
}


class StageGroup(click.Group):
    """A click group whose help lists the commands under their stage."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        staged = [name for names in STAGES.values() for name in names]
        return staged + sorted(set(self.commands) - set(staged))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        summaries = {name: text for names in STAGES.values() for name, text in names.items()}
        sections = {**{k: list(v) for k, v in STAGES.items()}, "Other": sorted(set(self.commands) - set(summaries))}
        width = max(map(len, self.commands))
        for section, names in sections.items():
            rows = [
                (n.ljust(width), summaries.get(n) or self.commands[n].get_short_help_str())
                for n in names
                if n in self.commands
            ]
            if rows:
                with formatter.section(section):
                    formatter.write_dl(rows)


@click.group(cls=StageGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="hwnas")
def cli(debug: bool) -> None:
    """Hardware-aware, latency-constrained NAS for Vision Transformers.

    Pipeline: spaces -> train (supernet) -> profile (latency table) -> search -> finetune -> export.
    `hwnas COMMAND --help` describes each command; shell completion:
    eval "$(_HWNAS_COMPLETE=bash_source hwnas)" (zsh_source, fish_source likewise).
    """


QUICK_HELP = "Few, short timing rounds: rough numbers in seconds (smoke tests, the demo). Not for shipped tables."


def _one_line_warnings(prog: str) -> None:
    """Print our own warnings as `hwnas: warning: ...` (others keep Python's format)."""
    default = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, HwnasNotice):
            click.echo(f"{prog}: {cli_message(message)}", err=True)
        elif issubclass(category, HwnasWarning):
            click.echo(f"{prog}: warning: {cli_message(message)}", err=True)
        else:
            default(message, category, *args, **kwargs)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line on stderr and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    prog = "hwnas"
    _one_line_warnings(prog)
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
    except (HwnasError, ProfilerError) as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"{prog}: error: {cli_message(exc)}", err=True)
        sys.exit(EXIT_USAGE)
    except (click.Abort, KeyboardInterrupt):
        click.echo(f"{prog}: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug, not bad input: say so in one line unless debugging
        if debug:
            raise
        click.echo(
            f"{prog}: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True
        )
        sys.exit(1)
