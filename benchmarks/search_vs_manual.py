"""Does search beat hand design? On each digits supernet, latency budgets at 10%, 25% and 40% of the
way from the fastest to the slowest subnet (predicted CPU latency); per budget, 3 seeds of search
and the best DeiT-style uniform arch that fits (every layer alike; best by inherited search-val
among all uniform archs within the budget). Every winner and every uniform pick is fine-tuned the
same way (`hwnas finetune` defaults), scored on the same test images (top-1 with its 95% Wilson
interval) and compared pairwise with an exact McNemar test (the images one gets right and the other
wrong); p < 0.05 is a win or a loss, anything else a tie. All of them are then measured end to end in
2 fresh processes. Prints a table, writes JSON and a plot of test top-1 against measured latency.
The JSON is rewritten after each fine-tuning; a rerun reuses every finished training, search and
fine-tuning under `--run`.

    .venv/bin/python benchmarks/search_vs_manual.py [--run runs/bench_search_vs_manual]
    .venv/bin/python benchmarks/search_vs_manual.py --spaces resnas-digits --append   # one space more
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py
from samplers import trained  # the digits supernets these benchmarks share: trained, resumed or reused
from scipy.stats import binomtest

import hwnas
from hwnas.data.datasets import model_input
from hwnas.demo import wilson_interval
from hwnas.io import atomic_write_json
from hwnas.latency import LatencyPredictor
from hwnas.latency.measure import measure_archs_apart
from hwnas.latency.resolve import resolve_table
from hwnas.plots import figure, save_figure
from hwnas.subnet_search import Costs
from hwnas.training import TrainConfig, TrainedRun
from hwnas.training.evaluate import split_loader
from hwnas.training.finetune import FinetunedRun

SIGNIFICANCE = 0.05


def budgets(space: hwnas.SearchSpace, predictor: LatencyPredictor, fractions: list[float]) -> dict[float, float]:
    """Budget (ms) per fraction of the way from the fastest to the slowest subnet (predicted)."""
    costs = Costs(space, predictor)
    low, high = (
        float(predictor.predict(space.extreme_arch(costs.block_cost("latency_ms"), costliest=c)).latency_ms)
        for c in (False, True)
    )
    return {f: round(low + f * (high - low), 3) for f in fractions}


def best_uniform(
    run: TrainedRun, predictor: LatencyPredictor, budget: float, net: Any
) -> tuple[hwnas.Arch, float] | None:
    """The DeiT-style arch a designer would pick with the supernet at hand: of every uniform arch
    within the budget, the best by inherited search-val top-1 (ties: the faster); None if none fits."""
    uniform = run.space.uniform_archs()
    fits = [a for a, ms in zip(uniform, predictor.predict_many(uniform)) if ms <= budget]
    if not fits:
        return None
    scored = [(run.top1(a, "search_val", net), -float(predictor.predict(a).latency_ms), a) for a in fits]
    top1, _, arch = max(scored, key=lambda t: (t[0], t[1]))
    return arch, top1


@torch.no_grad()
def test_correct(folder: Path) -> np.ndarray:
    """Per test image, whether the fine-tuned subnet in `folder` classifies it right (in split order)."""
    ft = FinetunedRun(folder)
    model = ft.extract(ft.arch)
    flags = []
    for x, y in split_loader(ft.space, ft.config, ft.pool, ft.split, "test"):
        flags.append((model(model_input(x)).argmax(1) == y).numpy())
    return np.concatenate(flags)


def mcnemar(searched: np.ndarray, uniform: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test on paired per-image correctness: searched right and uniform wrong (b)
    against the reverse (c), two-sided; a win or loss at p < SIGNIFICANCE, else a tie."""
    b, c = int((searched & ~uniform).sum()), int((~searched & uniform).sum())
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    verdict = "tie" if p >= SIGNIFICANCE else ("win" if b > c else "loss")
    return {"searched_only": b, "uniform_only": c, "p_value": float(p), "verdict": verdict}


def finetuned(run: TrainedRun, arch: hwnas.Arch, folder: Path, cache: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Fine-tune `arch` once (reused by digest and from `folder`); its test top-1, interval and flags."""
    if arch.digest not in cache:
        began = time.perf_counter()
        if not (folder / "model.safetensors").is_file():
            hwnas.finetune(run.dir, arch, folder, resume=folder.is_dir(), progress=False)
        correct = test_correct(folder)
        top1 = 100.0 * float(correct.mean())
        cache[arch.digest] = {
            "folder": str(folder),
            "test_top1": top1,
            "test_top1_95ci": wilson_interval(top1, len(correct)),
            "correct": correct,
            "seconds": round(time.perf_counter() - began, 1),
        }
    return cache[arch.digest]


def public(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "correct"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["autoformer-digits", "resnas-digits"])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 0.4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--paper-spaces",
        nargs="*",
        default=["resnas-digits"],
        help="spaces also searched with --preset paper (the family's released evolution)",
    )
    parser.add_argument(
        "--paper-seeds", type=int, nargs="+", default=None, help="seeds of the paper preset (default: --seeds)"
    )
    parser.add_argument("--run", type=Path, default=Path("runs/bench_search_vs_manual"))
    parser.add_argument("--epochs", type=int, default=None, help="supernet epochs (default: the family's budget)")
    parser.add_argument("--processes", type=int, default=2, help="fresh processes that measure every pick")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/search_vs_manual.json"))
    parser.add_argument("--append", action="store_true", help="keep --out's other spaces (a run per space, one JSON)")
    args = parser.parse_args()
    began = time.perf_counter()
    result: dict[str, Any] = {
        "fractions": args.fractions,
        "seeds": args.seeds,
        "paper_seeds": args.paper_seeds or args.seeds,
        "significance": SIGNIFICANCE,
    }
    spaces, earlier = [], {}
    if args.append and args.out.is_file():
        previous = json.loads(args.out.read_text())
        spaces = [s for s in previous["spaces"] if s["space"] not in args.spaces]
        earlier = {"earlier_commands": [*previous.get("earlier_commands", []), previous["provenance"]["command"]]}
        began -= previous["seconds"]
    for name in args.spaces:
        start = time.perf_counter()
        run = trained(TrainConfig(space=name, data="digits", epochs=args.epochs), args.run / name)
        space, net = run.space, run.supernet()
        train_seconds = round(time.perf_counter() - start, 1)
        table = resolve_table(space, device="cpu", progress=False)
        predictor = LatencyPredictor(table, space)
        cache: dict[str, dict[str, Any]] = {}
        presets = ["default", *(["paper"] if name in args.paper_spaces else [])]
        rows: list[dict[str, Any]] = []
        skipped: list[dict[str, float]] = []
        for fraction, budget in budgets(space, predictor, args.fractions).items():
            picked = best_uniform(run, predictor, budget, net)
            if picked is None:  # nothing to compare with: recorded, not searched
                fastest = float(predictor.predict_many(space.uniform_archs()).min())
                skipped.append({"fraction": fraction, "budget_ms": budget, "fastest_uniform_ms": fastest})
                print(
                    f"{space.key} {fraction:g}: no uniform arch fits {budget} ms (the fastest predicts {fastest:.3f})"
                )
                continue
            uniform, uniform_val = picked
            hand = finetuned(run, uniform, args.run / name / "finetune" / uniform.digest, cache)
            for preset in presets:
                seeds = (args.paper_seeds or args.seeds) if preset == "paper" else args.seeds
                for seed in seeds:
                    start = time.perf_counter()
                    options = {} if preset == "default" else {"preset": preset}
                    found = hwnas.search(
                        run.dir,
                        latency_ms=budget,
                        device="cpu",
                        table=table,
                        seed=seed,
                        out=args.run / name / "search" / f"{preset}-{fraction:g}-seed{seed}",
                        progress=False,
                        **options,
                    )
                    search_seconds = round(time.perf_counter() - start, 1)
                    report = found.report
                    arch = found.best
                    searched = finetuned(run, arch, args.run / name / "finetune" / arch.digest, cache)
                    rows.append(
                        {
                            "fraction": fraction,
                            "budget_ms": budget,
                            "preset": preset,
                            "seed": seed,
                            "evaluations": report["evaluations"],
                            "search_seconds": search_seconds,
                            "searched": {
                                "arch": arch.to_dict(),
                                "digest": arch.digest,
                                "params": arch.params(),
                                "predicted_ms": float(predictor.predict(arch).latency_ms),
                                "search_val_top1_inherited": report["top1_search_val"],
                                **public(searched),
                            },
                            "uniform": {
                                "arch": uniform.to_dict(),
                                "digest": uniform.digest,
                                "params": uniform.params(),
                                "predicted_ms": float(predictor.predict(uniform).latency_ms),
                                "search_val_top1_inherited": uniform_val,
                                **public(hand),
                            },
                            "mcnemar": mcnemar(searched["correct"], hand["correct"]),
                        }
                    )
                    spaces_now = [
                        *spaces,
                        {"space": space.key, "train_seconds": train_seconds, "rows": rows, "no_uniform_fits": skipped},
                    ]
                    atomic_write_json(args.out, {**result, "spaces": spaces_now, "complete": False})
                    r = rows[-1]
                    print(
                        f"{space.key} {preset} {fraction:g} seed {seed}: searched {r['searched']['test_top1']:.2f}% vs "
                        f"uniform {r['uniform']['test_top1']:.2f}% -> {r['mcnemar']['verdict']} "
                        f"(p {r['mcnemar']['p_value']:.3f})",
                        flush=True,
                    )
        # every pick measured end to end, together, in fresh processes
        picks = {}
        for r in rows:
            for side in ("searched", "uniform"):
                picks[r[side]["digest"]] = hwnas.Arch.from_dict(r[side]["arch"], space)
        measured = measure_archs_apart(
            space, table, list(picks.values()), args.run / name / "measure", protocols=(None,) * args.processes
        )
        by_digest = {d: [float(m[i]) for m in measured] for i, d in enumerate(picks)}
        for r in rows:
            for side in ("searched", "uniform"):
                r[side]["measured_ms"] = by_digest[r[side]["digest"]]
        spaces.append(
            {
                "space": space.key,
                "train_seconds": train_seconds,
                "finetune": run_finetune_settings(cache),
                "rows": rows,
                "no_uniform_fits": skipped,
            }
        )
    tally = {
        f"{s['space']} {preset}": {
            v: sum(r["mcnemar"]["verdict"] == v for r in s["rows"] if r["preset"] == preset)
            for v in ("win", "tie", "loss")
        }
        for s in spaces
        for preset in dict.fromkeys(r["preset"] for r in s["rows"])
    }
    result.update({"spaces": spaces, "tally": tally, "seconds": round(time.perf_counter() - began, 1)})
    result["plot"] = str(plot(spaces, args.out.with_suffix(".png")))
    atomic_write_json(args.out, {**result, **earlier, "complete": True, "provenance": provenance()})
    print(
        "| space | preset | budget | seed | searched: test top-1 (95% CI) | uniform: test top-1 | McNemar p | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s in spaces:
        for r in s["rows"]:
            a, u = r["searched"], r["uniform"]
            print(
                f"| {s['space']} | {r['preset']} | {r['budget_ms']} ms ({r['fraction']:g}) | {r['seed']} | "
                f"{a['test_top1']:.2f}% ({a['test_top1_95ci'][0]:.1f}–{a['test_top1_95ci'][1]:.1f}) | "
                f"{u['test_top1']:.2f}% | {r['mcnemar']['p_value']:.3f} | {r['mcnemar']['verdict']} |"
            )
    print(f"\nwins / ties / losses: {tally}; {result['seconds']:.0f} s in all\nwrote {args.out} and {result['plot']}")


def run_finetune_settings(cache: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The fine-tuning recipe every pick of a space shared (read back from one of its folders; {}: none)."""
    if not cache:
        return {}
    folder = Path(next(iter(cache.values()))["folder"])
    settings = json.loads((folder / "finetune.json").read_text())
    return {k: settings.get(k) for k in ("epochs", "lr", "seed")}


def plot(spaces: list[dict[str, Any]], path: Path) -> Path:
    fig, axes = figure(5.5 * len(spaces), 4.5, ncols=len(spaces))
    axes = np.atleast_1d(axes)
    for ax, s in zip(axes, spaces):
        fractions = sorted({r["fraction"] for r in s["rows"]})
        colours = {f: f"C{i}" for i, f in enumerate(fractions)}
        for r in s["rows"]:
            colour = colours.get(r["fraction"], "tab:gray")
            marker = "o" if r["preset"] == "default" else "^"
            a, u = r["searched"], r["uniform"]
            ax.scatter(np.mean(a["measured_ms"]), a["test_top1"], c=colour, marker=marker, s=28, alpha=0.8)
            ax.scatter(np.mean(u["measured_ms"]), u["test_top1"], c=colour, marker="s", s=40, edgecolors="k")
        for fraction in dict.fromkeys(r["fraction"] for r in s["rows"]):
            budget = next(r["budget_ms"] for r in s["rows"] if r["fraction"] == fraction)
            ax.axvline(budget, color=colours.get(fraction, "tab:gray"), ls=":", lw=1)
        ax.set_title(f"{s['space']}: circles searched, triangles --preset paper, squares uniform", fontsize=8)
        ax.set_xlabel("measured CPU latency (ms), mean of processes; dotted: budgets")
        ax.set_ylabel("test top-1 after fine-tuning (%)")
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
