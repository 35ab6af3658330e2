"""`hwnas train`, `finetune` and `eval`: the supernet, a searched subnet alone, inherited-weight top-1."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from hwnas.cli.app import cli, reports
from hwnas.reports import FinetuneReport, TrainReport
from hwnas.spaces import Arch
from hwnas.training.sampling import SAMPLINGS


def _train_text(report: TrainReport) -> None:
    click.echo(
        f"trained {report.space} for {report.epochs_run} epochs; search-val top-1: "
        + ", ".join(f"{k} {v:.1f}%" for k, v in report.search_val_top1.items())
    )
    click.echo(f"run:     {report.run}\nmetrics: {report.metrics}\nplot:    {report.plot}")


def _finetune_text(report: FinetuneReport) -> None:
    assert report.before is not None and report.after is not None and report.config is not None  # rank 0
    for part in ("search_val", "test"):
        click.echo(
            f"{part.replace('_', '-')} top-1: {report.before[part]['top1']:.2f}% before, "
            f"{report.after[part]['top1']:.2f}% after {report.config['epochs']} epochs"
        )
    click.echo(f"folder:  {report.out}\nmetrics: {report.metrics}\nplot:    {report.plot}")


@dataclass(frozen=True)
class InheritedTop1:
    """`hwnas eval`: an arch's top-1 with the weights it inherits."""

    run: Path
    arch: Arch
    split: str
    top1: float

    def to_dict(self) -> dict[str, Any]:
        return {"run": str(self.run), "arch": self.arch.to_dict(), "split": self.split, "top1": self.top1}


def _eval_text(report: InheritedTop1) -> None:
    click.echo(f"{report.arch!r}\n{report.split} top-1: {report.top1:.2f}%")


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
    "--shared-draws",
    is_flag=True,
    default=None,
    help="With --sampling multi under torchrun: every process trains the same M subnets (drawn from the seed "
    "and step) instead of its own, M instead of M x processes subnets per step; for comparison.",
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
    "--no-warmup-choices",
    is_flag=True,
    help="Turn off the family's warm-up of choices, on by default where it has one (resnas-*: the largest "
    "choices first, the others added over the first quarter of the epochs, heads and MLP units re-sorted by "
    "importance before each epoch until then).",
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
@reports(_train_text, "Print one JSON object instead of text.")
def train_cmd(
    space_name: str,
    data: str,
    out: Path,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    sampling: str | None,
    archs_per_batch: int,
    shared_draws: bool | None,
    alike_share: float | None,
    no_warmup_choices: bool,
    weight_sharing: str,
    aug: str,
    hflip: float | None,
    img_size: int | None,
    search_val: str | None,
    workers: int | None,
    resume: bool,
    seed: int,
    as_json: bool,
) -> TrainReport | None:
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
        shared_draws=shared_draws,
        alike_share=alike_share,
        warmup_choices=False if no_warmup_choices else None,
        weight_sharing=weight_sharing,
        aug=aug,
        hflip=hflip,
        search_val=search_val,
        seed=seed,
        workers=workers,
        resume=resume,
        progress=not as_json,
    )
    return report if report.rank == 0 else None  # under torchrun, rank 0 reports for all


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
@reports(_finetune_text, "Print one JSON object instead of text.")
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
) -> FinetuneReport | None:
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
    return report if report.rank == 0 else None  # under torchrun, rank 0 reports for all


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
@reports(_eval_text, "Print one JSON object instead of text.")
def eval_cmd(run_dir: Path, arch_file: Path, part: str, as_json: bool) -> InheritedTop1:
    """Top-1 of an arch with the weights it inherits from a trained supernet."""
    from hwnas.training import TrainedRun

    run = TrainedRun(run_dir)
    arch = Arch.from_json(arch_file, run.space)
    return InheritedTop1(run_dir, arch, part, run.top1(arch, part.replace("-", "_")))


# ---- latency tables -----------------------------------------------------------------------------
