"""Prefix (AutoFormer) vs cyclic (ViTAS) sharing of token-embedding channels: how evenly the
embed widths use the channels in every shipped space, and digits training curves for both.
Prints a table, writes JSON and a PNG.

    .venv/bin/python benchmarks/weight_sharing.py [--out benchmarks/results/weight_sharing.json]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py

from hwnas import get_space, list_spaces
from hwnas.io import atomic_write_json
from hwnas.plots import figure, save_figure
from hwnas.supernet.sharing import SHARINGS, ChannelSharing
from hwnas.training import TrainConfig, TrainedRun, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/weight_sharing.json"))
    parser.add_argument("--runs", type=Path, default=Path("runs/bench_sharing"))
    args = parser.parse_args()
    balance = {
        name: {mode: ChannelSharing(get_space(name).spec.choices["embed_dim"], mode).balance() for mode in SHARINGS}
        for name in list_spaces()
    }
    curves, test = {}, {}
    for mode in SHARINGS:
        out = args.runs / mode
        shutil.rmtree(out, ignore_errors=True)
        train(TrainConfig(space="autoformer-digits", weight_sharing=mode), out)
        curves[mode] = pd.read_csv(out / "metrics.csv")
        run = TrainedRun(out)
        net = run.supernet()
        test[mode] = {
            name: run.top1(getattr(run.space, name)(), "test", net) for name in ("largest", "middle", "smallest")
        }
    fig, axes = figure(12, 4, ncols=3)
    for ax, probe in zip(axes, ("largest", "middle", "smallest")):
        for mode, df in curves.items():
            ax.plot(df["epoch"], df[f"val_top1_{probe}"], label=mode)
        ax.set_title(f"{probe} subnet")
        ax.set_xlabel("epoch")
        ax.set_ylabel("search-val top-1 (%)")
        ax.legend()
    plot = save_figure(fig, args.out.with_name(f"{args.out.stem}.png"))
    atomic_write_json(
        args.out,
        {
            "balance_max_over_min_uses": balance,
            "digits_test_top1": test,
            "curves": {m: df.to_dict(orient="list") for m, df in curves.items()},
            "plot": str(plot),
            "provenance": provenance(),
        },
    )
    print("| space | embed widths | prefix max/min uses | cyclic max/min uses |\n|---|---|---|---|")
    for name, b in balance.items():
        widths = ", ".join(map(str, get_space(name).spec.choices["embed_dim"]))
        print(f"| {name} | {widths} | {b['prefix']:.2f} | {b['cyclic']:.2f} |")
    print("\n| digits test top-1 | largest | middle | smallest |\n|---|---|---|---|")
    for mode, t in test.items():
        print(f"| {mode} | {t['largest']:.1f}% | {t['middle']:.1f}% | {t['smallest']:.1f}% |")
    print(f"\nwrote {args.out} and {plot}")


if __name__ == "__main__":
    main()
