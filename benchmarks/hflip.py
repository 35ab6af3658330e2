"""Flips on a folder whose classes a flip changes: a 7-class digit folder (the embedded digits 0-6,
written as PNG files in ImageFolder layout) trained with the folder default `--hflip 0.5` and with
`--hflip 0`, same default budget; search-val and test top-1 of the largest and smallest subnets.
Prints a table, writes JSON and a PNG.

    .venv/bin/python benchmarks/hflip.py [--space autoformer-digits] [--work runs/bench_hflip]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py
from samplers import trained  # the digits supernets these benchmarks share: trained, resumed or reused
from sklearn.datasets import load_digits

from hwnas.io import atomic_write_json
from hwnas.plots import figure, save_figure
from hwnas.training import TrainConfig, TrainedRun
from hwnas.training.trainer import METRICS_JSONL

CLASSES = 7  # digits 0-6: 2, 3, 4, 5, 6 and 7 (not here) read differently mirrored
FLIPS = (0.5, 0.0)
VAL_SHARE = 0.2


def write_folder(root: Path, seed: int = 0) -> Path:
    """The embedded digits 0-6 as 8-bit PNGs in root/{train,val}/<class>/ (a fifth of each class in val/),
    upscaled bilinearly to 32 px as the embedded digits are (nearest-neighbour blocks learn far slower)."""
    if (root / "train").is_dir():
        return root
    digits = load_digits()
    rng = np.random.default_rng(seed)
    for c in range(CLASSES):
        images = digits.images[digits.target == c]
        order = rng.permutation(len(images))
        n_val = int(round(VAL_SHARE * len(images)))
        for i, index in enumerate(order):
            part = "val" if i < n_val else "train"
            folder = root / part / f"digit_{c}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = (images[index] * (255 / 16)).astype(np.uint8)
            Image.fromarray(pixels, mode="L").resize((32, 32), Image.BILINEAR).save(folder / f"{index:04d}.png")
    return root


def train_seconds(run: TrainedRun) -> float:
    """The run's training time, summed over its epochs (also across a kill and resume)."""
    return float(sum(json.loads(line)["seconds"] for line in (run.dir / METRICS_JSONL).read_text().splitlines()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="autoformer-digits")
    parser.add_argument("--work", type=Path, default=Path("runs/bench_hflip"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hflip.json")
    args = parser.parse_args()
    data = write_folder(args.work / "digits7")
    rows = []
    for hflip in FLIPS:
        run = trained(TrainConfig(space=args.space, data=str(data), hflip=hflip), args.work / f"hflip{hflip:g}")
        space = run.space
        row = {
            "hflip": hflip,
            "epochs": run.config.epochs,
            "train_images": len(run.split.train),
            "search_val_images": len(run.split.search_val),
            "test_images": len(run.split.test),
            "seconds": round(train_seconds(run), 1),
        }
        for name, arch in (("largest", space.largest()), ("smallest", space.smallest())):
            row[f"search_val_top1_{name}"] = run.top1(arch, "search_val")
            row[f"test_top1_{name}"] = run.top1(arch, "test")
        rows.append(row)
    print(f"{'hflip':>5} {'epochs':>6} {'search-val largest':>18} {'smallest':>8} {'test largest':>12} {'smallest':>8}")
    for r in rows:
        print(
            f"{r['hflip']:>5g} {r['epochs']:>6} {r['search_val_top1_largest']:>17.1f}% {r['search_val_top1_smallest']:>7.1f}% "
            f"{r['test_top1_largest']:>11.1f}% {r['test_top1_smallest']:>7.1f}%"
        )

    fig, ax = figure(6, 3.5)
    width = 0.35
    names = ["largest", "smallest"]
    for i, r in enumerate(rows):
        values = [r[f"test_top1_{n}"] for n in names]
        ax.bar(np.arange(len(names)) + (i - 0.5) * width, values, width, label=f"--hflip {r['hflip']:g}")
    ax.set_xticks(range(len(names)), [f"{n} subnet" for n in names])
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"{args.space} on a {CLASSES}-class digit folder: flips")
    ax.legend()
    plot = save_figure(fig, args.out.with_suffix(".png"))
    atomic_write_json(
        args.out,
        {"space": args.space, "classes": CLASSES, "rows": rows, "plot": Path(plot).name, "provenance": provenance()},
    )
    print(f"wrote {args.out} and {plot}")


if __name__ == "__main__":
    main()
