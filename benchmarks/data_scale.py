"""The ImageNet-scale data path on a synthetic JPEG folder: listing time (and its extrapolation to
ImageNet's 1.28M files), training-loader throughput at 224 px with 0, 1 and 2 workers, the fitness
evaluation of a subnet on a 10,000-image search-val (first call, later call, pure forward) and the
peak memory. Prints a Markdown table, writes JSON and a PNG.

    .venv/bin/python benchmarks/data_scale.py [--images 20000] [--classes 100] [--search-val-images 10000]
        [--loader-batches 100] [--workers 0 1 2] [--repeats 1] [--device cpu] [--out benchmarks/results/data_scale.json]

The folder (ImageFolder tree `train/<class>/*.jpg`, `val/<class>/*.jpg`, 90% / 10%, 256x256 px
smooth colour gradients plus noise, JPEG quality 90) and the run folder live in a temporary
directory deleted at the end. The run folder is prepared as `hwnas train` prepares one
(`prepare_run`: listing, split, config, space) with freshly initialised supernet weights: the
figures are times and memory, not accuracy. The folder is listed just after it was written (its
directory entries are in the page cache), so the scan time is a warm-cache one. The loader with 0
workers runs a second time with one torch thread in this process (what each worker process runs):
the 2-workers ratio to that one is the scaling of the processes alone, the ratio to the first what
training gets.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from hwnas.data import AUGMENTS, EpochIndices, PoolDataset, model_input
from hwnas.data.sources import folder_pool, save_index, scan_folder
from hwnas.io import atomic_write_json
from hwnas.plots import figure, save_figure
from hwnas.profilers.protocol import cpu_model
from hwnas.subnet_search.fitness import SEARCH_VAL, Fitness
from hwnas.supernet import build_supernet
from hwnas.training import TrainConfig, TrainedRun
from hwnas.training.checkpoint import save_weights
from hwnas.training.trainer import prepare_run

IMAGENET_FILES = 1_281_167
IMAGE_SIZE = 256
TRAIN_SIZE = 224
VAL_SHARE = 0.1
LOADER_BATCH = 64
PREFETCH = 2  # DataLoader's default prefetch_factor: batches each worker loads ahead
TARGETS = {"scan_seconds": 5.0, "loader_speedup": 1.7, "loader_scaling": 1.7, "later_over_forward": 1.1}


def write_folder(root: Path, images: int, classes: int, seed: int = 0) -> dict[str, int]:
    """`images` JPEGs, spread evenly over `classes`, `VAL_SHARE` of each class under val/: a random
    bilinear colour gradient per image plus noise (a random crop of one noise field), quality 90."""
    rng = np.random.default_rng(seed)
    per_class = max(2, images // classes)
    n_val = max(1, round(per_class * VAL_SHARE))
    ramp = np.linspace(0.0, 1.0, IMAGE_SIZE, dtype=np.float32)
    wy, wx = ramp[:, None, None], ramp[None, :, None]
    noise = rng.normal(0, 12, (2 * IMAGE_SIZE, 2 * IMAGE_SIZE, 3)).astype(np.float32)
    counts = {"train": 0, "val": 0, "bytes": 0}
    for c in range(classes):
        for part in ("train", "val"):
            (root / part / f"class_{c:04d}").mkdir(parents=True, exist_ok=True)
    with tqdm(total=per_class * classes, desc="writing JPEGs", unit="img") as bar:
        for c in range(classes):
            for i in range(per_class):
                corners = rng.uniform(0, 255, (4, 3)).astype(
                    np.float32
                )  # top-left, top-right, bottom-left, bottom-right
                top = corners[0] * (1 - wx) + corners[1] * wx
                bottom = corners[2] * (1 - wx) + corners[3] * wx
                oy, ox = rng.integers(0, IMAGE_SIZE, 2)
                pixels = top * (1 - wy) + bottom * wy + noise[oy : oy + IMAGE_SIZE, ox : ox + IMAGE_SIZE]
                part = "val" if i < n_val else "train"
                path = root / part / f"class_{c:04d}" / f"{c:04d}_{i:06d}.jpg"
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
                counts[part] += 1
                counts["bytes"] += path.stat().st_size
                bar.update()
    return counts


def loader_rate(
    pool: Any, train: tuple[int, ...], workers: int, batches: int, threads: int | None = None
) -> dict[str, Any]:
    """Images per second of the augmented (DeiT recipe) training loader, as `train_loader` builds
    it, over `batches` batches after the warm-up: the first batch (which starts the worker
    processes) and, with workers, the batches they prefetched meanwhile (`PREFETCH` each), so that
    only steady-state batches are timed. `threads`: torch's intra-op threads of this process
    meanwhile (None: as they are; worker processes always run one)."""
    dataset = PoolDataset(
        pool, train, img_size=TRAIN_SIZE, in_chans=3, training=True, augment=AUGMENTS["deit"], hflip=0.5, seed=0
    )
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=True)
    loader = DataLoader(
        dataset, batch_size=LOADER_BATCH, sampler=EpochIndices(sampler), drop_last=True, num_workers=workers
    )
    if len(loader) == 0:
        raise SystemExit(f"the train part has {len(dataset)} images, fewer than a batch of {LOADER_BATCH}")

    def endless():  # epochs one after the other, as training runs them
        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    kept = torch.get_num_threads()
    torch.set_num_threads(threads or kept)
    try:
        stream = endless()
        for _ in range(1 + PREFETCH * workers):  # warm-up: worker start, first decodes, the prefetched batches
            next(stream)
        began = time.perf_counter()
        images = 0
        label = f"loader, {workers} worker(s)" + (f", {threads} thread(s)" if threads else "")
        for _ in tqdm(range(batches), desc=label, leave=False):
            x, _ = next(stream)
            images += len(x)
        seconds = time.perf_counter() - began
        stream.close()  # shuts the worker processes down
    finally:
        torch.set_num_threads(kept)
    return {
        "workers": workers,
        "main_threads": threads or kept,
        "batches": batches,
        "warmup_batches": 1 + PREFETCH * workers,
        "images": images,
        "seconds": seconds,
        "images_per_second": images / seconds,
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Any, device: torch.device) -> tuple[Any, float]:
    synchronize(device)
    began = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - began


def pure_forward(fitness: Fitness, arch: Any, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """The supernet's forward over the cached batches and nothing else (as `score_model` runs it:
    on CUDA under autocast with channels-last input)."""
    net, device = fitness.supernet, fitness.device
    cuda = device.type == "cuda"
    with torch.no_grad(), torch.autocast(device.type, enabled=cuda):
        for x, _ in batches:
            x = model_input(x.to(device, non_blocking=True))
            net(x.contiguous(memory_format=torch.channels_last) if cuda else x, arch)


def rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000, help="JPEGs written (train and val together)")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument(
        "--search-val-images",
        type=int,
        default=10_000,
        help="search-val size (at most the train images less one per class)",
    )
    parser.add_argument(
        "--loader-batches",
        type=int,
        default=100,
        help=f"timed batches of {LOADER_BATCH} per loader setting (after the warm-up)",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="later evaluations and pure forwards (taking turns; the fastest of each is reported)",
    )
    parser.add_argument("--space", default="autoformer-tiny")
    parser.add_argument("--device", default=None, help="fitness device (default: cuda if there is one, else cpu)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/data_scale.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(prefix="hwnas_data_scale_") as tmp:
        root, run_dir = Path(tmp) / "data", Path(tmp) / "run"
        began = time.perf_counter()
        written = write_folder(root, args.images, args.classes)
        n_files = written["train"] + written["val"]
        results["write"] = {
            "seconds": time.perf_counter() - began,
            "files": n_files,
            "train_files": written["train"],
            "val_files": written["val"],
            "mean_file_kb": written["bytes"] / n_files / 1024,
        }

        # listing: the scan alone, then a run's first folder_pool (scan + index written) and a later one (index read)
        began = time.perf_counter()
        listing = scan_folder(root)
        scan_s = time.perf_counter() - began
        index = Path(tmp) / "images.json"
        began = time.perf_counter()
        save_index(folder_pool(root, index), index)  # what `prepare_run` does on a run's first start
        pool_write_s = time.perf_counter() - began
        began = time.perf_counter()
        pool = folder_pool(root, index)
        pool_read_s = time.perf_counter() - began
        listed = sum(map(len, listing["train"])) + sum(map(len, listing["val"]))
        assert listed == n_files == len(pool), (listed, n_files, len(pool))
        results["scan"] = {
            "files": n_files,
            "scan_folder_seconds": scan_s,
            "folder_pool_write_index_seconds": pool_write_s,
            "folder_pool_read_index_seconds": pool_read_s,
            "index_kb": index.stat().st_size / 1024,
            "imagenet_scan_seconds_extrapolated": scan_s * IMAGENET_FILES / n_files,
        }

        # the run folder as `hwnas train` prepares it, with untrained weights
        per_class_train = written["train"] // args.classes
        search_val = min(args.search_val_images, written["train"] - args.classes)
        config = TrainConfig(
            space=args.space, data=str(root), img_size=TRAIN_SIZE, search_val=str(search_val), epochs=1
        )
        began = time.perf_counter()
        space, config, _, split, _ = prepare_run(config, out=run_dir, resume=False, write=True)
        prepare_s = time.perf_counter() - began
        torch.manual_seed(0)
        save_weights(run_dir, build_supernet(space), space)

        # training loader over the run's train part, all worker counts in one run
        # (and 0 workers again with one torch thread here: the per-image work of one worker process)
        rates = [loader_rate(pool, split.train, w, args.loader_batches) for w in args.workers]
        single = (
            loader_rate(pool, split.train, 0, args.loader_batches, threads=1)
            if 0 in args.workers and torch.get_num_threads() > 1
            else None
        )
        by_workers = {r["workers"]: r["images_per_second"] for r in rates}
        top = by_workers[max(by_workers)]
        rss_after_loader = rss_mb()
        results["loader"] = {
            "rows": rates + ([single] if single else []),
            "train_images": len(split.train),
            "batch_size": LOADER_BATCH,
            "augment": "deit",
            "img_size": TRAIN_SIZE,
            "speedup_max_over_0_workers": top / by_workers[0] if 0 in by_workers and len(by_workers) > 1 else None,
            "speedup_max_over_0_workers_1_thread": top / (single["images_per_second"] if single else by_workers[0])
            if 0 in by_workers and len(by_workers) > 1
            else None,
        }

        # fitness on the search-val part: first call (decodes and caches), a later one, the pure forward
        run = TrainedRun(run_dir)
        fitness, init_s = timed(lambda: Fitness(run, args.device), torch.device("cpu"))
        device = fitness.device
        arch = space.smallest()
        first, first_s = timed(lambda: fitness.score(arch), device)
        cached = fitness.cached(SEARCH_VAL)  # what the first call kept (None: streamed)
        cache_bytes = sum(x.nbytes + y.nbytes for x, y in cached) if cached else 0
        s = space.spec
        planned_bytes = len(split.search_val) * s.in_chans * s.img_size**2
        later_all, forward_all = [], []
        for _ in range(args.repeats):  # taking turns, so each faces the same machine phases
            later, seconds = timed(lambda: fitness.score(arch), device)
            later_all.append(seconds)
            forward_all.append(
                timed(lambda: pure_forward(fitness, arch, cached), device)[1] if cached else float("nan")
            )
        later_s, forward_s = min(later_all), min(forward_all)
        results["fitness"] = {
            "space": space.key,
            "arch": "smallest",
            "arch_digest": arch.digest,
            "weights": "freshly initialised (untrained)",
            "search_val_images": len(split.search_val),
            "search_val_rule": split.search_val_rule,
            "device": str(device),
            "decode_workers": config.workers,
            "batchnorm_calibration": fitness.calibration is not None,
            "init_seconds": init_s,
            "first_seconds": first_s,
            "later_seconds": later_s,
            "pure_forward_seconds": forward_s,
            "later_seconds_all": later_all,
            "pure_forward_seconds_all": forward_all,
            "later_over_forward": later_s / forward_s,
            "first_over_later": first_s / later_s,
            "cache_bytes": cache_bytes,
            "cache_mb": cache_bytes / 2**20,
            "cache_device": str(fitness.cache_device(planned_bytes) or "none (streamed)"),
            "cached_on": str(cached[0][0].device) if cached else "none (streamed)",
            "top1_untrained": first.top1,
            "later_same_score": abs(first.loss - later.loss) <= 1e-3 * max(1.0, abs(first.loss)),
        }
        results["run"] = {
            "prepare_run_seconds": prepare_s,
            "train_images": len(split.train),
            "search_val_images": len(split.search_val),
            "test_images": len(split.test),
            "per_class_train_files": per_class_train,
            "num_classes": s.num_classes,
        }

    results["memory"] = {
        "peak_rss_mb": rss_mb(),
        "peak_rss_mb_after_loader": rss_after_loader,
        "peak_rss_mb_largest_child": rss_mb(resource.RUSAGE_CHILDREN),
        "search_val_cache_mb": results["fitness"]["cache_mb"],
    }
    scan, loader, fit = results["scan"], results["loader"], results["fitness"]
    met = {
        "scan_seconds": scan["scan_folder_seconds"] <= TARGETS["scan_seconds"],
        **{
            key: loader[field] is not None and loader[field] >= TARGETS[key]
            for key, field in (
                ("loader_speedup", "speedup_max_over_0_workers"),
                ("loader_scaling", "speedup_max_over_0_workers_1_thread"),
            )
        },
        "later_over_forward": fit["later_over_forward"] <= TARGETS["later_over_forward"],
    }
    max_workers = max(args.workers)
    results.update(
        targets={
            "scan_seconds": f"scan_folder of the {n_files}-file folder <= {TARGETS['scan_seconds']} s",
            "loader_speedup": f"loader images/s with {max_workers} workers / 0 workers >= {TARGETS['loader_speedup']}x",
            "loader_scaling": f"loader images/s with {max_workers} workers / 0 workers with one torch thread "
            f">= {TARGETS['loader_scaling']}x (the same per-image work: the scaling of the processes)",
            "later_over_forward": f"later fitness evaluation <= {TARGETS['later_over_forward']}x the pure forward",
        },
        met=met,
        settings={
            "images": args.images,
            "classes": args.classes,
            "image_px": IMAGE_SIZE,
            "jpeg_quality": 90,
            "val_share": VAL_SHARE,
            "search_val_images": args.search_val_images,
            "loader_batches": args.loader_batches,
            "workers": args.workers,
            "repeats": args.repeats,
            "space": args.space,
            "device": args.device,
        },
        machine={
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
    )

    fig, (ax_loader, ax_fit) = figure(11, 4, ncols=2)
    ax_loader.bar(
        [f"{r['workers']}" + (" (1 thread)" if r is single else "") for r in loader["rows"]],
        [r["images_per_second"] for r in loader["rows"]],
    )
    ax_loader.set_xlabel("loader worker processes")
    ax_loader.set_ylabel(f"images/s ({TRAIN_SIZE} px, DeiT augmentation, batch {LOADER_BATCH})")
    ax_fit.bar(
        ["first", "later", "pure forward"], [fit["first_seconds"], fit["later_seconds"], fit["pure_forward_seconds"]]
    )
    ax_fit.set_ylabel(f"seconds, {fit['search_val_images']} search-val images ({fit['device']})")
    ax_fit.set_title(f"fitness of {fit['space']} smallest")
    plot = args.out.with_suffix(".png")
    save_figure(fig, plot)
    results["plot"] = plot.name  # beside the JSON (no path of this machine)
    atomic_write_json(args.out, {**results, "provenance": provenance()})

    def ok(key: str) -> str:
        return "yes" if met[key] else "**no**"

    w = results["write"]
    rows = [
        (
            "JPEGs written (256 px, q90)",
            f"{w['files']} ({w['train_files']} train, {w['val_files']} val), "
            f"{w['mean_file_kb']:.0f} kB each, {w['seconds']:.1f} s",
            "",
            "",
        ),
        (
            "scan_folder",
            f"{scan['scan_folder_seconds']:.3f} s",
            f"<= {TARGETS['scan_seconds']:g} s",
            ok("scan_seconds"),
        ),
        ("scan extrapolated to 1.28M files", f"{scan['imagenet_scan_seconds_extrapolated']:.1f} s", "", ""),
        ("folder_pool, index written", f"{scan['folder_pool_write_index_seconds']:.3f} s", "", ""),
        ("folder_pool, index read", f"{scan['folder_pool_read_index_seconds']:.3f} s", "", ""),
        *(
            (
                f"loader, {r['workers']} worker(s), {r['main_threads']} torch thread(s) here",
                f"{r['images_per_second']:.0f} img/s",
                "",
                "",
            )
            for r in loader["rows"]
        ),
        (
            f"loader {max_workers} workers / 0",
            f"{loader['speedup_max_over_0_workers'] or float('nan'):.2f}x",
            f">= {TARGETS['loader_speedup']:g}x",
            ok("loader_speedup"),
        ),
        (
            f"loader {max_workers} workers / 0 at 1 torch thread",
            f"{loader['speedup_max_over_0_workers_1_thread'] or float('nan'):.2f}x",
            f">= {TARGETS['loader_scaling']:g}x",
            ok("loader_scaling"),
        ),
        ("Fitness init", f"{fit['init_seconds']:.2f} s", "", ""),
        ("fitness, first evaluation", f"{fit['first_seconds']:.2f} s", "", ""),
        (
            "fitness, later evaluation" + (f" (fastest of {args.repeats})" if args.repeats > 1 else ""),
            f"{fit['later_seconds']:.2f} s",
            "",
            "",
        ),
        (
            "pure forward, same batches" + (f" (fastest of {args.repeats})" if args.repeats > 1 else ""),
            f"{fit['pure_forward_seconds']:.2f} s",
            "",
            "",
        ),
        (
            "later / pure forward",
            f"{fit['later_over_forward']:.3f}x",
            f"<= {TARGETS['later_over_forward']:g}x",
            ok("later_over_forward"),
        ),
        ("search-val cache", f"{fit['cache_mb']:.1f} MB on {fit['cached_on']}", "", ""),
        ("peak RSS (process)", f"{results['memory']['peak_rss_mb']:.0f} MB", "", ""),
        ("peak RSS (largest child: loader worker)", f"{results['memory']['peak_rss_mb_largest_child']:.0f} MB", "", ""),
    ]
    print(
        f"{space.key} smallest, {fit['search_val_images']} search-val images, {fit['device']}; "
        f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}\n"
    )
    print("| figure | value | target | met |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nwrote {args.out} and {plot}")


if __name__ == "__main__":
    main()
