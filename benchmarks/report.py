"""The results pages, generated from the committed benchmark JSON: `docs/results/*.md` (with the
plots copied to `docs/results/img/`) and the headline table between the README's
`<!-- results:begin -->` and `<!-- results:end -->` lines. Nothing on those pages is typed by hand:
every figure is formatted here from `benchmarks/results/**/*.json`, and every result names its date,
machine, versions and the command that produced it.

    .venv/bin/python benchmarks/report.py              # write docs/results/ and the README's results block
    .venv/bin/python benchmarks/report.py --check      # exit 1, listing what differs from the committed files
    .venv/bin/python benchmarks/report.py --dropped    # the results left off the pages, each with its reason

Provenance per result: the JSON's own "provenance" record (`benchmarks/provenance.py`, written by every
benchmark) when it has one; otherwise what the JSON records of its machine (in whatever shape), the
author date of the last commit that changed the file, and the invocation the benchmark's docstring
documents. Same input, same bytes: no clock, everything in a fixed order.

A result is left off when it is stale: superseded by another committed result of the same
measurement, or measured on a configuration the code no longer has (a timing protocol, a latency
table, a space or a training recipe that has since changed). `DROPPED` lists those committed runs with
the reason; a rerun of the benchmark records provenance and is shown again.
"""

from __future__ import annotations

import argparse
import ast
import filecmp
import itertools
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.latency.agreement import worst

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "results"
README = ROOT / "README.md"
SHIPPED_TABLES = ROOT / "latency_tables"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

# Committed runs left off the pages (they record no provenance: a rerun, which does, is shown).
DROPPED: dict[str, str] = {
    "benchmarks/results/multi_device_run1.json": "a first run of multi_device.py, superseded by multi_device.json "
    "(same benchmark, same day, rerun after `search --measure` moved to a fresh process)",
    "benchmarks/results/search.json": "its supernet was trained under config format 1 (draws over distinct archs, "
    "weight decay on position embeddings) and its budget came from the CPU table shipped on 2026-11-21 (now "
    "benchmarks/fixtures/): it spans 0.395-1.156 ms there, 0.591-1.840 ms with the shipped table (demo.json)",
    "benchmarks/results/search_glit.json": "searched on the 40-epoch glit-digits supernet, while the family's digits "
    "budget is now 160 epochs at lr 3e-3 (the GLiT family record's small-data budget)",
    "benchmarks/results/glit_subnets_kernels_7_15_31.json": "glit-digits with kernel sizes 7/15/31, a space no longer "
    "shipped (space digest 6e8b0499; glit-digits is now c350df15), trained under config format 1",
    "benchmarks/results/supernet.json": "trained under config format 1: its 'uniform' drew distinct archs (today's "
    "`--sampling distinct`) with weight decay on position embeddings; samplers.json measures both samplers on "
    "3 seeds with today's recipe",
    "benchmarks/results/weight_sharing.json": "trained on 2026-11-21 under config format 1 (draws over distinct archs, "
    "weight decay on position embeddings): a rerun trains with today's defaults",
    "benchmarks/results/multi_arch.json": "trained on 2026-11-28 under config format 1: its 'uniform' row drew distinct "
    "archs, and multi-architectural steps drew distinct archs too; a rerun times and trains other draws",
    "benchmarks/results/drift.json": "measured against the CPU table shipped on 2026-11-23 (Zen 5, family 26 model 2; "
    "the shipped table is now the Zen 3 one) with the timing protocol of groups of 8, every round kept",
    "benchmarks/results/validate_old_protocol_resnas-digits/validate.json": "the timing protocol of groups of 8 with "
    "every round kept, superseded by groups of 32 with rounds within 10% of the fastest",
    "benchmarks/results/validate_recheck_glit-digits/validate.json": "a recheck of the shipped table's glit-digits in "
    "3 processes; the table's own validation is latency_table.json's (and the Xeon table's)",
    "benchmarks/results/validate_control_resnas-digits/validate.json": "a control run of the shipped table's "
    "resnas-digits validation; the table's own validation is latency_table.json's",
}

PAGES: dict[str, tuple[str, str]] = {  # slug: (title, what the page holds)
    "latency-tables": (
        "Latency tables",
        "How well the latency tables predict subnets measured end to end, and how "
        "far two measurements of the same subnets agree.",
    ),
    "supernet": (
        "Supernet training",
        "Test top-1 of subnets with the weights they inherit from a trained supernet, per sampler and training recipe.",
    ),
    "search": (
        "Search",
        "Subnet search under latency budgets: its winners, their measured latency, and how the "
        "supernet ranks subnets against training them alone.",
    ),
    "demo": ("Demo", "`hwnas demo` end to end: train, latency table, search, fine-tune and export."),
    "data-scale": (
        "Data at scale",
        "The ImageNet-scale data path on a synthetic JPEG folder: listing, loading, fitness evaluation and memory.",
    ),
    "cost-counting": ("Cost counting", "Speed of the parameter and MAC counters."),
}


# ---------------------------------------------------------------- formatting


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}%"


def signed(x: float, digits: int = 1) -> str:
    return f"{x:+.{digits}f}".replace("-", "−")


def signed_pct(x: float, digits: int = 1) -> str:
    return signed(x, digits) + "%"


def pct_span(values: Iterable[float], digits: int = 1) -> str:
    """A range of percentages, one % sign: 72–100%."""
    return span(values, lambda x: f"{x:.{digits}f}") + "%"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def num(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def ms(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def span(values: Iterable[float], fmt: Callable[[float], str]) -> str:
    values = list(values)
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)}"


def tau(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def table(headers: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    """A Markdown table; `align` has one letter per column (l or r, default l)."""
    align = align.ljust(len(headers), "l")
    rule = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(r) + " |" for r in [headers, rule, *rows]]


def arch_text(arch: dict[str, Any]) -> str:
    """An arch in words (AutoFormer- and GLiT-style genes; other genes as they are)."""

    def slash(values: list[Any]) -> str:
        return "/".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)

    if "embed_dim" in arch and "num_heads" in arch:
        return (
            f"embed {arch['embed_dim']}, depth {arch['depth']}, heads {slash(arch['num_heads'])}, "
            f"MLP ratio {slash(arch['mlp_ratio'])}"
        )
    if "global_heads" in arch:
        return f"G {slash(arch['global_heads'])}, low-level {slash(arch['low_level'])}"
    return ", ".join(
        f"{k} {slash(v) if isinstance(v, list) else v}" for k, v in arch.items() if k not in ("space", "space_digest")
    )


def protocol_text(p: dict[str, Any]) -> str:
    kept = (
        "every round kept"
        if p.get("round_tolerance") is None
        else f"rounds more than {100 * p['round_tolerance']:g}% slower than a model's fastest dropped"
    )
    return (
        f"models timed in groups of {p['group_size']}, each warmed up (≥ {p['warmup_runs']} runs, ≥ "
        f"{p['warmup_s']:g} s), then {p['rounds']} rounds of ≥ {p['round_s']:g} s per model; {kept}"
    )


# ---------------------------------------------------------------- sources and provenance


@dataclass
class Source:
    """One results JSON."""

    path: Path

    @property
    def rel(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def data(self) -> dict[str, Any]:
        return _load(self.path)


_CACHE: dict[Path, Any] = {}


def _load(path: Path) -> Any:
    if path not in _CACHE:
        _CACHE[path] = json.loads(path.read_text())
    return _CACHE[path]


def git_date(path: Path) -> str | None:
    """Author date of the last commit that changed `path` (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%as", "--", str(path)], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return out or None


def documented_commands(script: str) -> list[str]:
    """The invocations a benchmark's module docstring documents (continuation lines joined)."""
    path = ROOT / "benchmarks" / f"{script}.py"
    if not path.exists():
        return []
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    commands: list[str] = []
    for line in doc.splitlines():
        text = line.strip()
        if text.startswith((".venv/bin/python benchmarks/", "python benchmarks/")):
            commands.append(text)
        elif commands and line.startswith("        ") and text and commands[-1].endswith(("\\", "]", "...")):
            commands[-1] = f"{commands[-1].rstrip(chr(92)).rstrip()} {text}"
    return [c.split("  #")[0].strip() for c in commands]


def command_of(src: Source, script: str, default_out: str | None = None) -> str:
    d = src.data
    if isinstance(d.get("provenance"), dict) and d["provenance"].get("command"):
        return d["provenance"]["command"]
    if isinstance(d.get("command"), str) and not documented_commands(script):
        return d["command"]
    documented = documented_commands(script)
    for c in documented:  # the invocation that writes this very file
        if src.rel in c.split():
            return c
    if documented and (default_out is None or default_out == src.rel):
        return documented[0]
    if documented:
        return f"{documented[0]} --out {src.rel}"
    return f"python benchmarks/{script}.py"


MACHINE_KEYS = {
    "cpu_model": ("cpu_model", "cpu"),
    "cpu_id": ("cpu_id",),
    "cores": ("cores", "cpu_count"),
    "gpu": ("gpu", "gpu_model", "gpu_name"),
}
VERSION_KEYS = {"torch": ("torch",), "onnxruntime": ("onnxruntime",), "python": ("python",), "hwnas": ("hwnas",)}


def machine_of(*records: Any) -> dict[str, Any]:
    """The machine from records of any of the shapes the JSONs use (first record that has a field wins)."""
    found: dict[str, Any] = {}
    for record in records:
        if isinstance(record, str) and "(" in record:  # "cpu (AMD EPYC, 1 thread(s)), onnxruntime ..."
            record = {"cpu_model": record.split("(", 1)[1].split(",")[0]}
        if not isinstance(record, dict):
            continue
        for key, names in MACHINE_KEYS.items():
            for name in names:
                if found.get(key) is None and isinstance(record.get(name), str | int):
                    found[key] = record[name]
    return found


def versions_of(*records: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for record in records:
        if isinstance(record, str) and "onnxruntime " in record:
            record = {"onnxruntime": record.split("onnxruntime ", 1)[1].split(",")[0]}
        if not isinstance(record, dict):
            continue
        if record.get("backend") == "onnxruntime" and record.get("backend_version"):
            found.setdefault("onnxruntime", record["backend_version"])
        for key, names in VERSION_KEYS.items():
            for name in names:
                if isinstance(record.get(name), str):
                    found.setdefault(key, record[name])
    return found


def machine_text(m: dict[str, Any]) -> str:
    text = m.get("cpu_model") or "CPU not recorded"
    if m.get("cpu_id"):
        text += f" ({m['cpu_id']})"
    text += f", {m['cores']} cores" if m.get("cores") else ", cores not recorded"
    if m.get("gpu"):
        text += f", GPU {m['gpu']}"
    return text


def versions_text(v: dict[str, str]) -> str:
    parts = [
        f"torch {v['torch']}" if v.get("torch") else "torch not recorded",
        f"onnxruntime {v['onnxruntime']}" if v.get("onnxruntime") else "onnxruntime not recorded",
    ]
    parts += [f"{label} {v[key]}" for key, label in (("python", "Python"), ("hwnas", "hwnas")) if v.get(key)]
    return ", ".join(parts)


@dataclass
class Provenance:
    date: str
    machines: list[dict[str, Any]]
    versions: dict[str, str]
    command: str
    data: list[str]
    recorded: str | None = None  # the run's own description of what it ran, when it records one

    def line(self) -> str:
        machines = "; ".join(machine_text(m) for m in self.machines)
        data = ", ".join(f"`{d}`" for d in self.data)
        recorded = f" (it records: {self.recorded})" if self.recorded and self.recorded != self.command else ""
        return (
            f"**Provenance.** Date: {self.date}. Machine: {machines}. Versions: {versions_text(self.versions)}. "
            f"Command: `{self.command}`{recorded}. Data: {data}."
        )


def provenance_of(
    src: Source,
    script: str,
    *,
    default_out: str | None = None,
    extra: Iterable[Source] = (),
    machine_records: Iterable[Any] = (),
) -> Provenance:
    d = src.data
    rec = d.get("provenance") if isinstance(d.get("provenance"), dict) else {}
    date = (rec.get("date") or d.get("date") or git_date(src.path) or "not recorded")[:10]
    records = [rec.get("machine"), *machine_records, d.get("machine"), d.get("fingerprint"), d.get("setup"), d]
    machines = [machine_of(*records)]
    versions = versions_of(
        rec.get("versions"),
        *machine_records,
        d.get("machine"),
        d.get("fingerprint"),
        d.get("setup"),
        *(d.get("setups") or {}).values(),
    )
    command = command_of(src, script, default_out)
    recorded = d.get("command") if isinstance(d.get("command"), str) else None
    return Provenance(date, machines, versions, command, [src.rel, *(s.rel for s in extra)], recorded)


def training_format(config: dict[str, Any] | None) -> int:
    """A training run's config format (configs saved without one are format 1: see TrainConfig.from_dict)."""
    return int((config or {}).get("format", 1))


# ---------------------------------------------------------------- sections


@dataclass
class Section:
    page: str
    order: int
    title: str
    body: list[str]
    provenance: Provenance
    images: list[tuple[Path, str]] = field(default_factory=list)  # (PNG, caption)
    headline: str | None = None  # the page's line on the index (the first section's that has one)


def image_name(png: Path) -> str:
    return "-".join(png.relative_to(RESULTS).parts)


def shipped_table_of(fingerprint: dict[str, Any]) -> str | None:
    """The shipped table (latency_tables/<name>.csv) whose sidecar records this fingerprint."""
    for sidecar in sorted(SHIPPED_TABLES.glob("*.json")):
        if _load(sidecar).get("fingerprint") == fingerprint:
            return sidecar.with_suffix(".csv").relative_to(ROOT).as_posix()
    return None


def profiled_by(d: dict) -> list[tuple[str, list[str]]]:
    """The earlier runs (`earlier_commands`) that last profiled a space of `d["results"]`, each with
    those spaces; a run whose spaces were all profiled again later is left out."""
    runs = [*d.get("earlier_commands", []), (d.get("provenance") or {}).get("command") or ""]
    last = {}
    for i, command in enumerate(runs):
        words = shlex.split(command)
        if "--refit" in words:  # measured nothing: the space's rows come from the run that profiled it
            continue
        at = words.index("--spaces") + 1 if "--spaces" in words else len(words)
        for space in itertools.takewhile(lambda w: not w.startswith("--"), words[at:]):
            last[space] = i
    spaces = [r["space"] for r in d["results"]]
    return [
        (runs[i], [s for s in spaces if last.get(s) == i])
        for i in sorted({last[s] for s in spaces if s in last})
        if i < len(runs) - 1
    ]


def latency_table_section(src: Source) -> Section:
    d, folder = src.data, src.path.parent
    fp = d["fingerprint"]
    shipped = shipped_table_of(fp)
    spaces = [r["space"] for r in d["results"]]
    validations = [
        Source(folder / f"validate_{s}" / "validate.json")
        for s in spaces
        if (folder / f"validate_{s}" / "validate.json").exists()
    ]
    n = sorted({r["validation"]["n"] for r in d["results"]})
    processes = sorted({r["validation"]["processes"] for r in d["results"]})
    calib = sorted({r["calibration_subnets"] for r in d["results"]})
    if shipped:
        title = "Shipped CPU table"
        what = f"The shipped table `{shipped}` ({d['setup']})"
    else:
        sampled_title = ", sampled within a time budget" if any("blocks_fitted" in r for r in d["results"]) else ""
        named = " and ".join(spaces) if len(spaces) <= 2 else f"{len(spaces)} spaces"
        title = f"{named} on {fp.get('cpu_model')} ({fp.get('cpu_id', 'processor not recorded')}){sampled_title}"
        what = f"A table profiled for {', '.join(spaces)} only, not shipped ({d['setup']})"
    sampled = any("blocks_fitted" in r for r in d["results"])
    how = (
        "within a time budget (the calibration subnets and a sample of the rows measured, the other rows fitted "
        "per block kind; `hwnas profile --budget-min`"
        if sampled
        else "(every block not yet a row of the table"
    )
    body = [
        f"{what}: each space profiled {how}, plus "
        f"{'/'.join(map(str, calib))} calibration subnets), then {'/'.join(map(str, n))} random subnets measured end "
        f"to end in {'/'.join(map(str, processes))} separate processes. MAPE, within ±10% and Kendall τ compare the "
        "calibrated prediction with each process and show the worse; the floor compares one process with the "
        "other; uncalibrated is the plain sum of the block rows. Timing protocol: "
        f"{protocol_text(fp['protocol'])}.",
        "",
    ]
    again = any(r["validation"].get("calibration_remeasured") for r in d["results"])
    if again:
        body += [
            "The same processes measure the calibration subnets again: *machine since profiling* is their median "
            "change from profile time (the larger of the processes), a shared machine's drift that no table "
            "predicts; *recalibrated now* scores the table's rows with the calibration refitted on those "
            "measurements, as `hwnas profile --recalibrate` does (spaces validated before this was measured: "
            "not measured).",
            "",
        ]
    # validations with the +-5% share and the MACs-only baseline get their columns
    five = all("within_5pct" in worst(r["validation"]["calibrated"]) for r in d["results"])
    macs = any(r["validation"].get("macs_only") for r in d["results"])
    rows = []
    for r in d["results"]:
        v = r["validation"]
        c, f, u = (worst(v[k]) for k in ("calibrated", "floor_process_vs_process", "uncalibrated_sum"))
        m = worst(v.get("macs_only") or [])
        lo, hi = v["measured_ms_range"]
        digits = 2 if hi >= 10 else 3
        rows.append(
            [
                r["space"],
                f"{r['blocks']} + {r['calibration_subnets']}",
                *([_fitted_text(r)] if sampled else []),
                f"{r['profile_seconds']:,.0f} s",
                num(r["predictions_per_s"]),
                f"{ms(lo, digits)}–{ms(hi, digits)}",
                pct(c["mape_pct"]),
                *([pct(c["within_5pct"], 0)] if five else []),
                pct(c["within_10pct"], 0),
                tau(c["kendall_tau"]),
                f"{pct(f['mape_pct'])} / {pct(f['within_10pct'], 0)} / {tau(f['kendall_tau'])}",
                *([f"{pct(m['mape_pct'])} / {tau(m['kendall_tau'])}" if m else "not fitted"] if macs else []),
                pct(u["mape_pct"]),
                *(_since_profiling(v) if again else []),
            ]
        )
    body += table(
        [
            "space",
            "blocks measured + calibration subnets" if sampled else "blocks + calibration subnets",
            *(["blocks fitted (cross-validated error per kind)"] if sampled else []),
            "profile time",
            "predictions/s",
            "measured (ms)",
            "MAPE",
            *(["within ±5%"] if five else []),
            "within ±10%",
            "Kendall τ",
            "floor: MAPE / within ±10% / τ",
            *(["MACs only: MAPE / τ"] if macs else []),
            "uncalibrated MAPE",
            *(["machine since profiling", "recalibrated now: MAPE / within ±10% / τ"] if again else []),
        ],
        rows,
        "l" + "r" * (len(rows[0]) - 1),
    )
    earlier = profiled_by(d)
    if earlier:
        body += [
            "",
            "The table was built over several runs of the script, each adding spaces (`--append`); each space's "
            "rows come from the last run that profiled it, besides the command below: "
            + "; ".join(f"`{c}` ({', '.join(spaces)})" for c, spaces in earlier)
            + ".",
        ]
    refits = [r for r in d["results"] if r.get("refit")]
    if refits:
        body += [
            "",
            f"The fitted rows of {', '.join(r['space'] for r in refits)} were refitted after their validation "
            "subnets were measured (`hwnas profile --refit`: each kind's fit, as in *Filling rows from a fit* "
            "below, on every row the table has measured, and the calibration refitted on the subnets "
            "measured at profile time), and those same measurements scored again (`hwnas validate-table "
            "--rescore`); nothing was measured. The rows moved "
            + ", ".join(
                f"{pct(r['refit']['row_change_pct']['median_abs'])} (at most {pct(r['refit']['row_change_pct']['max_abs'])}) "
                f"in {r['space']}"
                for r in refits
            )
            + ".",
        ]
    body += ["", "Block latency per MAC, per block kind (p50 rows of the table):", ""]
    body += table(
        ["block kind", "rows", "MACs (millions)", "median µs per million MACs"],
        [
            [kind, str(k["rows"]), f"{k['macs_m'][0]:.2f}–{k['macs_m'][1]:.2f}", f"{k['us_per_mmac_median']:.1f}"]
            for kind, k in d["per_kind"].items()
        ],
        "lrrr",
    )
    images = []
    macs_png = folder / f"{src.path.stem}_macs.png"
    if macs_png.exists():
        images.append((macs_png, "Block p50 latency against MACs, per block kind"))
    for s in validations:
        png = s.path.with_name("validate.png")
        if png.exists():
            images.append((png, f"{s.data['space']}: predicted against measured, per process"))
    worst_rows = [worst(r["validation"]["calibrated"]) for r in d["results"]]
    headline = (
        f"shipped CPU table, {len(spaces)} spaces: {pct_span((w['within_10pct'] for w in worst_rows), 0)} of "
        f"subnets within ±10% of the prediction, Kendall τ {span((w['kendall_tau'] for w in worst_rows), tau)}"
        if shipped
        else None
    )
    return Section(
        "latency-tables",
        0 if shipped else 1,
        title,
        body,
        provenance_of(src, "latency_table", default_out="benchmarks/results/latency_table.json", extra=validations),
        images,
        headline,
    )


def _since_profiling(v: dict[str, Any]) -> list[str]:
    """The drift column and the recalibrated prediction's figures, or "not measured" for both."""
    if not v.get("calibration_remeasured"):
        return ["not measured"] * 2
    drift = max(v["calibration_remeasured"]["drift_pct"], key=abs)
    r = worst(v["recalibrated_now"])
    return [signed_pct(drift), f"{pct(r['mape_pct'])} / {pct(r['within_10pct'], 0)} / {tau(r['kendall_tau'])}"]


def _fitted_text(r: dict[str, Any]) -> str:
    errors = ", ".join(
        f"{kind} {'n/a' if e is None else pct(e)}" for kind, e in sorted((r.get("fit_error_pct") or {}).items())
    )
    return f"{r.get('blocks_fitted', 0)} ({errors})"


def latency_table_command(src: Source) -> str | None:
    """A table JSON written elsewhere than the default: its command from what it records."""
    d = src.data
    if src.rel == "benchmarks/results/latency_table.json" or "provenance" in d or "command" in d:
        return None
    spaces = " ".join(r["space"] for r in d["results"])
    return f".venv/bin/python benchmarks/latency_table.py --table {d['table']} --spaces {spaces} --out {src.rel}"


def noise_floor_section(src: Source) -> Section:
    d = src.data
    setup = d.get("setup") or {}
    shipped = next(
        (
            fp.get("protocol")
            for fp in (_load(p)["fingerprint"] for p in sorted(SHIPPED_TABLES.glob("*.json")))
            if all(fp.get(k) == setup.get(k) for k in ("device", "backend", "threads"))
        ),
        None,
    )
    body = [
        f"{d['n']} random {d['space']} subnets exported once and measured end to end in "
        f"{d['processes_per_protocol']} fresh processes per timing protocol, the protocols taking turns so that each "
        "meets the same phases of the machine. Agreement between the processes of one protocol: the worst pair per "
        "metric, and the share within ±10% for each pair.",
        "",
    ]
    rows = []
    for p in d["protocols"]:
        s, w = p["settings"], p["worst_pair"]
        name = p["protocol"] + (" (the shipped table's)" if s == shipped else "")
        kept = "all" if s.get("round_tolerance") is None else f"within {100 * s['round_tolerance']:g}% of the fastest"
        rows.append(
            [
                name,
                str(s["group_size"]),
                kept,
                ms(p["median_ms"]),
                pct(w["mape_pct"]),
                pct(w["within_10pct"], 0),
                tau(w["kendall_tau"]),
                ", ".join(pct(x["within_10pct"], 0) for x in p["pairs"]),
            ]
        )
    body += table(
        [
            "protocol",
            "group size",
            "rounds kept",
            "median subnet (ms)",
            "worst pair: MAPE",
            "within ±10%",
            "Kendall τ",
            "within ±10%, each pair",
        ],
        rows,
        "lrlrrrrl",
    )
    images = []
    png = src.path.with_suffix(".png")
    if png.exists():
        images.append((png, "Each process against the first, one panel per protocol, left to right as in the table"))
    return Section("latency-tables", 2, "Timing noise floor", body, provenance_of(src, "noise_floor"), images)


def samplers_section(src: Source) -> Section:
    d = src.data
    runs = [r for r in d["runs"] if training_format(r.get("config")) >= 2]
    samplers = list(dict.fromkeys(r["sampling"] for r in runs))
    cfg = runs[0]["config"]
    seeds = sorted({r["seed"] for r in runs})
    body = [
        f"Test top-1 ({d['test_images']} images) with inherited weights of the smallest, the largest and 5 random "
        f"subnets of {d['space']} supernets trained with each sampler, {len(seeds)} seeds each (a seed draws the split, "
        f"the initialisation and the subnets): {cfg['epochs']} epochs, batch {cfg['batch_size']}, lr {cfg['lr']:g}. "
        "Mean over the seeds, with the range.",
        "",
    ]
    names = list(runs[0]["subnets"])
    rows = []
    for name in names:
        first = runs[0]["subnets"][name]
        cells = [f"{name} (depth {first['depth']}, {num(first['params'])} params)"]
        for s in samplers:
            values = [r["subnets"][name]["test_top1"] for r in runs if r["sampling"] == s]
            cells.append(f"{pct(statistics.mean(values), 2)} ({pct_span(values)})")
        rows.append(cells)
    cells = ["mean of the 5 random subnets"]
    for s in samplers:
        per_seed = [
            statistics.mean(v["test_top1"] for k, v in r["subnets"].items() if k.startswith("random"))
            for r in runs
            if r["sampling"] == s
        ]
        cells.append(f"{pct(statistics.mean(per_seed), 2)} ({pct_span(per_seed)})")
    rows.append(cells)
    body += table(["subnet", *(f"`--sampling {s}`" for s in samplers)], rows, "l" + "r" * len(samplers))
    depths = sorted({k for r in runs for k in r["steps_per_depth"]}, key=int)
    body += ["", "Training steps per depth over a run (range over the seeds):", ""]
    body += table(
        ["depth", *(f"`--sampling {s}`" for s in samplers)],
        [
            [
                k,
                *(
                    span((r["steps_per_depth"][k] for r in runs if r["sampling"] == s), lambda x: num(x))
                    for s in samplers
                ),
            ]
            for k in depths
        ],
        "l" + "r" * len(samplers),
    )
    png = src.path.with_suffix(".png")
    uniform = [r for r in runs if r["sampling"] == "uniform"]
    headline = None
    if uniform:
        largest = statistics.mean(r["subnets"]["largest"]["test_top1"] for r in uniform)
        smallest = statistics.mean(r["subnets"]["smallest"]["test_top1"] for r in uniform)
        headline = (
            f"{d['space']}, `--sampling uniform`, mean of {len(uniform)} seeds: largest {pct(largest, 2)}, "
            f"smallest {pct(smallest, 2)}"
        )
    return Section(
        "supernet",
        0,
        f"Samplers on {d['space']}",
        body,
        provenance_of(src, "samplers"),
        [(png, "Test top-1 per subnet: each seed a dot, the mean a bar")] if png.exists() else [],
        headline,
    )


def hflip_section(src: Source) -> Section:
    d = src.data
    first = d["rows"][0]
    body = [
        f"{d['space']} supernets trained on a {d['classes']}-class digit folder (classes a horizontal flip "
        f"changes) with each `--hflip`, the default budget ({first['epochs']} epochs): top-1 of the largest and "
        f"smallest subnets with inherited weights ({num(first['train_images'])} train, "
        f"{num(first['search_val_images'])} search-val, {num(first['test_images'])} test images).",
        "",
    ]
    body += table(
        [
            "`--hflip`",
            "epochs",
            "training time",
            "search-val: largest",
            "search-val: smallest",
            "test: largest",
            "test: smallest",
        ],
        [
            [
                f"{r['hflip']:g}",
                str(r["epochs"]),
                f"{r['seconds']:.0f} s",
                pct(r["search_val_top1_largest"]),
                pct(r["search_val_top1_smallest"]),
                pct(r["test_top1_largest"]),
                pct(r["test_top1_smallest"]),
            ]
            for r in d["rows"]
        ],
        "rrrrrrr",
    )
    png = src.path.with_suffix(".png")
    return Section(
        "supernet",
        5,
        "Horizontal flips on a folder of digits",
        body,
        provenance_of(src, "hflip"),
        [(png, "Test top-1 per `--hflip`")] if png.exists() else [],
    )


def glit_subnets_section(src: Source) -> Section:
    d = src.data
    variants = [v for v in d["variants"] if training_format(v.get("config")) >= 2]
    default = next((v for v in variants if v["name"] == "default"), variants[0])
    cfg = default["config"]
    target = d["target_top1"]
    body = [
        f"Supernets of {default['space']} trained per recipe, then the all-global, the all-local and 5 random subnets "
        f"scored on the test split ({d['test_images']} images) with inherited weights, BatchNorm statistics "
        f"recalibrated per subnet on {num(d['calibration_images'])} training images. Target: every listed subnet "
        f"≥ {target:g}%.",
        "",
        f"The family's digits budget (`default`: {cfg['epochs']} epochs at lr {cfg['lr']:g}, batch "
        f"{cfg['batch_size']}, alike share {cfg['alike_share']:g}, seed {cfg['seed']}):",
        "",
    ]
    rows = []
    for r in default["subnets"]:
        a = r["arch"]
        rows.append(
            [
                r["name"],
                "/".join(map(str, a["global_heads"])),
                "/".join(map(str, a["low_level"])),
                num(r["params"]),
                f"{r['macs'] / 1e6:.1f}",
                pct(r["test_top1_recalibrated"], 2),
                pct(r.get("test_top1_trained_statistics"), 2),
            ]
        )
    body += table(
        [
            "subnet",
            "global heads per block",
            "low-level choice per block",
            "params",
            "MMACs",
            "test top-1, recalibrated",
            "test top-1, as trained",
        ],
        rows,
        "lllrrrr",
    )

    def change_text(v: dict[str, Any]) -> str:
        change = v["change"]
        if not change:
            return "(the family's budget)"
        return ", ".join(
            f"space {', '.join(f'{k} {w}' for k, w in c.items())}"
            if k == "space"
            else f"{k} {c:g}"
            if isinstance(c, float)
            else f"{k} {c}"
            for k, c in change.items()
        )

    body += ["", "Per recipe (a change to the family's budget; recalibrated):", ""]
    rows = []
    for v in variants:
        subnets = {r["name"]: r["test_top1_recalibrated"] for r in v["subnets"]}
        randoms = [x for k, x in subnets.items() if k.startswith("random")]
        c = v["config"]
        rows.append(
            [
                v["name"],
                change_text(v),
                str(v["epochs"]),
                f"{c['lr']:g}",
                f"{v['median_epoch_seconds']:.2f}",
                f"{v['final_loss']:.3f}",
                pct(subnets.get("all-global"), 2),
                pct(subnets.get("all-local"), 2),
                pct_span(randoms) if randoms else "-",
                "yes" if v["all_meet_target"] else "no",
            ]
        )
    body += table(
        [
            "recipe",
            "change",
            "epochs",
            "lr",
            "median epoch (s)",
            "final loss",
            "all-global",
            "all-local",
            "5 random",
            f"all ≥ {target:g}%",
        ],
        rows,
        "llrrrrrrrl",
    )
    probes = list(dict.fromkeys(p for v in variants for p in v.get("probes_test_top1_recalibrated") or {}))
    if probes:
        body += ["", "Probe subnets (every block alike, or mixes of pure blocks), test top-1 recalibrated:", ""]
        body += table(
            ["probe", *(v["name"] for v in variants)],
            [[p, *(pct((v.get("probes_test_top1_recalibrated") or {}).get(p), 1) for v in variants)] for p in probes],
            "l" + "r" * len(variants),
        )
    entropy = [v for v in variants if v.get("all_global_class_token_attention_entropy")]
    if entropy:
        body += [
            "",
            "Selectivity of the all-global subnet's attention: the class token's attention entropy over the "
            "tokens as a share of its maximum, per block (1: uniform attention):",
            "",
        ]
        body += table(
            ["recipe", "entropy per block"],
            [
                [v["name"], ", ".join(f"{e:.2f}" for e in v["all_global_class_token_attention_entropy"])]
                for v in entropy
            ],
            "ll",
        )
    machines = [v.get("machine") or d.get("machine") for v in variants]
    distinct = list({json.dumps(machine_of(m), sort_keys=True): m for m in machines}.values())
    prov = provenance_of(src, "glit_subnets")
    if not (isinstance(d.get("provenance"), dict)):
        prov.machines = [machine_of(m) for m in distinct]
        prov.versions = versions_of(*distinct)
    lowest = min(default["subnets"], key=lambda r: r["test_top1_recalibrated"])
    headline = (
        f"{default['space']}, {cfg['epochs']} epochs at lr {cfg['lr']:g}: lowest listed subnet "
        f"{pct(lowest['test_top1_recalibrated'], 2)} ({lowest['name']}; target {target:g}%)"
    )
    return Section("supernet", 4, f"GLiT on digits ({default['space']})", body, prov, [], headline)


def multi_device_section(src: Source) -> Section:
    d = src.data
    j, two, front, p90 = d["joint_feasibility"], d["two_devices"], d["front"], d["p90_validation"]
    setups = d.get("setups") or {}
    body = [
        "Latency budgets on two setups at once, standing in for two devices: "
        + ", ".join(
            f"`{k}` ({s['backend']} {s['backend_version']}, {plural(s['threads'], 'thread')})"
            for k, s in setups.items()
        )
        + f"; supernet: {d['space']}.",
        "",
        f"**Joint feasibility against brute force**: a toy space of {num(j['space_archs'])} archs, three random "
        f"tables, {j['trials']} random budget triples ({j['feasible_trials']} feasible): the check agrees with "
        f"enumerating every arch in {j['agree']} of {j['trials']} (median {j['median_check_ms']:.1f} ms per check).",
        "",
        f"**One search under a budget on each setup** (evolution): winner {arch_text(two['arch'])}, test top-1 "
        f"{pct(two['top1_test'], 2)}; the two setups' tables rank 2,000 random subnets with Kendall τ "
        f"{tau(two['kendall_tau_of_the_two_tables'])}. Measured end to end in the search's fresh process, then in two "
        "more fresh processes:",
        "",
    ]
    body += table(
        [
            "setup",
            "budget (ms)",
            "predicted (ms)",
            "measured (ms)",
            "measured again (ms)",
            "measured over budget",
            "difference of the two again",
        ],
        [
            [
                r["device"],
                ms(r["budget_ms"]),
                ms(r["predicted_ms"]),
                ms(r["measured_ms"]),
                ", ".join(ms(x) for x in r["measured_again_ms"]),
                signed_pct(r["measured_over_budget_pct"]),
                pct(r["floor_pct"]),
            ]
            for r in two["devices"]
        ],
        "lrrrrrr",
    )
    budgets = front["budgets_ms"]
    body += [
        "",
        f"**NSGA-II against evolution** at {front['evaluations']} evaluations per seed: one NSGA-II run "
        f"against one evolution run per budget ({', '.join(ms(b) for b in budgets)} ms). Hypervolume of the "
        f"evaluated archs (error % × latency ms, reference 100% × {ms(budgets[-1])} ms) and each budget's winner, "
        "search-val / test top-1:",
        "",
    ]
    rows = []
    for s in front["seeds"]:
        for method, label in (("nsga2", "NSGA-II"), ("evolution", "evolution")):
            m = s[method]
            rows.append(
                [
                    str(s["seed"]),
                    label,
                    f"{m['hypervolume']:.2f}",
                    *(f"{pct(w['top1_search_val'], 2)} / {pct(w['top1_test'], 2)}" for w in m["winners"]),
                ]
            )
    body += table(
        ["seed", "method", "hypervolume", *(f"{ms(b)} ms" for b in budgets)], rows, "rlr" + "r" * len(budgets)
    )
    means = front["hypervolume_mean"]
    body += ["", f"Mean hypervolume: NSGA-II {means['nsga2']:.2f}, evolution {means['evolution']:.2f}."]
    c, f = p90["calibrated_worst"], p90["floor_worst"]
    lo, hi = p90["measured_ms_range"]
    body += [
        "",
        f"**p90 prediction**: the shipped table's p90 calibration validated on 50 {d['space']} subnets "
        f"({ms(lo)}–{ms(hi)} ms) in two fresh processes, worst of the two:",
        "",
    ]
    body += table(
        ["", "MAPE", "within ±10%", "Kendall τ"],
        [
            ["prediction", pct(c["mape_pct"]), pct(c["within_10pct"], 0), tau(c["kendall_tau"])],
            ["floor (process against process)", pct(f["mape_pct"]), pct(f["within_10pct"], 0), tau(f["kendall_tau"])],
        ],
        "lrrr",
    )
    png = src.path.with_suffix(".png")
    headline = (
        f"NSGA-II hypervolume {means['nsga2']:.2f} against evolution {means['evolution']:.2f} "
        f"({front['evaluations']} evaluations, mean of {len(front['seeds'])} seeds); joint feasibility "
        f"{j['agree']}/{j['trials']} against brute force"
    )
    return Section(
        "search",
        1,
        "Several devices, tail latency, the front",
        body,
        provenance_of(src, "multi_device", default_out="benchmarks/results/multi_device.json"),
        [(png, "Seed 0: evaluated archs and fronts; dashed lines are the budgets")] if png.exists() else [],
        headline,
    )


def ranking_section(src: Source) -> Section:
    d = src.data
    ft = d.get("finetune")
    body: list[str] = []
    if ft:
        body += [
            f"**Fine-tuning the searched subnet**: {arch_text(ft['arch'])}, found under a {ft['budget_ms']} ms "
            "CPU budget, fine-tuned alone from its inherited weights; top-1 and loss before and after, "
            f"{len(ft['seeds'])} seeds:",
            "",
        ]
        body += table(
            [
                "seed",
                "epochs",
                "lr",
                "test top-1: inherited → fine-tuned",
                "test loss",
                "search-val top-1: inherited → fine-tuned",
            ],
            [
                [
                    str(s["seed"]),
                    str(s["epochs"]),
                    f"{s['lr']:g}",
                    f"{pct(s['before']['test']['top1'], 2)} → {pct(s['after']['test']['top1'], 2)}",
                    f"{s['before']['test']['loss']:.3f} → {s['after']['test']['loss']:.3f}",
                    f"{pct(s['before']['search_val']['top1'], 2)} → {pct(s['after']['search_val']['top1'], 2)}",
                ]
                for s in ft["seeds"]
            ],
            "rrrrrr",
        )
        body += [""]
    archs = d.get("archs") or []
    if archs:
        seeds = sorted({k for a in archs for k in a["standalone_test_top1"]}, key=int)
        body += [
            f"**Ranking**: {len(archs)} archs at evenly spaced quantiles of predicted CPU latency, each trained "
            f"alone from scratch with the supernet's budget ({len(seeds)} seeds); test top-1 "
            f"({d['test_images']} images) inherited from the supernet and standalone.",
            "",
        ]
        body += table(
            ["predicted ms", "arch", "params", "inherited", *(f"standalone, seed {s}" for s in seeds)],
            [
                [
                    ms(a["predicted_ms"]),
                    arch_text(a["arch"]),
                    num(a["params"]),
                    pct(a["inherited_test_top1"], 2),
                    *(pct(a["standalone_test_top1"].get(s), 2) for s in seeds),
                ]
                for a in archs
            ],
            "rlrr" + "r" * len(seeds),
        )
        body += [
            "",
            f"Kendall τ, inherited against standalone (mean of the seeds): "
            f"{tau(d.get('kendall_tau_inherited_vs_standalone'))}; the parameter count against standalone, the "
            f"baseline a proxy must beat: {tau(d.get('kendall_tau_params_vs_standalone'))}; standalone seed against seed: "
            f"{tau(d.get('kendall_tau_standalone_seed_vs_seed'))}; goal τ ≥ {d['goal_tau']:g}. "
            f"{d.get('archs_done', len(archs))} of {d.get('archs_planned', len(archs))} archs done.",
        ]
    png = src.path.with_suffix(".png")
    return Section(
        "search",
        2,
        f"Fine-tuning and ranking on {d['space']}",
        body,
        provenance_of(src, "ranking"),
        [(png, "Inherited against standalone test top-1 per arch")] if png.exists() else [],
    )


def demo_section(src: Source) -> Section:
    d = src.data
    lo, hi = d["space_latency_ms"]
    body = [
        "`benchmarks/demo.py` runs `hwnas demo` in a fresh folder, then once more in the same folder (every stage "
        "reused).",
        "",
    ]
    body += table(
        ["run", "wall time", "stages"],
        [
            ["fresh folder", f"{d['fresh_run_seconds']:.0f} s", "; ".join(f"{k}: {v}" for k, v in d["stages"].items())],
            [
                "same folder again",
                f"{d['rerun_seconds']:.0f} s",
                "; ".join(f"{k}: {v}" for k, v in d["rerun_stages"].items()),
            ],
        ],
        "lrl",
    )
    rows = []
    for key in ("searched_inherited", "searched_fine_tuned", "hand_designed_uniform"):
        r = d[key]
        ci = r.get("test_top1_95ci")
        rows.append(
            [
                r["name"],
                arch_text(r["arch"]),
                pct(r["test_top1"], 2) + (f" ({ci[0]:.1f}–{ci[1]:.1f}%)" if ci else ""),
                pct(r["search_val_top1"], 2),
                num(r["params"]),
                f"{r['macs'] / 1e6:.2f}",
                ms(r["predicted_ms"]),
                ms(r.get("measured_ms")),
            ]
        )
    body += [
        "",
        f"Subnets under the budget of {d['budget_ms']} ms predicted (the space spans {ms(lo)}–{ms(hi)} ms); "
        f"test top-1 on {d['test_images']} test images with its 95% Wilson interval. Fine-tuning: "
        f"{d['finetune']['epochs']} epochs at lr {d['finetune']['lr']:g}. Measured: the exported model timed "
        "with the table's backend and protocol.",
        "",
    ]
    body += table(
        [
            "subnet",
            "arch",
            "test top-1 (95% interval)",
            "search-val top-1",
            "params",
            "MMACs",
            "predicted ms",
            "measured ms",
        ],
        rows,
        "llrrrrrr",
    )
    body += [
        "",
        f"Measured against predicted: {signed_pct(d['measured_vs_predicted_pct'])}. Same winner on the "
        f"second run: {'yes' if d['same_winner_on_rerun'] else 'no'}. The demo's verdict: {d['comparison']}.",
    ]
    tuned, hand = d["searched_fine_tuned"], d["hand_designed_uniform"]
    headline = (
        f"searched, fine-tuned {pct(tuned['test_top1'], 2)} against hand-designed uniform "
        f"{pct(hand['test_top1'], 2)} test top-1; exported model measured {ms(tuned['measured_ms'])} ms against "
        f"{ms(tuned['predicted_ms'])} ms predicted ({signed_pct(d['measured_vs_predicted_pct'])}); fresh run "
        f"{d['fresh_run_seconds']:.0f} s"
    )
    return Section("demo", 0, "`hwnas demo`", body, provenance_of(src, "demo"), [], headline)


def data_scale_section(src: Source) -> Section:
    d = src.data
    s, scan, loader, fit, mem = d["settings"], d["scan"], d["loader"], d["fitness"], d["memory"]
    body = [
        f"A synthetic folder of {num(s['images'])} JPEGs ({s['image_px']} px, {s['classes']} classes, quality "
        f"{s['jpeg_quality']}; {num(d['write']['train_files'])} train, {num(d['write']['val_files'])} val), prepared "
        f"as `hwnas train` prepares a run; {s['space']}'s {fit['arch']} subnet, weights {fit['weights']}, scored on "
        f"a {num(fit['search_val_images'])}-image search-val.",
        "",
    ]
    met, targets = d.get("met") or {}, d.get("targets") or {}

    def target(key: str) -> str:
        if key not in targets:
            return "-"
        text = targets[key].replace(">=", "≥").replace("<=", "≤")
        return f"{text}: {'met' if met.get(key) else 'missed'}"

    most = max(loader["rows"], key=lambda r: r["workers"])["workers"]
    rows = [
        [
            "listing the folder (warm cache)",
            f"{scan['scan_folder_seconds']:.3f} s for {num(scan['files'])} files; "
            f"{scan['imagenet_scan_seconds_extrapolated']:.1f} s extrapolated to ImageNet's 1.28M",
            target("scan_seconds"),
        ],
        [
            f"training loader, {most} workers over none",
            f"{loader['speedup_max_over_0_workers']:.2f}x",
            target("loader_speedup"),
        ],
        [
            f"training loader, {most} workers over none with one torch thread",
            f"{loader['speedup_max_over_0_workers_1_thread']:.2f}x",
            target("loader_scaling"),
        ],
        [
            f"fitness evaluation on {num(fit['search_val_images'])} images: first / later / pure forward",
            f"{fit['first_seconds']:.1f} s / {fit['later_seconds']:.1f} s / {fit['pure_forward_seconds']:.1f} s "
            f"(later / forward {fit['later_over_forward']:.3f}x)",
            target("later_over_forward"),
        ],
        ["search-val cache (uint8)", f"{num(fit['cache_mb'])} MB on {fit['cached_on']}", "-"],
        [
            "peak memory: the process / the largest loader worker",
            f"{num(mem['peak_rss_mb'])} MB / {num(mem['peak_rss_mb_largest_child'])} MB",
            "-",
        ],
    ]
    body += table(["figure", "measured", "target"], rows, "lll")
    body += [
        "",
        f"Training loader at {loader['img_size']} px (`--aug {loader['augment']}`, batch "
        f"{loader['batch_size']}, {num(loader['train_images'])} train images):",
        "",
    ]
    body += table(
        ["loader workers", "torch threads in the training process", "batches", "images/s"],
        [
            [str(r["workers"]), str(r["main_threads"]), str(r["batches"]), num(r["images_per_second"])]
            for r in loader["rows"]
        ],
        "rrrr",
    )
    png = src.path.with_suffix(".png")
    headline = (
        f"loader {loader['speedup_max_over_0_workers']:.2f}x faster with {most} workers; a later fitness "
        f"evaluation {fit['later_over_forward']:.3f}x the pure forward; {sum(map(bool, met.values()))} of "
        f"{len(met)} targets met"
    )
    return Section(
        "data-scale",
        0,
        "The data path on a synthetic ImageNet-style folder",
        body,
        provenance_of(src, "data_scale"),
        [(png, "Loader throughput and fitness evaluation times")] if png.exists() else [],
        headline,
    )


def cost_counting_section(src: Source) -> Section:
    d = src.data
    threads = (d.get("machine") or {}).get("threads")
    body = [
        "Counting a subnet's parameters and MACs: analytic (from the arch, what search uses) against fvcore "
        "(traces the extracted model), and the extraction itself"
        + (f", {plural(threads, 'torch thread')}." if threads else "."),
        "",
    ]
    body += table(
        ["space", "analytic (archs/s)", "fvcore (models/s)", "speed-up", "extractions/s", "counts agree"],
        [
            [
                r["space"],
                num(r["analytic_archs_per_s"]),
                num(r["fvcore_models_per_s"], 1),
                f"{num(r['analytic_speedup'])}x",
                num(r["extract_per_s"], 1),
                "yes" if r["counts_agree"] else "no",
            ]
            for r in d["rows"]
        ],
        "lrrrrl",
    )
    headline = (
        "analytic counting "
        + span((r["analytic_speedup"] for r in d["rows"]), lambda x: num(x))
        + "x faster than fvcore; counts agree"
        if all(r["counts_agree"] for r in d["rows"])
        else None
    )
    return Section(
        "cost-counting",
        0,
        "Analytic against traced cost counting",
        body,
        provenance_of(src, "cost_counting"),
        [],
        headline,
    )


def within_noise(measured: list[dict]) -> str:
    """A sentence naming the spaces where the floor errs at least half as much as the better method: there
    the methods' figures differ by the machine's noise."""
    noisy = [
        r
        for r in measured
        if "floor_process_vs_process" in r
        and 2 * r["floor_process_vs_process"]["mape_pct"] >= min(r[m]["mape_pct"] for m in ("per_kind", "linear_refit"))
    ]
    if not noisy:
        return ""
    floors = "; ".join(
        f"{r['space']} {pct(r['floor_process_vs_process']['mape_pct'])} MAPE, "
        f"{pct(r['floor_process_vs_process']['within_10pct'], 0)} within ±10%"
        for r in noisy
    )
    return (
        f" Here the two processes alone disagree at least half as much as the methods miss ({floors}): this "
        "machine does not measure 2 threads to better than that, and the methods' figures differ by its noise, "
        "not by what they predict."
    )


def transfer_section(src: Source) -> Section:
    d = src.data
    cases = sorted({r["case"] for r in d["results"]})
    measured = [r for r in d["results"] if r["case"] == "threads"]
    uneven = (
        f"*uneven* is simulated: attention takes {d['attention_factor']:g}x and the MLP {d['mlp_factor']:g}x as long "
        "as on the source device (each row rescaled by its block's attention and MLP shares of MACs), scored on 200 "
        "random subnets; it tests whether a method follows a change that moves kinds and shapes unevenly. "
    )
    threads = (
        f"*threads* is measured: the same machine with 2 onnxruntime threads instead of 1, scored on "
        f"{'/'.join(sorted({str(r['evaluated_subnets']) for r in measured}))} random subnets measured end to end"
        + (
            " in two separate processes (each method shows the worse; *floor* is one process against the other). "
            "The same processes measure the calibration subnets again: *recalibrated now* refits each method's "
            "calibration on them, which takes out how far the machine moved since the transfer ("
            + ", ".join(f"{r['space']} {r['drift_pct']:+.1f}%" for r in measured)
            + "), a shared machine's drift that no method predicts."
            if all("drift_pct" in r for r in measured)
            else "."
        )
        + within_noise(measured)
    )
    body = [
        f"A table moved to a new device from a few measurements: per-kind factors (`hwnas profile --from TABLE`: "
        f"the calibration subnets plus {pct(100 * d['row_share'], 0)} of the space's rows measured, the other rows "
        "fitted per block kind on their latency in the source table) against a linear refit of the source table's "
        f"calibration on subnets measured on the new device (what the drift check does). Source: `{d['source']}`. "
        + (uneven if "uneven" in cases else "")
        + (threads if measured else ""),
        "",
    ]
    rows = []
    methods = (
        ("per_kind", "per-kind (--from)"),
        ("linear_refit", "linear refit"),
        ("per_kind_recalibrated_now", "per-kind, recalibrated now"),
        ("linear_refit_recalibrated_now", "linear refit, recalibrated now"),
        ("floor_process_vs_process", "floor"),
    )
    for r in d["results"]:
        for method, name in methods:
            if method not in r:
                continue
            m = r[method]
            rows.append(
                [
                    r["space"],
                    r["case"],
                    name,
                    f"{m['measured_subnets']} + {m['measured_rows']}" if "measured_subnets" in m else "–",
                    pct(m["mape_pct"]),
                    pct(m["within_5pct"], 0),
                    pct(m["within_10pct"], 0),
                    tau(m["kendall_tau"]),
                ]
            )
    body += table(
        ["space", "case", "method", "measured subnets + rows", "MAPE", "within ±5%", "within ±10%", "Kendall τ"],
        rows,
        "lllrrrrr",
    )
    png = src.path.with_suffix(".png")
    return Section(
        "latency-tables",
        2,
        "A table moved to a new device: " + " and ".join("2 threads" if c == "threads" else "simulated" for c in cases),
        body,
        provenance_of(src, "transfer"),
        [(png, "Subnets within ±10% after moving the table, per method")] if png.exists() else [],
    )


def operator_rows_section(src: Source) -> Section:
    d = src.data
    raw, line, fit = d["halves_raw"], d["halves_calibrated_loo"], d["sampled_fit_loo"]
    lo, hi = d["block_ms_range"]
    body = [
        f"Operator rows or sampled rows, on {d['rows_measured_here']} {d['kind']} blocks of {d['space']} spread over "
        f"their costs ({ms(lo)}–{ms(hi)} ms), each measured whole and as its two residual halves (attention: "
        "LayerNorm, qkv, attention, projection; MLP: LayerNorm, fc1, GELU, fc2). Operator rows would need "
        f"{d['attention_halves']} attention and {d['mlp_halves']} MLP halves for the space's {d['rows_in_space']} "
        f"{d['kind']} rows. The sum of the halves is {signed_pct(100 * (d['halves_sum_over_block_median'] - 1))} off "
        "the whole block at the median.",
        "",
    ]
    body += table(
        ["route", "models measured for the space", "MAPE on these blocks", "within ±5%", "largest error"],
        [
            [
                "halves summed",
                str(d["operator_rows_for_space"]),
                pct(raw["mape_pct"]),
                pct(raw["within_5pct"], 0),
                pct(raw["max_pct"]),
            ],
            [
                "halves summed, then a line (leave-one-out)",
                str(d["operator_rows_for_space"]),
                pct(line["mape_pct"]),
                pct(line["within_5pct"], 0),
                pct(line["max_pct"]),
            ],
            [
                "per-kind fit on costs (leave-one-out)",
                f"a sample ({d['rows_measured_here']} here)",
                pct(fit["mape_pct"]),
                "",
                "",
            ],
        ],
        "lrrrr",
    )
    return Section("latency-tables", 3, "Operator rows or sampled rows", body, provenance_of(src, "operator_rows"), [])


def missing_rows_section(src: Source) -> Section:
    d = src.data
    body = [
        f"Rows the table `{d['table']}` lacks for another class count (its heads), measured on the spot on this "
        "machine: each with the nearest measured row of the same kind, and scaled to the table by that row's ratio "
        "of table to here; kept in the table's local calibration file and reused after. Beside them, the per-kind "
        "fit a machine that cannot run the table's setup gets instead, with the error its cross-validation claims.",
        "",
    ]
    body += table(
        [
            "space",
            "rows missing",
            "measured here in",
            "again (kept locally)",
            "fit against measured",
            "fit's claimed error",
        ],
        [
            [
                r["space"],
                str(r["rows_missing"]),
                f"{r['seconds']:.1f} s",
                f"{r['seconds_reused']:.2f} s",
                ", ".join(signed_pct(x) for x in r["fit_vs_here_pct"]),
                ", ".join(
                    sorted(
                        {
                            "n/a" if x["fit_error_pct_claimed"] is None else pct(x["fit_error_pct_claimed"])
                            for x in r["rows"]
                        }
                    )
                ),
            ]
            for r in d["results"]
        ],
        "lrrrrr",
    )
    return Section(
        "latency-tables", 4, "Rows a table lacks, measured on the spot", body, provenance_of(src, "missing_rows"), []
    )


def change_from_line(subnets: list[dict], variant: str) -> tuple[str, float]:
    """How a fit `variant` moves whole subnets from the line alone: the spread of its MAPE and τ
    changes over the spaces, and the mean MAPE change."""
    mape = [s[variant]["mape_pct"] - s["line"]["mape_pct"] for s in subnets]
    taus = [s[variant]["kendall_tau"] - s["line"]["kendall_tau"] for s in subnets]
    mean = sum(mape) / len(mape)
    better = sum(t > 0 for t in taus)
    text = (
        f"over the {len(subnets)} spaces, MAPE {signed(min(mape), 2)} to {signed(max(mape), 2)} points (mean "
        f"{signed(mean, 2)}) and τ {signed(min(taus), 3)} to {signed(max(taus), 3)} (higher in {better} of "
        f"{len(subnets)})"
    )
    return text, mean


def rowfit_verdict(subnets: list[dict]) -> str:
    """What the neighbours' correction, the MACs by part and the per-value factors do to whole subnets, from the figures."""
    local, _ = change_from_line(subnets, "neighbours")
    parts, _ = change_from_line(subnets, "hwnas_fit")
    factors, mean = change_from_line(subnets, "per_value")
    out = (
        f"From the line, the neighbours' correction moves subnets {local}; with the MACs by part as well (what hwnas "
        f"fits) {parts}; the per-value factors {factors}"
    )
    if mean > -0.1:
        return (
            out
            + "; they fit the measured rows better but leave whole subnets about where they were, so hwnas does not use them."
        )
    return out + "."


def rowfit_section(src: Source) -> Section:
    d = src.data
    body = [
        f"The per-kind fit that fills a table's rows (`hwnas.latency.rowfit`), cross-validated on the measured rows "
        f"of `{d['table']}` (leave-one-out up to 20 rows, else 5-fold): a *line* (non-negative least "
        "squares on a row's MACs, parameters and input size, errors weighted relatively, 1/y²), plain least "
        "squares, which fits a kind's large rows and leaves its small ones off, the line with the *measured "
        "neighbours' correction* (a kernel-weighted, shrunk mean of the log residuals of the measured rows near "
        "a row, in log-cost and token space), *hwnas's fit*: the correction on a line that also weighs the MACs "
        "of attention's activation products and of depthwise convolutions on their own (a kind's `mac_parts`), "
        "and *per-value factors* on the line: a factor per field value, alone and beside the kind's first field "
        f"(`in_dim=384`, `tokens=65/in_dim=384`; ridge {d['ridge']:g}). The correction and the factors model a "
        "kernel that suits some widths better than the line says; the parts, MACs that cost more than a dense "
        "product's: hwnas's line charges "
        + "; ".join(
            f"a {r['kind']} block's dense MAC {r['per_mac_ps']['dense']:.0f} ps, "
            + " and ".join(f"its {part} MAC {ps:.0f} ps" for part, ps in r["per_mac_ps"].items() if part != "dense")
            for r in d["kinds"]
            if len(r.get("per_mac_ps", {})) > 1
        )
        + ".",
        "",
    ]
    body += table(
        [
            "block kind",
            "measured rows",
            "p50 (ms)",
            "line",
            "plain least squares",
            "line + neighbours",
            "hwnas: parts + neighbours",
            "per-value factors",
        ],
        [
            [
                r["kind"],
                str(r["rows"]),
                f"{ms(r['ms_range'][0])}–{ms(r['ms_range'][1])}",
                pct(r["relative_loo_mape_pct"]),
                pct(r["plain_loo_mape_pct"]),
                pct(r["neighbours_loo_mape_pct"]),
                pct(r["hwnas_loo_mape_pct"]),
                pct(r["per_value_loo_mape_pct"]),
            ]
            for r in d["kinds"]
        ],
        "lrrrrrrr",
    )
    body += [
        "",
        "Whether better rows make better subnets: the table's fitted rows refitted on all its measured rows with "
        "each fit, each space's calibration refitted on its own calibration points, and every variant scored on the "
        "validation subnets of the shipped table above (the worse process), each process's median miss taken "
        "out first (the machine's drift since profiling, which no fit of the rows changes). "
        + rowfit_verdict(d["subnets"]),
        "",
    ]
    body += table(
        [
            "space",
            "fitted rows",
            "line: MAPE / τ",
            "line + neighbours: MAPE / τ",
            "hwnas: parts + neighbours: MAPE / τ",
            "per-value factors: MAPE / τ",
            "floor τ",
        ],
        [
            [s["space"], str(s["fitted_rows"])]
            + [
                f"{pct(s[v]['mape_pct'], 2)} / {tau(s[v]['kendall_tau'])}"
                for v in ("line", "neighbours", "hwnas_fit", "per_value")
            ]
            + [tau(s["floor_tau"])]
            for s in d["subnets"]
        ],
        "lrrrrrr",
    )
    return Section("latency-tables", 5, "Filling rows from a fit", body, provenance_of(src, "rowfit"), [])


def calibration_subnets_section(src: Source) -> Section:
    d = src.data
    counts = sorted({c["subnets"] for s in d["spaces"] for c in s["by_count"]})
    body = [
        f"How many calibration subnets a table needs: each space's calibration in `{d['table']}` refitted on fewer "
        "of its subnets (every subset that keeps the smallest and the largest, which a profile measures first) "
        "and scored, as the worse of two processes, on the validation subnets measured end to end above. "
        "A profile whose budget the calibration subnets would mostly fill (`--budget-min`) measures fewer, "
        "never fewer than 8. No measuring: arithmetic on the committed table and validations.",
        "",
    ]
    rows = []
    for s in d["spaces"]:
        cells = {c["subnets"]: c for c in s["by_count"]}
        rows.append(
            [s["space"], f"{s['calibration_subnets']}: {pct(s['mape_pct_all'], 2)}"]
            + [
                f"{pct(cells[k]['mape_pct_mean'], 2)} / {pct(cells[k]['mape_pct_worst'], 2)}" if k in cells else "–"
                for k in counts
            ]
        )
    body += table(
        ["space", "all subnets: MAPE"] + [f"{k} subnets: MAPE mean / worst subset" for k in counts],
        rows,
        "l" + "r" * (len(counts) + 1),
    )
    png = src.path.with_suffix(".png")
    return Section(
        "latency-tables",
        6,
        "How many calibration subnets",
        body,
        provenance_of(src, "calibration_subnets"),
        [(png, "Validation MAPE against the number of calibration subnets, per space")] if png.exists() else [],
    )


def mean_abs_off(rows: list[dict]) -> str:
    return pct(sum(abs(r["off_pct"]) for r in rows) / len(rows)) if rows else "–"


def fitted_rows_section(src: Source) -> Section:
    d = src.data
    body = [
        f"How far a table's fitted rows are from the blocks measured: the fitted rows of {d['spaces'][0]['subnets']} "
        f"random subnets of each space in `{d['table']}`, measured here with the table's setup and protocol, against "
        "the values the per-kind fit stored, after the median move of the space's measured rows (the machine's "
        "drift, measured in the same run). A fitted row's stored error is cross-validated on its kind's measured "
        "rows; *outside* counts the rows with a cost (MACs, parameters or input size) beyond every measured row of "
        "their kind, which the fit extrapolates to.",
        "",
    ]
    body += table(
        [
            "space",
            "fitted rows in space",
            "measured here",
            "outside",
            "mean miss: all / outside / within",
            "stored error",
            "worst rows",
        ],
        [
            [
                s["space"],
                f"{s['fitted_rows_in_space']} of {s['rows_in_space']}",
                str(len(s["rows"])),
                str(sum(r["outside_measured"] for r in s["rows"])),
                " / ".join(
                    [pct(s["mean_abs_off_pct"])]
                    + [mean_abs_off([r for r in s["rows"] if r["outside_measured"] == o]) for o in (True, False)]
                ),
                pct(s["mean_stored_error_pct"]),
                ", ".join(f"`{r['key']}` {signed_pct(r['off_pct'], 0)}" for r in s["rows"][:3]),
            ]
            for s in d["spaces"]
        ],
        "lrrrrrl",
    )
    png = src.path.with_suffix(".png")
    return Section(
        "latency-tables",
        8,
        "Fitted rows measured",
        body,
        provenance_of(src, "fitted_rows"),
        [(png, "Fitted rows measured here against the table, after the drift")] if png.exists() else [],
    )


def export_workers_section(src: Source) -> Section:
    d = src.data
    body = [
        "What a profile spends before it times anything: a space's first calibration subnets (the largest among "
        "them) and a spread of its rows exported into a bundle one at a time, then in one process per core, "
        "as `hwnas profile`, `hwnas validate-table` and `hwnas profile --export-blocks` do (as many processes as "
        "the free memory holds at the largest model's estimated peak: 1 GB plus four copies of its weights). "
        "The files are the same byte for byte. The largest export process peaked at "
        f"{d['peak_export_process_bytes'] / 2**30:.1f} GB, estimated beforehand at "
        f"{d['largest_estimated_peak_bytes'] / 2**30:.1f} GB.",
        "",
    ]
    body += table(
        ["space", "models", "processes", "one at a time", "in parallel", "speed-up", "same files"],
        [
            [
                r["space"],
                f"{r['subnets']} subnets + {r['rows']} rows",
                str(r["workers"]),
                f"{r['seconds_one_at_a_time']:.1f} s",
                f"{r['seconds_parallel']:.1f} s",
                f"{r['speedup']:.2f}x",
                "yes" if r["files_identical"] else "no",
            ]
            for r in d["spaces"]
        ],
        "lrrrrrl",
    )
    png = src.path.with_suffix(".png")
    return Section(
        "latency-tables",
        9,
        "Exports in parallel",
        body,
        provenance_of(src, "export_workers"),
        [(png, "Export time of the same models, one at a time and one process per core")] if png.exists() else [],
    )


def row_repeat_section(src: Source) -> Section:
    d = src.data
    body = [
        f"Whether a table's miss is the noise of its rows: the measured rows of each space in `{d['table']}` and "
        "its calibration subnets measured again in one fresh process with the table's setup. *Row move* is each "
        "row's change after the median change (the machine's drift); τ ranks the validation subnets above by "
        "the plain sum of their rows (the space's fitted rows as they are), as the worse of the two processes, "
        "with the rows as profiled, as measured again and as the mean of both. Where the mean of two "
        "measurements does not raise τ, the gap to the floor is not row noise: it lies in the fitted rows and in "
        "what a block timed alone misses of the same block inside the network (where the runtime fuses and "
        "caches across block boundaries).",
        "",
    ]
    body += table(
        [
            "space",
            "rows measured again",
            "row move: std / largest",
            "machine since profiling",
            "τ: rows as profiled",
            "measured again",
            "mean of both",
            "floor τ",
        ],
        [
            [
                r["space"],
                f"{r['rows_measured_again']} of {r['rows_in_space']}",
                f"{pct(r['row_move_std_pct'], 2)} / {pct(r['row_move_max_pct'], 2)}",
                signed_pct(r["machine_since_profiling_pct"]),
                tau(r["tau_rows_profiled"]),
                tau(r["tau_rows_again"]),
                tau(r["tau_rows_mean"]),
                tau(r["tau_floor"]),
            ]
            for r in d["spaces"]
        ],
        "lrrrrrrr",
    )
    png = src.path.with_suffix(".png")
    return Section(
        "latency-tables",
        7,
        "Rows measured twice",
        body,
        provenance_of(src, "row_repeat"),
        [(png, "Rows measured again against the table, after the median move")] if png.exists() else [],
    )


def warmup_choices_section(src: Source) -> Section:
    d = src.data
    ft = d["runs"][0]["config"]
    body = [
        f"`{d['space']}` trained with the family's digits budget ({ft['epochs']} epochs, batch {ft['batch_size']}, "
        f"sampling {ft['sampling']}) with ViT-ResNAS's warm-up of choices and rewiring (the default) and without "
        f"(`--no-warmup-choices`), {len(d['seeds'])} seeds; inherited test top-1 of the largest, smallest and middle "
        "subnets.",
        "",
    ]
    rows = [
        [
            "on" if r["warmup_choices"] else "off",
            str(r["seed"]),
            *(pct(r[f"test_top1_{k}"], 2) for k in ("largest", "smallest", "middle")),
        ]
        for r in d["runs"]
    ]
    rows += [
        [f"mean, {label}", "", *(pct(m[k], 2) for k in ("largest", "smallest", "middle"))]
        for label, m in d["mean"].items()
    ]
    body += table(["warm-up and rewiring", "seed", "largest", "smallest", "middle"], rows, "llrrr")
    return Section(
        "supernet", 4, "ViT-ResNAS's warm-up of choices and rewiring", body, provenance_of(src, "warmup_choices"), []
    )


def multi_arch_section(src: Source) -> Section:
    """Data-parallel multi-architectural sampling (`multi_arch.py --processes N`)."""
    d = src.data
    body = [
        f"`{d['space']}`, {d['processes']} gloo processes on this CPU ({d['machine']['threads_per_process']} thread(s) "
        f"each), batch {d['batch_size_per_process']} per process, {d['steps']} optimiser steps of the trainer's step "
        "model per row. Each rank logs the subnets it trained; distinct subnets are counted per optimiser step across "
        "the ranks. *per process* is `--sampling multi` (each process draws its own M subnets), *shared* the same "
        "with `--shared-draws` (every process the same M).",
        "",
    ]
    body += table(
        [
            "M per process",
            "draws",
            "subnets per step",
            "distinct per step (min)",
            "step (ms)",
            "images/s",
            "replicas equal",
        ],
        [
            [
                str(r["archs_per_batch"]),
                r["draws"],
                str(r["subnets_per_step"]),
                f"{r['distinct_subnets_per_step']['mean']:.2f} ({r['distinct_subnets_per_step']['min']})",
                f"{1e3 * r['step_seconds']:.1f}",
                num(r["images_per_second"]),
                "yes" if r["replicas_equal"] else "no",
            ]
            for r in d["rows"]
        ],
        "rlrrrrl",
    )
    png = src.path.with_suffix(".png")
    return Section(
        "supernet",
        3,
        f"Multi-architectural sampling on {d['processes']} processes",
        body,
        provenance_of(src, "multi_arch", default_out="benchmarks/results/multi_arch_ddp.json"),
        [(png, "Distinct subnets per step and images per second")] if png.exists() else [],
    )


def search_vs_manual_section(src: Source) -> Section:
    d = src.data
    body = [
        "Per digits supernet, latency budgets at fractions of the way from the fastest to the slowest subnet "
        "(predicted CPU latency; the percentage beside each budget); per budget, "
        f"{len(d['seeds'])} seeds of search ({len(d.get('paper_seeds', d['seeds']))} with `--preset paper`) against "
        "the best DeiT-style uniform arch that fits (every layer alike, "
        "best by inherited search-val top-1 among all uniform archs within the budget). Each pick is fine-tuned the "
        "same way (`hwnas finetune` defaults) and scored on the same test images (95% Wilson interval); an exact "
        f"McNemar test on the images one gets right and the other wrong decides a win or loss at p < "
        f"{d['significance']:g}, anything else is a tie. Latency: every pick measured end to end in fresh processes "
        "(mean of them).",
        "",
    ]
    for s in d["spaces"]:
        ft = s.get("finetune") or {}
        body += [
            f"**{s['space']}** (fine-tuned {ft.get('epochs')} epochs at lr {ft.get('lr')}):",
            "",
        ]
        rows = []
        for r in s["rows"]:
            a, u, m = r["searched"], r["uniform"], r["mcnemar"]
            rows.append(
                [
                    r["preset"],
                    f"{ms(r['budget_ms'])} ({r['fraction']:.0%})",
                    str(r["seed"]),
                    f"{pct(a['test_top1'], 2)} ({a['test_top1_95ci'][0]:.1f}–{a['test_top1_95ci'][1]:.1f})",
                    ms(statistics.mean(a["measured_ms"])) if a.get("measured_ms") else "-",
                    f"{pct(u['test_top1'], 2)} ({u['test_top1_95ci'][0]:.1f}–{u['test_top1_95ci'][1]:.1f})",
                    ms(statistics.mean(u["measured_ms"])) if u.get("measured_ms") else "-",
                    f"{m['searched_only']} / {m['uniform_only']}",
                    f"{m['p_value']:.3f}",
                    m["verdict"],
                ]
            )
        body += table(
            [
                "preset",
                "budget (ms)",
                "seed",
                "searched: test top-1 (95% CI)",
                "measured ms",
                "uniform: test top-1 (95% CI)",
                "measured ms",
                "images only searched / only uniform right",
                "McNemar p",
                "verdict",
            ],
            rows,
            "lrrrrrrrrl",
        )
        for k in s.get("no_uniform_fits", []):
            body += [
                "",
                f"At {k['budget_ms']} ms ({k['fraction']:.0%}) no uniform arch fits (the fastest predicts "
                f"{k['fastest_uniform_ms']:.3f} ms): nothing to compare, not searched.",
            ]
        body += [""]
    tally = "; ".join(f"{k}: {v['win']} wins, {v['tie']} ties, {v['loss']} losses" for k, v in d["tally"].items())
    body += [f"Searched against uniform, {tally}. The whole benchmark took {d['seconds'] / 60:.0f} min."]
    if d.get("earlier_commands"):
        body += ["", "Run one space at a time (`--append`); besides the command below: "]
        body[-1] += "; ".join(f"`{c}`" for c in d["earlier_commands"]) + "."
    png = src.path.with_suffix(".png")
    return Section(
        "search",
        0,
        "Does search beat a hand-designed ViT?",
        body,
        provenance_of(src, "search_vs_manual", default_out="benchmarks/results/search_vs_manual.json"),
        [(png, "Test top-1 after fine-tuning against measured latency")] if png.exists() else [],
        f"searched against hand-designed uniform ViTs under the same latency budget: {tally}",
    )


# script name: renderer; a JSON belongs to the longest script name its file name starts with
RENDERERS: dict[str, Callable[[Source], Section]] = {
    "calibration_subnets": calibration_subnets_section,
    "cost_counting": cost_counting_section,
    "data_scale": data_scale_section,
    "demo": demo_section,
    "export_workers": export_workers_section,
    "glit_subnets": glit_subnets_section,
    "hflip": hflip_section,
    "latency_table": latency_table_section,
    "missing_rows": missing_rows_section,
    "multi_arch": multi_arch_section,
    "multi_device": multi_device_section,
    "noise_floor": noise_floor_section,
    "operator_rows": operator_rows_section,
    "ranking": ranking_section,
    "row_repeat": row_repeat_section,
    "fitted_rows": fitted_rows_section,
    "rowfit": rowfit_section,
    "samplers": samplers_section,
    "search_vs_manual": search_vs_manual_section,
    "transfer": transfer_section,
    "warmup_choices": warmup_choices_section,
}


def renderer_of(path: Path) -> str | None:
    names = [n for n in RENDERERS if path.stem.startswith(n)]
    return max(names, key=len) if names else None


def dropped_reason(src: Source) -> str | None:
    d = src.data
    if isinstance(d, dict) and "provenance" in d:
        return None  # a run recorded with its provenance: shown
    if src.rel in DROPPED:
        return DROPPED[src.rel]
    if src.path.name == "validate.json":
        table_json = src.path.parent.parent / "latency_table.json"
        spaces = [r["space"] for r in _load(table_json)["results"]] if table_json.exists() else []
        if f"validate_{d.get('space')}" != src.path.parent.name or d.get("space") not in spaces:
            return "a validation outside any latency_table.json's results"
    if isinstance(d, dict) and isinstance(d.get("config"), dict) and training_format(d["config"]) < 2:
        return "trained under config format 1 (draws and weight decay of an older recipe)"
    for key in ("variants", "runs"):  # glit_subnets, samplers: the rows trained under config format 1 are left off
        if (
            isinstance(d, dict)
            and isinstance(d.get(key), list)
            and d[key]
            and all(training_format(r.get("config")) < 2 for r in d[key])
        ):
            return f"every one of its {key} trained under config format 1 (draws and weight decay of an older recipe)"
    return None


def sources() -> tuple[list[Source], dict[str, str]]:
    """The results JSON to render, and those left off with the reason."""
    kept, dropped = [], {}
    for path in sorted(RESULTS.rglob("*.json")):
        src = Source(path)
        reason = dropped_reason(src)
        if reason:
            dropped[src.rel] = reason
        elif path.name != "validate.json":  # validations are rendered with their table
            kept.append(src)
    return kept, dropped


def sections(kept: list[Source]) -> list[Section]:
    out = []
    for src in kept:
        name = renderer_of(src.path)
        if name is None:
            raise SystemExit(
                f"report.py: no section renders {src.rel}; add a renderer to benchmarks/report.py or "
                "a reason to DROPPED"
            )
        section = RENDERERS[name](src)
        if name == "latency_table" and (command := latency_table_command(src)):
            section.provenance.command = command
        out.append(section)
    return sorted(out, key=lambda s: (list(PAGES).index(s.page), s.order, s.title))


# ---------------------------------------------------------------- pages


def page_text(slug: str, secs: list[Section]) -> str:
    title, what = PAGES[slug]
    lines = [
        f"# {title}",
        "",
        what,
        "",
        "Generated by `benchmarks/report.py` from the JSON under `benchmarks/results/`; do not edit by hand.",
        "",
    ]
    for s in secs:
        lines += [f"## {s.title}", "", *s.body, ""]
        for png, caption in s.images:
            lines += [f"![{caption}](img/{image_name(png)})", "", f"*{caption}.*", ""]
        lines += [s.provenance.line(), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def index_text(by_page: dict[str, list[Section]]) -> str:
    lines = [
        "# Results",
        "",
        "Figures measured by the benchmarks in `benchmarks/`, generated by `benchmarks/report.py` from the JSON "
        "they write under `benchmarks/results/`. Each result names its date, machine, software versions and the "
        "command that produced it.",
        "",
    ]
    rows = []
    for slug, secs in by_page.items():
        headline = next((s.headline for s in secs if s.headline), "; ".join(s.title for s in secs))
        rows.append([f"[{PAGES[slug][0]}]({slug}.md)", headline])
    lines += table(["page", "headline"], rows)
    return "\n".join(lines) + "\n"


def headline_block(kept: list[Source], by_page: dict[str, list[Section]]) -> str:
    """The README's results block: one small table of headline figures, each linking to its page, and the
    machines and dates they come from. Rows whose result is not on the pages are left out."""
    by_rel = {s.rel: s for s in kept}
    sections_by_rel = {s.provenance.data[0]: s for secs in by_page.values() for s in secs}
    rows: list[list[str]] = []
    used: list[Section] = []
    Text = Callable[[dict[str, Any]], str]

    def add(name: str, page: str, label: Text, value: Text) -> None:
        rel = f"benchmarks/results/{name}"
        if rel not in by_rel or rel not in sections_by_rel:
            return
        d = by_rel[rel].data
        rows.append([label(d), value(d), f"[{PAGES[page][0]}](docs/results/{page}.md)"])
        used.append(sections_by_rel[rel])

    def worst_calibrated(r: dict[str, Any]) -> dict[str, float]:
        return worst(r["validation"]["calibrated"])

    add(
        "latency_cpu/latency_table.json",
        "latency-tables",
        lambda d: (
            "Shipped CPU latency table: subnets within ±10% of the prediction / Kendall τ ("
            + "/".join(sorted({str(r["validation"]["n"]) for r in d["results"]}))
            + " per space, worse of "
            + "/".join(sorted({str(r["validation"]["processes"]) for r in d["results"]}))
            + " processes)"
        ),
        lambda d: ", ".join(
            f"{r['space']} {pct(worst_calibrated(r)['within_10pct'], 0)} / {tau(worst_calibrated(r)['kendall_tau'])}"
            for r in d["results"]
        ),
    )

    def uniform_runs(d: dict[str, Any]) -> list[dict[str, Any]]:
        return [r for r in d["runs"] if r["sampling"] == "uniform" and training_format(r.get("config")) >= 2]

    def mean_top1(d: dict[str, Any], subnet: str) -> str:
        return pct(statistics.mean(r["subnets"][subnet]["test_top1"] for r in uniform_runs(d)), 2)

    add(
        "samplers.json",
        "supernet",
        lambda d: (
            f"Supernet, {d['space']}: inherited test top-1 (`--sampling uniform`, mean of {len(uniform_runs(d))} seeds)"
        ),
        lambda d: f"largest {mean_top1(d, 'largest')}, smallest {mean_top1(d, 'smallest')}",
    )

    def glit_default(d: dict[str, Any]) -> dict[str, Any]:
        kept_variants = [v for v in d["variants"] if training_format(v.get("config")) >= 2]
        return next((v for v in kept_variants if v["name"] == "default"), kept_variants[0])

    def glit_value(d: dict[str, Any]) -> str:
        subnets = glit_default(d)["subnets"]
        low = min(subnets, key=lambda r: r["test_top1_recalibrated"])
        top = max(subnets, key=lambda r: r["test_top1_recalibrated"])
        return (
            f"{pct(low['test_top1_recalibrated'], 2)} ({low['name']}) to {pct(top['test_top1_recalibrated'], 2)} "
            f"({top['name']}); target {d['target_top1']:g}%"
        )

    add(
        "glit_subnets.json",
        "supernet",
        lambda d: (
            f"Supernet, {glit_default(d)['space']} ({glit_default(d)['config']['epochs']} epochs at lr "
            f"{glit_default(d)['config']['lr']:g}): inherited test top-1 of the listed subnets, BatchNorm recalibrated"
        ),
        glit_value,
    )

    def searched(d: dict[str, Any]) -> str:
        t, h = d["searched_fine_tuned"], d["hand_designed_uniform"]
        (a, b), (c, e) = t["test_top1_95ci"], h["test_top1_95ci"]
        overlap = "95% intervals overlap" if a <= e and c <= b else "95% intervals apart"
        return (
            f"searched {pct(t['test_top1'], 2)} ({ms(t['predicted_ms'])} ms predicted), hand-designed uniform "
            f"{pct(h['test_top1'], 2)} ({ms(h['predicted_ms'])} ms); {overlap}"
        )

    add(
        "demo.json",
        "demo",
        lambda d: (
            f"Demo search, {d['searched_fine_tuned']['arch']['space']}: test top-1 of the winner (fine-tuned) "
            f"against a hand-designed uniform subnet, budget {d['budget_ms']} ms"
        ),
        searched,
    )
    add(
        "demo.json",
        "demo",
        lambda d: "Demo export: the exported winner measured against its predicted latency",
        lambda d: (
            f"{ms(d['searched_fine_tuned']['measured_ms'])} ms against "
            f"{ms(d['searched_fine_tuned']['predicted_ms'])} ms ({signed_pct(d['measured_vs_predicted_pct'])})"
        ),
    )
    add(
        "search_vs_manual.json",
        "search",
        lambda d: (
            "Searched subnets against the best uniform (DeiT-style) arch under the same latency budget, both "
            "fine-tuned, paired McNemar test at p < 0.05"
        ),
        lambda d: "; ".join(
            f"{k}: {v['win']} wins, {v['tie']} ties, {v['loss']} losses" for k, v in d["tally"].items()
        ),
    )
    add(
        "multi_arch_ddp.json",
        "supernet",
        lambda d: f"Multi-architectural sampling on {d['processes']} processes: distinct subnets per optimiser step",
        lambda d: ", ".join(
            f"M={r['archs_per_batch']} {r['draws']}: {r['distinct_subnets_per_step']['mean']:g}" for r in d["rows"]
        ),
    )
    add(
        "multi_device.json",
        "search",
        lambda d: (
            f"NSGA-II (one run) against evolution (one run per budget): hypervolume, {d['front']['evaluations']} "
            f"evaluations, mean of {len(d['front']['seeds'])} seeds"
        ),
        lambda d: (
            f"{d['front']['hypervolume_mean']['nsga2']:.2f} against {d['front']['hypervolume_mean']['evolution']:.2f}"
        ),
    )
    add(
        "multi_arch.json",
        "supernet",
        lambda d: f"Multi-architectural sampling on {d['space']}: subnets trained per second over single path",
        lambda d: ", ".join(
            f"{k.removeprefix('multi ')}: {v:.1f}x" for k, v in d["multi_more_subnets_per_second"].items()
        ),
    )
    add(
        "cost_counting.json",
        "cost-counting",
        lambda d: f"Analytic parameter and MAC counting ({', '.join(r['space'] for r in d['rows'])})",
        lambda d: span((r["analytic_speedup"] for r in d["rows"]), lambda x: num(x)) + "x faster than fvcore",
    )

    machines: dict[str, list[str]] = {}
    for sec in used:
        for m in sec.provenance.machines:
            machines.setdefault(m.get("cpu_model") or "CPU not recorded", []).append(sec.provenance.date)
    note = "; ".join(f"{m} ({span(dates, str).replace('–', ' to ')})" for m, dates in sorted(machines.items()))
    lines = table(["result", "figure", "page"], rows, "lll")
    lines += ["", f"Measured on: {note}."]
    return "\n".join(lines) + "\n"


def build(out: Path) -> str:
    """Write the pages (and their images) into `out`; return the README's results block."""
    kept, _ = sources()
    secs = sections(kept)
    by_page: dict[str, list[Section]] = {}
    for s in secs:
        by_page.setdefault(s.page, []).append(s)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.md").write_text(index_text(by_page))
    for slug, page_secs in by_page.items():
        (out / f"{slug}.md").write_text(page_text(slug, page_secs))
        for s in page_secs:
            for png, _ in s.images:
                (out / "img").mkdir(exist_ok=True)
                shutil.copyfile(png, out / "img" / image_name(png))
    return headline_block(kept, by_page)


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def readme_with(block: str) -> str | None:
    """The README with its results block replaced (None: the README has no such block)."""
    if not README.exists():
        return None
    text = README.read_text()
    lines = text.split("\n")
    if BEGIN not in lines or END not in lines:
        return None
    start, end = lines.index(BEGIN), lines.index(END)
    if end < start:
        return None
    return "\n".join([*lines[: start + 1], *block.rstrip("\n").split("\n"), *lines[end:]])


def differences(generated: Path, block: str) -> list[str]:
    """Files under docs/results (and the README) that differ from what `build` wrote into `generated`."""
    new, old = files_under(generated), files_under(DOCS)
    diff = sorted(f"docs/results/{f}" for f in new ^ old)
    diff += sorted(f"docs/results/{f}" for f in new & old if not filecmp.cmp(generated / f, DOCS / f, shallow=False))
    readme = readme_with(block)
    if readme is not None and readme != README.read_text():
        diff.append("README.md (results block)")
    return sorted(diff)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Results pages (docs/results/) and the README headline from benchmarks/results/."
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed pages differ from the JSON's")
    parser.add_argument("--dropped", action="store_true", help="list the results left off the pages, with the reason")
    parser.add_argument("--out", type=Path, help="write the pages here instead of docs/results (README untouched)")
    args = parser.parse_args()
    if args.dropped:
        for rel, reason in sorted(sources()[1].items()):
            print(f"{rel}: {reason}")
        return 0
    if args.out:
        build(args.out)
        print(f"wrote {args.out}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generated = Path(tmp) / "results"
        block = build(generated)
        diff = differences(generated, block)
        if args.check:
            if diff:
                print("out of date (run .venv/bin/python benchmarks/report.py):\n  " + "\n  ".join(diff))
                return 1
            print("docs/results and the README's results block are up to date")
            return 0
        if DOCS.exists():
            shutil.rmtree(DOCS)
        shutil.copytree(generated, DOCS)
    readme = readme_with(block)
    if readme is None:
        print(f"README.md has no {BEGIN} ... {END} block: left as it is")
    elif readme != README.read_text():
        README.write_text(readme)
        print("README.md: results block updated")
    print(f"wrote docs/results/ ({len(files_under(DOCS))} files); changed: {', '.join(diff) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
