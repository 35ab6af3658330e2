"""`hwnas show PATH`: what an hwnas output holds and its key figures, read from its JSON and CSV files.

Every stage writes plain files; this names the kind of output a path is from the files its stage
writes (a training run, a fine-tuning, a search, an export, a latency table or a table validation)
and summarises it. It never loads a supernet, a model or torch: weights and checkpoints are
described by their size (and a safetensors file by its header), so `show` takes well under a second
on any folder. The file names below are the stages' own (`tests/test_show.py` checks them against
the modules that write them, which import torch).
"""

from __future__ import annotations

import csv
import json
import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hwnas.errors import HwnasError, cli_message
from hwnas.latency.agreement import worst
from hwnas.latency.local import describe_outcome

KINDS = ("run", "finetune", "search", "export", "table", "validation")
KIND_NAMES = {
    "run": "training run",
    "finetune": "fine-tuning",
    "search": "search",
    "export": "export",
    "table": "latency table",
    "validation": "latency-table validation",
}

# hwnas.training.run / checkpoint / trainer
CONFIG, SPLIT, SPACE, IMAGE_INDEX = "config.json", "split.json", "space.json", "images.json"
CHECKPOINT, WEIGHTS = "checkpoint.pt", "supernet.safetensors"
METRICS_JSONL, METRICS_CSV, CURVE = "metrics.jsonl", "metrics.csv", "learning_curve.png"
# hwnas.training.finetune
FINETUNE, FINETUNED_WEIGHTS, FINETUNE_REPORT = "finetune.json", "model.safetensors", "finetune_report.json"
# hwnas.subnet_search.runner / report
BEST, STATE, HISTORY, PARETO, PARETO_PLOT = "best.json", "search_state.json", "history.csv", "pareto.csv", "pareto.png"
# hwnas.deploy.exporter / artifacts
MANIFEST, EXPORT_CONFIG = "manifest.json", "config.json"
ARTIFACTS = {"onnx": "model.onnx", "pt2": "model.pt2", "safetensors": "model.safetensors", "tensorrt": "model.engine"}
# hwnas.latency.validate
VALIDATE_JSON, VALIDATE_CSV, VALIDATE_PLOT = "validate.json", "validate.csv", "validate.png"

EXPECTED = (
    "a training run (config.json + checkpoint), a fine-tuning (finetune.json), a search (best.json), "
    "an export (manifest.json), a validation (validate.json) or a latency table (.csv with its .json)"
)


class ShowError(HwnasError):
    """A path that is no hwnas output, or an output whose files cannot be read."""


@dataclass
class FolderSummary:
    """What one hwnas output is (`kind`, one of `KINDS`), what it holds (a line per file or group of
    files), its key figures, and the PNG plots present in it."""

    kind: str
    path: str
    holds: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (NaN and infinities as null)."""
        return _jsonable(asdict(self))

    def lines(self) -> list[str]:
        """The summary as text for a terminal: a heading, then what the output holds, its figures
        and its plots."""
        out = [f"{KIND_NAMES[self.kind]}: {self.path}"]
        if self.holds:
            out += ["holds:", *(f"  {line}" for line in self.holds)]
        if self.figures:
            out.append("figures:")
            width = max(len(k) for k in self.figures)
            for key, value in self.figures.items():
                text = _text(key, value)
                if isinstance(value, (Mapping, list)) and len(value) > 1 and width + len(text) > 96:
                    out.append(f"  {key}:")  # one entry a line
                    items = value.items() if isinstance(value, Mapping) else ((None, v) for v in value)
                    out += [f"    {'' if k is None else f'{k}: '}{_text(_child_key(key, k), v)}" for k, v in items]
                else:
                    out.append(f"  {key.ljust(width)}  {text}")
        if self.plots:
            out += ["plots:", *(f"  {p}" for p in self.plots)]
        return out


def summarise(path: str | Path) -> FolderSummary:
    """The summary of the hwnas output at `path`: a run, fine-tuning, search, export or validation
    folder, or a latency table (its .csv or its .json sidecar). A stage's own file (a search's
    best.json, an export's manifest.json, ...) stands for its folder. Anything else is a one-line
    `ShowError` saying what was expected."""
    p = Path(path)
    if not p.exists():
        raise ShowError(f"{p} does not exist; expected {EXPECTED}")
    if p.is_file():
        table = _table_csv(p)
        if table is not None or _table_header(p):
            return _table(table or p)
        if p.name in _STAGE_FILES or p.name.startswith("best-"):
            kind = _folder_kind(p.parent)
            if kind is not None:
                return _SUMMARISERS[kind](p.parent)
        raise ShowError(f"{p} is not an hwnas output: expected {EXPECTED}")
    kind = _folder_kind(p)
    if kind is None:
        raise ShowError(f"{p} is not an hwnas output folder: expected {EXPECTED}{_inside(p)}")
    return _SUMMARISERS[kind](p)


# ---- detection --------------------------------------------------------------------------------------
def _folder_kind(folder: Path) -> str | None:
    """Which stage wrote `folder`, from the files only that stage writes (an export also holds a
    config.json, so the manifest is looked for before a run's config)."""
    if (folder / MANIFEST).is_file():
        return "export"
    if (folder / FINETUNE).is_file():
        return "finetune"
    if (folder / BEST).is_file() or (folder / STATE).is_file():
        return "search"
    if (folder / VALIDATE_JSON).is_file():
        return "validation"
    if (folder / CONFIG).is_file() and any((folder / f).is_file() for f in (CHECKPOINT, WEIGHTS, SPLIT, METRICS_JSONL)):
        config = _read_json_or_none(folder / CONFIG)
        if isinstance(config, Mapping) and "space" in config and "epochs" in config:
            return "run"
    return None


def _table_csv(path: Path) -> Path | None:
    """The table CSV `path` is (the CSV or its sidecar), when its sidecar holds a fingerprint."""
    csv_path = path if path.suffix == ".csv" else path.with_suffix(".csv") if path.suffix == ".json" else None
    if csv_path is None or not csv_path.is_file() or not csv_path.with_suffix(".json").is_file():
        return None
    sidecar = _read_json_or_none(csv_path.with_suffix(".json"))
    # a validation's validate.json records its table's fingerprint too, but not as a table's sidecar does
    is_sidecar = isinstance(sidecar, Mapping) and "fingerprint" in sidecar and "calibrated" not in sidecar
    return csv_path if is_sidecar else None


def _table_header(path: Path) -> bool:
    """Whether `path` is a CSV with a latency table's first columns (whatever state its sidecar is in)."""
    if path.suffix != ".csv":
        return False
    try:
        with open(path, newline="") as f:
            return next(csv.reader(f), [])[:2] == ["key", "kind"]
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def _inside(folder: Path) -> str:
    """'; it holds ...': the hwnas outputs one level down (a demo's folder, a run's search/), if any."""
    found = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return ""
    for entry in entries:
        if entry.is_dir() and (kind := _folder_kind(entry)):
            found.append(f"{entry.name}/ ({KIND_NAMES[kind]})")
        elif entry.is_file() and entry.suffix == ".csv" and _table_csv(entry):
            found.append(f"{entry.name} (latency table)")
    if not found:
        return ""
    more = f" and {len(found) - 4} more" if len(found) > 4 else ""
    return f"; it holds {', '.join(found[:4])}{more}: show one of those"


# ---- the kinds ----------------------------------------------------------------------------------------
def _run(folder: Path) -> FolderSummary:
    s = FolderSummary("run", str(folder))
    config = _read_json(folder / CONFIG)
    metrics = _metrics(folder)
    planned = config.get("epochs")
    done = int(metrics[-1]["epoch"]) if metrics else 0
    space = _space_ref(folder / SPACE, config.get("space"))
    s.holds.append(
        f"{CONFIG}: settings ({config.get('space')} on {config.get('data')}, {_plural(planned, 'epoch')}, "
        f"{config.get('sampling')} sampling, seed {config.get('seed')})"
    )
    if (folder / SPACE).is_file():
        s.holds.append(f"{SPACE}: the space's declaration ({space})")
    split = _split(folder / SPLIT)
    if split:
        s.holds.append(
            f"{SPLIT}: {split['train']:,} train / {split['search_val']:,} search-val / {split['test']:,} test "
            f"images of {split['source']} (search-val rule {split['search_val_rule']})"
        )
    if (folder / IMAGE_INDEX).is_file():
        s.holds.append(f"{IMAGE_INDEX} ({_size(folder / IMAGE_INDEX)}): the data folder's file listing")
    if (folder / CHECKPOINT).is_file():
        s.holds.append(f"{CHECKPOINT} ({_size(folder / CHECKPOINT)}): checkpoint of epoch {done}/{planned}")
    if (folder / WEIGHTS).is_file():
        s.holds.append(f"{WEIGHTS} ({_size(folder / WEIGHTS)}): supernet weights{_tensors(folder / WEIGHTS)}")
    s.holds += _metrics_lines(folder, metrics, "loss, lr and search-val top-1 of the probe subnets")
    searches = _searches(folder / "search")
    if searches:
        s.holds.append(f"search/: {_plural(len(searches), 'search', 'searches')}: {', '.join(searches)}")
    last = metrics[-1] if metrics else {}
    s.figures = _present(
        {
            "space": space,
            "data": config.get("data"),
            "epochs": f"{done}/{planned}" + ("" if planned is None or done >= planned else " (not finished)"),
            "sampling": config.get("sampling"),
            "lr": config.get("lr"),
            "batch_size": config.get("batch_size"),
            "seed": config.get("seed"),
            "top1_search_val_final": {
                k.removeprefix("val_top1_"): v for k, v in last.items() if k.startswith("val_top1_")
            }
            or None,
            "loss_final": last.get("loss"),
            "training_s": round(sum(float(m.get("seconds", 0)) for m in metrics), 1) if metrics else None,
            "failed_images": sum(int(m.get("failed_images", 0)) for m in metrics) or None,
            "split": {k: split[k] for k in ("train", "search_val", "test")} if split else None,
            "searches": searches or None,
        }
    )
    s.plots = _plots(folder)
    return s


def _finetune(folder: Path) -> FolderSummary:
    s = FolderSummary("finetune", str(folder))
    settings = _read_json(folder / FINETUNE)
    report = _read_json_or_none(folder / FINETUNE_REPORT) or {}
    metrics = _metrics(folder)
    planned, done = settings.get("epochs"), int(metrics[-1]["epoch"]) if metrics else 0
    arch = settings.get("arch") or {}
    digest = report.get("digest") or _safetensors_meta(folder / FINETUNED_WEIGHTS).get("arch")
    how = "from scratch" if settings.get("from_scratch") else "from inherited weights"
    s.holds.append(
        f"{FINETUNE}: settings (arch {digest or '?'} of run {settings.get('run')}, {how}, {_plural(planned, 'epoch')} "
        f"at lr {_num(settings.get('lr'))}{', distilled' if settings.get('distill') else ''})"
    )
    if (folder / CHECKPOINT).is_file():
        s.holds.append(f"{CHECKPOINT} ({_size(folder / CHECKPOINT)}): checkpoint of epoch {done}/{planned}")
    if (folder / FINETUNED_WEIGHTS).is_file():
        s.holds.append(
            f"{FINETUNED_WEIGHTS} ({_size(folder / FINETUNED_WEIGHTS)}): the subnet's fine-tuned weights"
            f"{_tensors(folder / FINETUNED_WEIGHTS)}"
        )
    s.holds += _metrics_lines(folder, metrics, "loss, lr and search-val top-1")
    if report:
        s.holds.append(f"{FINETUNE_REPORT}: search-val and test top-1 and loss before and after")
    before, after = report.get("before") or {}, report.get("after") or {}
    s.figures = _present(
        {
            "space": arch.get("space"),
            "arch": _arch_text(arch),
            "digest": digest,
            "source_run": settings.get("run"),
            "start": how,
            "epochs": f"{done}/{planned}" + ("" if report else " (no report yet: not finished)"),
            "lr": settings.get("lr"),
            "distill": settings.get("distill"),
            "top1_before": {k: v.get("top1") for k, v in before.items()} or None,
            "top1_after": {k: v.get("top1") for k, v in after.items()} or None,
            "loss_before": {k: v.get("loss") for k, v in before.items()} or None,
            "loss_after": {k: v.get("loss") for k, v in after.items()} or None,
        }
    )
    s.plots = _plots(folder)
    return s


def _search(folder: Path) -> FolderSummary:
    s = FolderSummary("search", str(folder))
    best = _read_json_or_none(folder / BEST)
    state = _read_json_or_none(folder / STATE) or {}
    records = (state.get("state") or {}).get("records") or []
    if best is not None:
        s.holds.append(f"{BEST}: the winner ({best.get('digest')}) and the search's report")
    for extra in sorted(folder.glob("best-*.json")):
        s.holds.append(f"{extra.name}: the winner within one of the budgets")
    history, pareto = _csv_rows(folder / HISTORY), _csv_rows(folder / PARETO)
    if history is not None:
        s.holds.append(f"{HISTORY}: {_plural(history, 'evaluated arch')}")
    if pareto is not None:
        s.holds.append(f"{PARETO}: {_plural(pareto, 'arch')} on the Pareto front")
    if state:
        inner = state.get("state") or {}
        s.holds.append(
            f"{STATE}: {_plural(inner.get('generation', 0), 'generation')} and {_plural(len(records), 'record')}"
            f" ({'all generations run' if inner.get('done') else 'resumable'})"
        )
    if (folder / "measure").is_dir():
        s.holds.append("measure/: the winner's end-to-end timing (--measure)")
    if best is None:  # a killed or running search: what its state says so far
        top = max(records, key=lambda r: (r.get("top1", 0), -(r.get("loss") or math.inf)), default=None)
        context = state.get("context") or {}
        s.figures = _present(
            {
                "strategy": (context.get("settings") or {}).get("strategy"),
                "space": context.get("space"),
                "budget": _limits(context.get("budget") or {}),
                "finished": False,
                "evaluations": len(records),
                "generations_run": (state.get("state") or {}).get("generation"),
                "best_so_far": top and f"{top.get('digest')}: search-val top-1 {top.get('top1'):.2f}%",
                "notes": [f"no {BEST} yet: the search was stopped or is running; rerun its command to finish it"],
            }
        )
    else:
        predicted = best.get("predicted_latency") or {}
        by_device = best.get("predicted_latency_by_device") or {}
        settings = best.get("settings") or {}
        s.figures = _present(
            {
                "space": best.get("space"),
                "strategy": best.get("strategy"),
                "preset": best.get("preset") if best.get("preset") not in (None, "default") else None,
                "window": f"{best['min_fraction']:g}-1 x the budget" if best.get("min_fraction") else None,
                "seed": best.get("seed"),
                "budget": _budget_text(best.get("budget") or {}),
                "budgets": [_per_budget(e) for e in best.get("per_budget") or []] or None,
                "winner": best.get("digest"),
                "arch": _arch_text(best.get("arch") or {}),
                "top1_search_val": best.get("top1_search_val"),
                "top1_test": best.get("top1_test"),
                "predicted_latency_ms": predicted.get("latency_ms"),
                "device": predicted.get("device"),
                "latency_stat": best.get("latency_stat") if best.get("latency_stat") not in (None, "p50") else None,
                "predicted_ms_by_device": {d: p.get("latency_ms") for d, p in by_device.items()}
                if len(by_device) > 1
                else None,
                "measured_latency_ms": best.get("measured_latency_ms"),
                "gmacs": best.get("flops_g"),
                "params_m": best.get("params_m"),
                "evaluations": best.get("evaluations"),
                "generations": f"{best.get('generations_run')} of {settings.get('generations')}, population "
                f"{settings.get('population')}"
                if settings
                else best.get("generations_run"),
                "search_s": best.get("seconds"),
                "notes": best.get("notes") or None,
            }
        )
    s.plots = _plots(folder)
    return s


def _export(folder: Path) -> FolderSummary:
    s = FolderSummary("export", str(folder))
    m = _read_json(folder / MANIFEST)
    artifacts: dict[str, Any] = m.get("artifacts") or {}
    for name, meta in artifacts.items():
        f = folder / name
        what = {
            "model.onnx": "ONNX",
            "model.pt2": "torch.export program",
            "model.safetensors": "weights for hwnas.load_model",
            "model.engine": "TensorRT engine",
            EXPORT_CONFIG: "arch and space for hwnas.load_model",
        }.get(name, "")
        if not f.is_file():
            s.holds.append(f"{name}: MISSING (the manifest lists it: {_bytes(meta.get('bytes'))})")
        elif f.stat().st_size != meta.get("bytes"):
            s.holds.append(
                f"{name} ({_size(f)}): {what}; CHANGED since the export (manifest: {_bytes(meta.get('bytes'))})"
            )
        else:
            s.holds.append(f"{name} ({_size(f)}): {what}")
    s.holds.append(f"{MANIFEST}: arch, accuracy, cost, predicted and measured latency, checks, versions, checksums")
    latency = m.get("latency") or {}
    predicted, measured = latency.get("predicted") or {}, latency.get("measured") or {}
    gate = m.get("gate")
    accuracy = m.get("accuracy_top1") or {}
    s.figures = _present(
        {
            "space": m.get("space"),
            "digest": m.get("digest"),
            "arch": _arch_text(m.get("arch") or {}),
            "weights": m.get("weights"),
            "source_run": m.get("run"),
            "precision": m.get("precision"),
            "batch_size": m.get("batch_size"),
            "artifacts_bytes": {name: meta.get("bytes") for name, meta in artifacts.items()} or None,
            "top1_search_val": accuracy.get("search_val"),
            "top1_test": accuracy.get("test"),
            "params": m.get("params"),
            "gmacs": m.get("flops_g"),
            "predicted_latency_ms": predicted.get("latency_ms"),
            "device": predicted.get("device"),
            "measured_latency_ms": measured.get("latency_ms"),
            "measured_vs_predicted_pct": measured.get("vs_predicted_pct"),
            "not_measured": latency.get("not_measured"),
            "gate": gate and ("passed: " if gate.get("passed") else "FAILED: ") + str(gate.get("reason")),
            "checks_max_abs_diff": {k: v.get("max_abs_diff") for k, v in (m.get("checks") or {}).items()} or None,
            "skipped": m.get("skipped") or None,
        }
    )
    s.plots = _plots(folder)
    return s


def _table(path: Path) -> FolderSummary:
    from hwnas.latency.local import LocalCalibrations
    from hwnas.latency.table import LatencyTable, TableError, fingerprint_summary

    try:
        table = LatencyTable.load(path)
    except TableError as exc:
        raise ShowError(cli_message(exc)) from None
    s = FolderSummary("table", str(path))
    side = LatencyTable.sidecar_path(path)
    meta = _read_json(side)
    fp = table.fingerprint
    kinds = table.rows["kind"].value_counts()
    tails = {stat: sorted(by_space) for stat, by_space in table.tail_calibrations.items()}
    s.holds.append(f"{path.name}: {len(table)} block rows ({', '.join(f'{n} {k}' for k, n in kinds.items())})")
    s.holds.append(
        f"{side.name}: the setup's fingerprint and {len(table.calibrations)} calibration(s)"
        + "".join(f", {len(v)} for {k.removesuffix('_ms')}" for k, v in tails.items())
    )
    local_file = LocalCalibrations(path).path
    local = _local_calibrations(local_file)
    if local is not None:
        s.holds.append(f"local calibrations: {local_file} ({len(local)} entr{'y' if len(local) == 1 else 'ies'})")
    work = sorted(p.name for p in path.parent.glob(f".{path.stem}.*.work"))
    if work:
        s.holds.append(f"unfinished profile(s), resumable: {', '.join(work)}")
    p50 = table.rows["p50_ms"].astype(float)
    protocol = fp.get("protocol") or {}
    s.figures = _present(
        {
            "setup": fingerprint_summary(fp),
            "cpu": " / ".join(str(fp[k]) for k in ("cpu_id", "cpu_isa") if fp.get(k)) or None,
            "gpu": fp.get("gpu_model"),
            "exporter": f"{fp.get('exporter', '?')} (torch {fp.get('torch')}, opset {fp.get('opset')})"
            if fp.get("torch")
            else None,
            "protocol": _protocol_text(protocol) if protocol else None,
            "created": fp.get("created"),
            "updated": meta.get("updated"),
            "format": meta.get("format", 1),
            "spaces": [_space_key_text(k) for k in sorted(table.calibrations)],
            "rows": len(table),
            "rows_fitted": len(table.filled_rows) or None,  # fitted from measured rows, not measured
            "rows_by_kind": {str(k): int(n) for k, n in kinds.items()},
            "p50_ms_range": [float(p50.min()), float(p50.max())] if len(p50) else None,
            "round_spread_median": float(table.measured_rows()["round_spread"].astype(float).median())
            if len(table.measured_rows())
            else None,
            "calibrations": {
                k: f"a {c.a:.4g}, b {c.b:+.4g} ms, n {c.n}" for k, c in sorted(table.calibrations.items())
            },
            **{f"{k.removesuffix('_ms')}_calibrated": v for k, v in tails.items()},
            "local_calibrations": local or None,
        }
    )
    return s


def _validation(folder: Path) -> FolderSummary:
    s = FolderSummary("validation", str(folder))
    v = _read_json(folder / VALIDATE_JSON)
    s.holds.append(f"{VALIDATE_JSON}: agreement of the prediction with each process, and of the processes (the floor)")
    rows = _csv_rows(folder / VALIDATE_CSV)
    if rows is not None:
        s.holds.append(f"{VALIDATE_CSV}: {rows} subnets, predicted and measured in each process")
    if (folder / "work").is_dir():
        s.holds.append("work/: the subnets' ONNX files and measurements")
    calibrated, floor = v.get("calibrated") or [], v.get("floor_process_vs_process") or []
    against, against_floor = worst(calibrated), worst(floor)
    uncalibrated, macs_only = worst(v.get("uncalibrated_sum") or []), worst(v.get("macs_only") or [])
    c = v.get("calibration") or {}
    source = v.get("calibration_source")
    s.figures = _present(
        {
            "space": v.get("space"),
            "device": v.get("device"),
            "backend": v.get("backend"),
            "table": v.get("table"),
            "statistic": str(v.get("statistic") or "p50_ms").removesuffix("_ms"),
            "subnets": v.get("n"),
            "processes": v.get("processes"),
            "seed": v.get("seed"),
            "mape_pct": against.get("mape_pct"),
            "within_5pct": against.get("within_5pct"),
            "within_10pct": against.get("within_10pct"),
            "kendall_tau": against.get("kendall_tau"),
            "max_error_pct": against.get("max_error_pct"),
            "floor": {k: against_floor[k] for k in ("mape_pct", "within_10pct", "kendall_tau")}
            if against_floor
            else None,
            "uncalibrated_mape_pct": uncalibrated.get("mape_pct"),
            "macs_only": {k: macs_only[k] for k in ("mape_pct", "within_10pct", "kendall_tau")} if macs_only else None,
            "measured_ms_range": v.get("measured_ms_range"),
            "calibration": f"a {c['a']:.4g}, b {c['b']:+.4g} ms, n {c['n']}" if {"a", "b", "n"} <= set(c) else None,
            "calibration_source": describe_outcome(source)
            if isinstance(source, Mapping) and "how" in source
            else source,
        }
    )
    s.plots = _plots(folder)
    return s


_SUMMARISERS: dict[str, Callable[[Path], FolderSummary]] = {
    "run": _run,
    "finetune": _finetune,
    "search": _search,
    "export": _export,
    "validation": _validation,
}
_STAGE_FILES = {
    CONFIG,
    SPLIT,
    SPACE,
    IMAGE_INDEX,
    CHECKPOINT,
    WEIGHTS,
    METRICS_JSONL,
    METRICS_CSV,
    CURVE,
    FINETUNE,
    FINETUNED_WEIGHTS,
    FINETUNE_REPORT,
    BEST,
    STATE,
    HISTORY,
    PARETO,
    PARETO_PLOT,
    MANIFEST,
    *ARTIFACTS.values(),
    VALIDATE_JSON,
    VALIDATE_CSV,
    VALIDATE_PLOT,
}


# ---- reading ------------------------------------------------------------------------------------------
def _read_json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_json(path: Path) -> dict[str, Any]:
    """A stage's JSON file, or a one-line error naming it."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ShowError(f"cannot read {path} ({exc.strerror})") from None
    except ValueError as exc:
        raise ShowError(f"{path} is not valid JSON ({exc}); the output is damaged") from None
    if not isinstance(data, dict):
        raise ShowError(
            f"{path} holds a JSON {type(data).__name__}, not the object its stage writes; the output is damaged"
        )
    return data


def _metrics(folder: Path) -> list[dict[str, Any]]:
    """The per-epoch rows of metrics.jsonl (a torn last line, from a killed run, is left out)."""
    rows = []
    try:
        text = (folder / METRICS_JSONL).read_text()
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "epoch" in row:
            rows.append(row)
    return rows


def _metrics_lines(folder: Path, metrics: list[dict[str, Any]], what: str) -> list[str]:
    files = [f for f in (METRICS_JSONL, METRICS_CSV) if (folder / f).is_file()]
    return [f"{', '.join(files)}: {_plural(len(metrics), 'epoch')} of {what}"] if files else []


def _split(path: Path) -> dict[str, Any] | None:
    data = _read_json_or_none(path)
    if not isinstance(data, Mapping):
        return None
    return {
        "source": data.get("source"),
        "search_val_rule": data.get("search_val_rule", "15%"),
        **{k: len(data.get(k) or ()) for k in ("train", "search_val", "test")},
    }


def _space_ref(path: Path, name: Any) -> Any:
    """`name@digest` of a run's stored space (the name alone if it cannot be rebuilt here)."""
    from hwnas.spaces import space_from_dict

    data = _read_json_or_none(path)
    if not isinstance(data, Mapping):
        return name
    try:
        return space_from_dict(data).ref
    except HwnasError:
        return data.get("name", name)


def _space_key_text(key: str) -> str:
    """A table's calibration key, and whether it is a shipped space's current content."""
    from hwnas.spaces import get_space, list_spaces

    name, _, digest = key.partition("@")
    if name not in list_spaces() or not digest:
        return key
    return key if get_space(name).ref == key else f"{key} (not the content of the shipped {name})"


def _searches(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return [p.name for p in sorted(folder.iterdir()) if p.is_dir() and ((p / BEST).is_file() or (p / STATE).is_file())]


def _csv_rows(path: Path) -> int | None:
    try:
        with open(path, newline="") as f:
            return max(sum(1 for _ in csv.reader(f)) - 1, 0)
    except OSError:
        return None


def _safetensors_meta(path: Path) -> dict[str, Any]:
    return _safetensors_header(path).get("__metadata__") or {}


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor names, dtypes, shapes and the metadata): its
    first 8 bytes give the header's length; no tensor is read."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100_000_000:
                return {}
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error):
        return {}
    return header if isinstance(header, dict) else {}


def _tensors(path: Path) -> str:
    header = _safetensors_header(path)
    tensors = {k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, Mapping)}
    if not tensors:
        return ""
    values = sum(math.prod(v.get("shape") or [1]) for v in tensors.values())
    space = (header.get("__metadata__") or {}).get("space")
    return f", {len(tensors)} tensors, {values:,} values" + (f", space {space}" if space else "")


def _local_calibrations(path: Path) -> list[str] | None:
    """The entries of a table's local-calibration file, one line each (None: no file)."""
    if not path.is_file():
        return None
    data = _read_json_or_none(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("entries"), list):
        return ["(the file is corrupted: ignored on use, and rewritten by the next check)"]
    lines = []
    for e in data["entries"]:
        try:
            setup = e.get("setup") or {}
            where = setup.get("gpu_model") or setup.get("cpu_id") or setup.get("cpu_model") or "?"
            versions = ", ".join(f"{k} {setup[k]}" for k in ("backend_version", "torch") if setup.get(k))
            lines.append(f"{e['space']} on {where} ({versions}): {describe_outcome(e)}")
        except (KeyError, TypeError, AttributeError, ValueError):
            lines.append("(an unreadable entry)")
    return lines


def _plots(folder: Path) -> list[str]:
    return [str(p) for p in sorted(folder.glob("*.png"))]


# ---- wording ------------------------------------------------------------------------------------------
_UNITS = {"latency_ms": "ms", "flops_g": "GMACs", "params_m": "M params"}


def _metric(metric: str) -> tuple[str, str]:
    """(name, unit) of a budget metric: latency_ms, latency_ms@DEVICE, flops_g, params_m."""
    base, _, device = metric.partition("@")
    return (
        f"latency on {device}" if device else base.removesuffix("_ms").removesuffix("_g").removesuffix("_m"),
        _UNITS.get(base, ""),
    )


def _limits(limits: Mapping[str, Any]) -> str | None:
    return ", ".join(f"{_metric(k)[0]} <= {_num(v)} {_metric(k)[1]}" for k, v in limits.items()) or None


def _budget_text(budget: Mapping[str, Any]) -> str | None:
    """A search's budget: each limit and the range the space spans under it."""
    parts = []
    for metric, b in budget.items():
        name, unit = _metric(metric)
        parts.append(
            f"{name} <= {_num(b.get('limit'))} {unit} (the space spans {_num(b.get('min'))}-{_num(b.get('max'))})"
        )
    return "; ".join(parts) or None


def _per_budget(entry: Mapping[str, Any]) -> str:
    limits = _limits({k: b.get("limit") for k, b in (entry.get("budget") or {}).items()})
    if entry.get("arch") is None:
        return f"{limits}: {entry.get('note', 'no arch')} ({entry.get('file')})"
    latency = (entry.get("predicted_latency") or {}).get("latency_ms")
    return (
        f"{limits}: {entry.get('digest')}, search-val top-1 {_pct(entry.get('top1_search_val'))}, "
        f"predicted {_num(latency)} ms ({entry.get('file')})"
    )


def _arch_text(arch: Mapping[str, Any]) -> str | None:
    """An arch's genes on one line: 'embed_dim 64, depth 5, num_heads 3/3/3/3/2, ...'."""
    genes = {k: v for k, v in arch.items() if k not in ("space", "space_options", "space_digest", "space_spec")}
    return (
        ", ".join(f"{k} {'/'.join(_num(x) for x in v) if isinstance(v, list) else _num(v)}" for k, v in genes.items())
        or None
    )


def _protocol_text(p: Mapping[str, Any]) -> str:
    text = f"groups of {p.get('group_size', '?')}, {p.get('rounds', '?')} rounds of {_num(p.get('round_s'))} s"
    if p.get("round_tolerance"):
        return text + f", rounds within {_num(100 * p['round_tolerance'])}% of the fastest kept"
    return text + ", every round kept"


def _present(figures: Mapping[str, Any]) -> dict[str, Any]:
    """The figures that have a value."""
    return {k: v for k, v in figures.items() if v is not None and v != ""}


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else str(value)


def _plural(n: Any, word: str, plural: str | None = None) -> str:
    return f"{_num(n)} {word if n == 1 else plural or word + 's'}"


def _pct(value: Any) -> str:
    return f"{value:.2f}%" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _bytes(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _size(path: Path) -> str:
    return _bytes(path.stat().st_size)


def _percent(key: str) -> bool:
    return key.startswith("top1") or key.endswith("_pct") or key in ("within_10pct",)


def _child_key(key: str, child: Any) -> str:
    """The key an entry of a dict or list figure is formatted by: its parent's where that carries
    the unit (percentages, bytes), else its own."""
    return key if child is None or _percent(key) or key.endswith("_bytes") else str(child)


def _text(key: str, value: Any) -> str:
    """A figure for the terminal: percentages with a % sign, sizes in kB/MB, floats to 4 significant
    digits."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_text(_child_key(key, k), v)}" for k, v in value.items())
    if isinstance(value, list):
        return (
            ", ".join(_text(key, v) for v in value)
            if not key.endswith("range")
            else "-".join(_text(key, v) for v in value)
        )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if _percent(key):
            return _pct(value)
        if key.endswith("_bytes"):
            return _bytes(value)
    return _num(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
