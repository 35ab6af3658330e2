"""`hwnas demo`: the whole pipeline on the embedded digits data, on CPU, in a few minutes (GLiT's
spaces, with their longer training budget: about ten).

train a digits supernet (`autoformer-digits`, or another 10-class space given with `--space`) ->
reuse the shipped CPU latency table, spot-checked on this machine (or profile one) -> search under
a latency budget between the fastest and the slowest subnet -> fine-tune the winner alone for a
quarter of the supernet's epochs -> export the fine-tuned winner, timing the written model ->
compare it with a hand-designed subnet (every layer alike, when the family has such baselines)
that is predicted to be at least as slow. Test top-1 comes with its 95% Wilson interval: on 359
test digits a difference of one or two points is within the noise, and the demo says so instead of
naming a winner. Every stage resumes or reuses what an earlier run of the demo finished.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from hwnas.deploy import export
from hwnas.deploy.exporter import MANIFEST
from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json
from hwnas.latency.local import describe_outcome
from hwnas.latency.predict import LatencyPredictor
from hwnas.latency.profile import ProfileSettings, profile_space
from hwnas.latency.resolve import resolve_table
from hwnas.latency.table import LatencyTable, TableError
from hwnas.spaces import Arch, SearchSpace, get_space, list_spaces
from hwnas.subnet_search import Costs, search
from hwnas.training import TrainConfig, TrainedRun, train
from hwnas.training.checkpoint import CHECKPOINT, WEIGHTS
from hwnas.training.finetune import REPORT, FinetuneConfig, finetune
from hwnas.training.trainer import METRICS_JSONL

DEFAULT_SPACE = "autoformer-digits"
DIGITS_CLASSES = 10
BUDGET_FRACTION = 0.4  # default budget: this far from the fastest to the slowest subnet


def _train(out: Path, config: TrainConfig, progress: bool) -> tuple[TrainedRun, str]:
    metrics = out / METRICS_JSONL
    if (out / WEIGHTS).is_file() and metrics.is_file():
        done = len(metrics.read_text().splitlines())
        run = TrainedRun(out)
        if done >= (run.config.epochs or 0):
            return run, f"reused ({done} epochs)"
    began = time.perf_counter()
    train(config, out, resume=(out / CHECKPOINT).is_file(), progress=progress)
    return TrainedRun(out), f"trained in {time.perf_counter() - began:.0f} s"


def _table(space: SearchSpace, out: Path, drift: str, progress: bool) -> tuple[LatencyTable, str]:
    """The CPU table as it holds here (spot-checked when this setup differs from its own), or a new one."""
    try:
        table = resolve_table(space, device="cpu", drift=drift, progress=progress)
    except TableError:
        path = out / "cpu.csv"
        profile_space(space, ProfileSettings(device="cpu", protocol=None), path, progress=progress)
        return LatencyTable.load(path), f"profiled into {path}"
    source = table.calibration_source(space)
    return table, f"reused {table.name}" + (
        f" with this setup's local calibration ({describe_outcome(source)})" if source else ""
    )


def _finetune(run: TrainedRun, arch: Arch, out: Path, progress: bool) -> dict[str, Any]:
    """The winner fine-tuned alone (reused when an earlier demo finished it for this arch)."""
    report_path = out / REPORT
    if report_path.is_file() and json.loads(report_path.read_text())["digest"] == arch.digest:
        return json.loads(report_path.read_text())
    if out.exists():
        shutil.rmtree(out)  # another arch's, or unfinished: started over (a few epochs)
    return finetune(FinetuneConfig(run=str(run.dir), arch=arch.to_dict()), out, progress=progress)


def wilson_interval(percent: float, n: int) -> list[float]:
    """The 95% Wilson score interval (percent) of a top-1 of `percent` on `n` images."""
    from scipy.stats import binomtest

    ci = binomtest(round(percent * n / 100), n).proportion_ci(confidence_level=0.95, method="wilson")
    return [100 * ci.low, 100 * ci.high]


def comparison(rows: list[dict[str, Any]]) -> str:
    """Which test top-1 differences the intervals separate (one line)."""
    best = max(rows, key=lambda r: r["test_top1"])
    tied = [r["name"] for r in rows if r is not best and r["test_top1_95ci"][1] >= best["test_top1_95ci"][0]]
    if not tied:
        return f"{best['name']} scores highest on test, beyond the 95% intervals of the others"
    return (
        f"{best['name']} scores highest on test ({best['test_top1']:.2f}%), but within the 95% intervals of "
        f"{', '.join(tied)}: this test split cannot tell them apart"
    )


def uniform_reference(space: SearchSpace, predictor: LatencyPredictor, at_least_ms: float) -> Arch | None:
    """The hand-designed baseline: every layer alike (`space.uniform_archs()`), the fastest such arch
    predicted to take at least `at_least_ms` (more parameters first among equals); None when the
    family has no such baselines."""
    uniform = space.uniform_archs()
    if not uniform:
        return None
    slower = [(ms, -a.params(), a) for ms, a in zip(predictor.predict_many(uniform), uniform) if ms >= at_least_ms]
    return min(slower, key=lambda t: t[:2])[2] if slower else space.largest()


def run_demo(
    out: Path,
    budget_ms: float | None = None,
    epochs: int | None = None,
    population: int = 50,
    generations: int = 20,
    drift: str = "refit",
    progress: bool = True,
    space_name: str = DEFAULT_SPACE,
) -> dict[str, Any]:
    began = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    space = get_space(space_name)
    if space.spec.num_classes != DIGITS_CLASSES:
        digits = ", ".join(n for n in list_spaces() if n.endswith("-digits"))
        raise HwnasError(
            f"hwnas demo trains on the digits data ({DIGITS_CLASSES} classes) but --space {space.key} has "
            f"{space.spec.num_classes}; pick a digits space ({digits})"
        )
    run, trained = _train(out / "run", TrainConfig(space=space_name, data="digits", epochs=epochs), progress)
    table, tabled = _table(space, out / "tables", drift, progress)
    predictor = LatencyPredictor(table, space)
    costs = Costs(space, predictor)
    fastest, slowest = (
        float(predictor.predict(space.extreme_arch(costs.block_cost("latency_ms"), costliest=c)).latency_ms)
        for c in (False, True)
    )
    if budget_ms is None:
        budget_ms = round(fastest + BUDGET_FRACTION * (slowest - fastest), 3)
    found = search(
        run.dir,
        latency_ms=budget_ms,
        device="cpu",
        table=table,
        population=population,
        generations=generations,
        out=out / "search",
        progress=progress,
    )
    best = found.best
    tuned = _finetune(run, best, out / "finetune", progress)
    manifest_path = out / "export" / MANIFEST
    previous = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest = (
        previous
        if previous.get("digest") == best.digest and previous.get("weights") == "fine-tuned"
        else export(out / "finetune", best, out / "export", table=table, progress=progress)
    )
    reference = uniform_reference(space, predictor, found.report["predicted_latency"]["latency_ms"])
    net = run.supernet()
    searched = {
        "arch": best.to_dict(),
        "params": best.params(),
        "macs": best.macs(),
        "predicted_ms": manifest["latency"]["predicted"]["latency_ms"],
    }
    rows = [
        {
            "name": "searched, inherited",
            **searched,
            "test_top1": found.report["top1_test"],
            "search_val_top1": found.report["top1_search_val"],
            "measured_ms": None,
        },
        {
            "name": "searched, fine-tuned",
            **searched,
            "test_top1": tuned["after"]["test"]["top1"],
            "search_val_top1": tuned["after"]["search_val"]["top1"],
            "measured_ms": (manifest["latency"]["measured"] or {}).get("latency_ms"),
        },
    ]
    if reference is not None:
        rows.append(
            {
                "name": "hand-designed uniform",
                "arch": reference.to_dict(),
                "test_top1": run.top1(reference, "test", net),
                "search_val_top1": run.top1(reference, "search_val", net),
                "params": reference.params(),
                "macs": reference.macs(),
                "predicted_ms": float(predictor.predict(reference).latency_ms),
                "measured_ms": None,
            }
        )
    for row in rows:
        row["test_top1_95ci"] = wilson_interval(row["test_top1"], len(run.split.test))
    report = {
        "space": space.key,
        "stages": {"train": trained, "table": tabled},
        "budget_ms": budget_ms,
        "space_latency_ms": [fastest, slowest],
        "table": table.name,
        "calibration": {"used": predictor.calibration.to_dict(), "source": table.calibration_source(space)},
        "rows": rows,
        "test_images": len(run.split.test),
        "comparison": comparison(rows),
        "notes": found.notes,
        "finetune": {"epochs": tuned["config"]["epochs"], "lr": tuned["config"]["lr"], "folder": str(out / "finetune")},
        "artifacts": {name: str(out / "export" / name) for name in [*manifest["artifacts"], MANIFEST]},
        "plots": {
            "learning_curve": str(run.dir / "learning_curve.png"),
            "pareto": str(out / "search" / "pareto.png"),
            "finetune_curve": str(out / "finetune" / "learning_curve.png"),
        },
        "search": str(out / "search" / "best.json"),
        "seconds": round(time.perf_counter() - began, 1),
        "results": str(out / "demo.json"),
    }
    atomic_write_json(out / "demo.json", report)
    return report
