"""The `hwnas` command line.

Conventions for every command: `--help` describes every option; a command that reports figures
accepts `--json` and then prints exactly one JSON object on stdout; bad input or usage prints one
line on stderr and exits with code 2 (`hwnas --debug ...` shows the traceback instead).
"""

from __future__ import annotations

import itertools
import json
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import click

from hwnas.errors import HwnasError, HwnasNotice, HwnasWarning
from hwnas.profilers.protocol import ProfilerError, Protocol
from hwnas.spaces import Arch, get_space, list_spaces
from hwnas.training.sampling import SAMPLINGS

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
        click.echo(
            f"{r['name']:<20} {r['family']:<11} {shape:<13} {r['num_archs']:>9.2e} {r['num_block_configs']:>6} {params:>14} {gmacs:>14}"
        )
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def demo(
    out: Path,
    space_name: str,
    budget_ms: float | None,
    epochs: int | None,
    population: int,
    generations: int,
    drift: str,
    as_json: bool,
) -> None:
    """The whole pipeline on the embedded digits data on CPU: train, table, search, fine-tune, export.

    A rerun reuses every finished stage (training resumes, the search continues, the export is kept)."""
    from hwnas.demo import run_demo

    report = run_demo(
        out, budget_ms, epochs, population, generations, drift=drift, progress=not as_json, space_name=space_name
    )
    if as_json:
        emit_json(report)
        return
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


# ---- training -------------------------------------------------------------------------------------
@cli.command(name="train")
@click.option("--space", "space_name", required=True, help="Search space name (see `hwnas spaces`) or YAML path.")
@click.option(
    "--data",
    default="digits",
    show_default=True,
    help="digits (embedded, real), synthetic (tests) or an ImageFolder path with train/ and val/.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs (default: the space's budget).")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help="Batch size (default: the space's budget)."
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Peak AdamW learning rate (default: the space's budget).",
)
@click.option(
    "--sampling",
    type=click.Choice(list(SAMPLINGS)),
    default=None,
    metavar="NAME",
    help="; ".join(f"{s.name}: {s.summary}" for s in SAMPLINGS.values()) + ". Default: the space's.",
)
@click.option(
    "--archs-per-batch",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    metavar="M",
    help="With --sampling multi: subnets per batch, each on an equal share of it (M must divide the batch size).",
)
@click.option(
    "--alike-share",
    type=float,
    default=None,
    metavar="P",
    help="Share of drawn subnets whose per-block high-level genes are alike in every block (GLiT: one G "
    "throughout, so all-global and all-local chains get trained). Default: the family's (GLiT 0.75, "
    "others 0).",
)
@click.option(
    "--weight-sharing",
    type=click.Choice(["prefix", "cyclic"]),
    default="prefix",
    show_default=True,
    metavar="NAME",
    help="Token-embedding channels of smaller widths: prefix (AutoFormer) or cyclic windows (ViTAS).",
)
@click.option(
    "--aug",
    type=click.Choice(["weak", "deit", "none"]),
    default="weak",
    show_default=True,
    metavar="NAME",
    help="weak: ViTAS's stable-supernet recipe (label smoothing, no mixing); deit: RandAugment + Mixup/CutMix "
    "+ random erasing (DeiT, AutoFormer); none: no augmentation, no label smoothing.",
)
@click.option(
    "--hflip",
    type=float,
    default=None,
    metavar="P",
    help="Probability of a horizontal flip (default: 0.5 on folders, 0 on digits); 0 where a flip changes the class.",
)
@click.option(
    "--img-size",
    type=int,
    default=None,
    metavar="PX",
    help="Image side the space runs at (default: the space's); stored with the run for every later command.",
)
@click.option(
    "--search-val",
    default=None,
    metavar="SIZE",
    help="Images of train/ held out for the search: auto (15%, at most 10,000), a share (15%), a total "
    "(10000) or a count per class (25/class). Default: auto. Recorded in split.json.",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    metavar="N",
    help="DataLoader processes for folder data (default: the cores here, at most 8). Changes no result.",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where its last checkpoint left it.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, init, order and archs.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def train_cmd(
    space_name: str,
    data: str,
    out: Path,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    sampling: str | None,
    archs_per_batch: int,
    alike_share: float | None,
    weight_sharing: str,
    aug: str,
    hflip: float | None,
    img_size: int | None,
    search_val: str | None,
    workers: int | None,
    resume: bool,
    seed: int,
    as_json: bool,
) -> None:
    """Train a weight-sharing supernet (checkpoint every epoch; --resume continues exactly).

    With an ImageFolder --data, the class count is the folder's, and the folder is listed once
    (file names only) into the run; images that fail to decode are skipped and counted per epoch."""
    from hwnas.api import train

    report = train(
        space_name,
        out,
        data=data,
        img_size=img_size,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        sampling=sampling,
        archs_per_batch=archs_per_batch,
        alike_share=alike_share,
        weight_sharing=weight_sharing,
        aug=aug,
        hflip=hflip,
        search_val=search_val,
        seed=seed,
        workers=workers,
        resume=resume,
        progress=not as_json,
    )
    if report.rank != 0:  # under torchrun, rank 0 reports for all
        return
    if as_json:
        emit_json(report.to_dict())
        return
    click.echo(
        f"trained {report.space} for {report.epochs_run} epochs; search-val top-1: "
        + ", ".join(f"{k} {v:.1f}%" for k, v in report.search_val_top1.items())
    )
    click.echo(f"run:     {report.run}\nmetrics: {report.metrics}\nplot:    {report.plot}")


@cli.command(name="finetune")
@click.option(
    "--run",
    "--run-dir",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run folder written by `hwnas train` (the supernet the subnet inherits from).",
)
@click.option(
    "--arch",
    "arch_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Arch JSON or a search's best.json.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Fine-tuning folder.")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Epochs (default: a quarter of the supernet's; --from-scratch: all of them).",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Peak learning rate (default: a quarter of the supernet's; --from-scratch: the supernet's).",
)
@click.option("--distill", is_flag=True, help="Also distil from the supernet's largest subnet.")
@click.option("--from-scratch", is_flag=True, help="Train the subnet alone from a fresh initialisation instead.")
@click.option("--resume", is_flag=True, help="Continue the fine-tuning in --out where its last checkpoint left it.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the order, augmentation and init.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def finetune_cmd(
    run_dir: Path,
    arch_file: Path,
    out: Path,
    epochs: int | None,
    lr: float | None,
    distill: bool,
    from_scratch: bool,
    resume: bool,
    seed: int,
    as_json: bool,
) -> None:
    """Train a searched subnet alone from its inherited weights (ViTAS, ViT-ResNAS and GLiT retrain
    theirs); `hwnas export --run OUT` then exports the fine-tuned weights."""
    from hwnas.api import finetune

    report = finetune(
        run_dir,
        arch_file,
        out,
        epochs=epochs,
        lr=lr,
        distill=distill,
        from_scratch=from_scratch,
        resume=resume,
        seed=seed,
        progress=not as_json,
    )
    if report.rank != 0:  # under torchrun, rank 0 reports for all
        return
    if as_json:
        emit_json(report.to_dict())
        return
    assert report.before is not None and report.after is not None and report.config is not None  # rank 0
    for part in ("search_val", "test"):
        click.echo(
            f"{part.replace('_', '-')} top-1: {report.before[part]['top1']:.2f}% before, "
            f"{report.after[part]['top1']:.2f}% after {report.config['epochs']} epochs"
        )
    click.echo(f"folder:  {report.out}\nmetrics: {report.metrics}\nplot:    {report.plot}")


@cli.command(name="eval")
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run folder written by `hwnas train`.",
)
@click.option("--arch", "arch_file", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Arch JSON.")
@click.option(
    "--split",
    "part",
    type=click.Choice(["search-val", "test"]),
    default="search-val",
    show_default=True,
    help="Which held-out part to score on (search uses search-val; report test once, at the end).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def eval_cmd(run_dir: Path, arch_file: Path, part: str, as_json: bool) -> None:
    """Top-1 of an arch with the weights it inherits from a trained supernet."""
    from hwnas.training import TrainedRun

    run = TrainedRun(run_dir)
    arch = Arch.from_json(arch_file, run.space)
    accuracy = run.top1(arch, part.replace("-", "_"))
    if as_json:
        emit_json({"run": str(run_dir), "arch": arch.to_dict(), "split": part, "top1": accuracy})
        return
    click.echo(f"{arch!r}\n{part} top-1: {accuracy:.2f}%")


# ---- latency tables -----------------------------------------------------------------------------
QUICK_HELP = "Few, short timing rounds: rough numbers in seconds (smoke tests, the demo). Not for shipped tables."


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
    "--table",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --recalibrate: the table to recalibrate (default: the one table for --device).",
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
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
    table: Path | None,
    budget_min: float | None,
    from_table: Path | None,
    quick: bool,
    as_json: bool,
) -> None:
    """Measure every block configuration of a space on this machine into a latency table.

    Rows are saved as they finish; rerunning after an interruption resumes, and blocks already in
    the table (from any space) are not measured again."""
    from hwnas.api import profile as profile_space

    space = get_space(space_name)
    sampled = budget_min is not None or from_table is not None
    if export_blocks is not None and sampled:
        raise click.UsageError("--export-blocks writes every block for a target; it excludes --budget-min and --from")
    if recalibrate or table is not None:
        if not recalibrate or export_blocks is not None or sampled:
            raise click.UsageError(
                "--table goes with --recalibrate, which excludes --export-blocks, --budget-min and --from"
            )
        _recalibrate(device, space, table, Protocol.quick() if quick else None, as_json)
        return
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
    if as_json:
        emit_json(report.to_dict())
        return
    if report.bundle is not None:
        click.echo(
            f"wrote bundle {report.bundle}; on the target run\n  {report.next[0]}\nthen here\n  {report.next[1]}"
        )
        return
    if report.up_to_date:
        click.echo(f"{report.table} already has every block of {space.key} and its calibration; nothing to measure")
        return
    cal = report.calibration or {}
    click.echo(
        f"measured {report.blocks_measured} of {report.blocks_in_space} blocks and "
        f"{report.calibration_subnets} calibration subnets of {space.key} in {report.seconds:.0f} s"
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


def _recalibrate(device: str, space: Any, table: Path | None, protocol: Protocol | None, as_json: bool) -> None:
    from hwnas.latency.drift import recalibrate
    from hwnas.latency.resolve import select_table

    report = recalibrate(select_table(device, table, space), space, protocol=protocol, progress=not as_json)
    if as_json:
        emit_json(report)
        return
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


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def tables(as_json: bool) -> None:
    """List the latency tables found ($HWNAS_TABLES, ./latency_tables, shipped) and how each stands here.

    matches: measured on this setup. differs: this machine runs its setup with other versions or
    another processor (checked on first use; local calibrations listed). elsewhere: another device."""
    from hwnas.latency.resolve import list_tables
    from hwnas.latency.table import table_dirs

    found = list_tables()
    if as_json:
        emit_json({"dirs": [str(d) for d in table_dirs()], "tables": found})
        return
    if not found:
        click.echo(f"no latency tables in {', '.join(str(d) for d in table_dirs())}; build one with `hwnas profile`")
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


@cli.command(name="import-table")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.option("--device", default=None, help="Label of the device that measured it (default: the one it recorded).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Table CSV to create or add to (default: latency_tables/<setup>.csv).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def import_table(bundle: Path, device: str | None, out: Path | None, as_json: bool) -> None:
    """Turn a bundle measured on a target by profilers/*.py into a latency table."""
    from hwnas.latency.profile import import_bundle

    table, added = import_bundle(bundle, device, out)
    if as_json:
        emit_json(
            {"table": table.name, "added": added, "rows": len(table), "calibrated_spaces": list(table.calibrations)}
        )
        return
    click.echo(
        f"added {added} rows to {table.name} ({len(table)} rows; calibrated spaces: {', '.join(table.calibrations)})"
    )


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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def predict(
    arch_file: Path,
    device: tuple[str, ...],
    table: tuple[Path, ...],
    space_name: str | None,
    latency_stat: str,
    drift: str,
    as_json: bool,
) -> None:
    """Predict an arch's latency on one device or several: the sum of its block rows, calibrated,
    with the breakdown (a column per device)."""
    from hwnas.api import predict as predict_arch

    if not device and not table:
        raise click.UsageError("name the latency table to predict with: --device LABEL (repeatable) or --table PATH")
    arch = Arch.from_json(arch_file, get_space(space_name) if space_name else None)
    report = predict_arch(arch, device, table=table, latency_stat=latency_stat, drift=drift, progress=not as_json)
    if as_json:
        emit_json(report.to_dict())
        return
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
@latency_stat_option
@drift_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def validate_table(
    device: str,
    space_name: str,
    table: Path | None,
    n: int,
    seed: int,
    out: Path | None,
    processes: int,
    quick: bool,
    latency_stat: str,
    drift: str,
    as_json: bool,
) -> None:
    """Measure N random subnets end to end and report how well the table predicts them.

    Each of --processes fresh processes measures every subnet; the prediction is compared with
    each one's measurement, and the processes with each other (the noise floor)."""
    from hwnas.latency.resolve import resolve_table
    from hwnas.latency.table import STATISTICS
    from hwnas.latency.validate import validate_table as run

    space = get_space(space_name)
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
    if as_json:
        emit_json(report)
        return
    click.echo(
        f"{report['n']} subnets of {space.key}, measured {report['measured_ms_range'][0]:.3f}-"
        f"{report['measured_ms_range'][1]:.3f} ms ({latency_stat}) on {device} ({report['backend']}) in "
        f"{processes} processes"
    )
    click.echo(f"{'':<34} {'MAPE %':>7} {'within 5%':>10} {'within 10%':>11} {'Kendall tau':>12}")
    rows = [(f"calibrated, vs process {i + 1}", m) for i, m in enumerate(report["calibrated"])]
    rows += [(f"MACs only, vs process {i + 1}", m) for i, m in enumerate(report["macs_only"] or [])]
    rows += [(f"sum of rows, vs process {i + 1}", m) for i, m in enumerate(report["uncalibrated_sum"])]
    rows += [
        (f"floor: process {j + 1} vs {i + 1}", m)
        for (i, j), m in zip(itertools.combinations(range(processes), 2), report["floor_process_vs_process"])
    ]
    for label, m in rows:
        click.echo(
            f"{label:<34} {m['mape_pct']:>7.2f} {m['within_5pct']:>9.0f}% {m['within_10pct']:>10.0f}% "
            f"{m['kendall_tau']:>12.3f}"
        )
    if report["fitted_rows"]:
        click.echo(f"the table's prediction sums {report['fitted_rows']} fitted rows of {space.key} (not measured)")
    if report["macs_only"] is None:
        click.echo("MACs only: not fitted (the table's calibration subnets were not found by their sums of rows)")
    click.echo(f"results: {report['json']}\nplot:    {report['plot']}")


# ---- search ---------------------------------------------------------------------------------------
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
    "--strategy",
    type=click.Choice(["evolution", "random", "hierarchical", "nsga2"]),
    default="evolution",
    show_default=True,
    metavar="NAME",
    help="evolution (AutoFormer), random (baseline, same evaluations), hierarchical (GLiT) or nsga2 (the "
    "whole accuracy-latency front in one run; with one --device, --latency-ms may repeat: one "
    "best-<budget>.json each; no budget at all is allowed).",
)
@click.option("--population", type=click.IntRange(min=2), default=50, show_default=True, help="Archs per generation.")
@click.option("--generations", type=click.IntRange(min=1), default=20, show_default=True, help="Generations.")
@click.option(
    "--parents",
    type=click.IntRange(min=1),
    default=None,
    help="Top archs bred from (default: a fifth of the population, at least 2; AutoFormer's 10 of 50).",
)
@click.option(
    "--mutation-prob",
    type=click.FloatRange(0, 1),
    default=0.2,
    show_default=True,
    help="Chance each layer's heads and MLP ratio are redrawn in a mutation.",
)
@click.option(
    "--resample-prob",
    type=click.FloatRange(0, 1),
    default=0.4,
    show_default=True,
    help="Chance the depth and the embed width are redrawn in a mutation.",
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (best.json) instead of text.")
def search_cmd(
    run_dir: Path,
    latency_ms: tuple[float, ...],
    device: tuple[str, ...],
    table: tuple[Path, ...],
    flops_g: float | None,
    params_m: float | None,
    strategy: str,
    population: int,
    generations: int,
    parents: int | None,
    mutation_prob: float,
    resample_prob: float,
    seed: int,
    high_level_share: float,
    out: Path | None,
    measure: bool,
    latency_stat: str,
    drift: str,
    as_json: bool,
) -> None:
    """Find the most accurate subnet of a trained supernet within a latency, FLOPs or params budget.

    Fitness is top-1 with inherited weights on the run's search-val split; the winner is scored once
    on the test split. State is saved every generation: rerunning the same command resumes."""
    from hwnas.api import search
    from hwnas.subnet_search.constraints import is_latency, metric_device

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
        out=out,
        measure=measure,
        latency_stat=latency_stat,
        drift=drift,
        progress=not as_json,
    )
    r = result.to_dict()
    if r["rank"] != 0:  # under torchrun, rank 0 reports for all
        return
    if as_json:
        emit_json(r)
        return
    click.echo(
        f"best of {r['evaluations']} archs ({r['strategy']}, seed {r['seed']}, {r['seconds']:.0f} s): {result.best!r}"
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
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as one JSON object instead of text.")
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
) -> None:
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
    gate = report.gate
    if as_json:
        emit_json(report.to_dict())
        if not report.passed:
            sys.exit(1)
        return
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
        if not gate["passed"]:
            sys.exit(1)


# ---- outputs --------------------------------------------------------------------------------------
@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def show(path: Path, as_json: bool) -> None:
    """Summarise an output: a run, fine-tuning, search, export, validation or latency table."""
    from hwnas.show import summarise

    summary = summarise(path)
    if as_json:
        emit_json(summary.to_dict())
        return
    click.echo("\n".join(summary.lines()))


def _one_line_warnings(prog: str) -> None:
    """Print our own warnings as `hwnas: warning: ...` (others keep Python's format)."""
    default = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, HwnasNotice):
            click.echo(f"{prog}: {message}", err=True)
        elif issubclass(category, HwnasWarning):
            click.echo(f"{prog}: warning: {message}", err=True)
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
        click.echo(f"{prog}: error: {exc}", err=True)
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
