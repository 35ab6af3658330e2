"""The measurement protocol shared by every hwnas profiler: what is timed, how, and what is written.

Needs only the Python standard library and numpy, so the profilers run on a target that cannot
install torch or hwnas. A *bundle* is a folder written by `hwnas profile --export-blocks DIR`:
`manifest.json` plus one model file per entry. Measuring it writes `measurements.csv` (one row per
model, rewritten atomically after every group, so a killed run resumes where it stopped) and
`fingerprint.json` (the machine and runtime that measured it).

Protocol (after nn-Meter/FBNet tables and our own noise study, see README "Latency tables"):
models are measured in groups; each model is warmed up (>= `warmup_runs` calls and >= `warmup_s`
seconds), then the group runs `rounds` rounds, each visiting the group's models in a fresh random
order and timing every call for >= `round_s` seconds, the inputs rotating over `num_inputs`
tensors. Interleaving spreads slow phases of a noisy machine over all models instead of one.

Slow phases: a shared host (a cloud VM whose sibling hyperthread another tenant uses, a laptop
that throttles) runs everything about 1.5x slower for tens of seconds at a time. A group of 32
models' rounds span about a minute, so each model sees fast and slow phases; the statistics then
keep only the rounds whose median is within `round_tolerance` of the model's fastest round (the
machine's uncontended speed, what a dedicated target runs at). `round_tolerance` None keeps every
round (the protocol of tables measured before it existed).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
MEASUREMENTS = "measurements.csv"
FINGERPRINT = "fingerprint.json"
MANIFEST_VERSION = 1
STAT_COLUMNS = ("p10_ms", "p50_ms", "p90_ms", "mean_ms", "runs", "rounds", "round_spread")
COLUMNS = ("file", "key", *STAT_COLUMNS)

# A runner times one call of a loaded model on rotated input number i and returns milliseconds.
Runner = Callable[[int], float]
# Progress callbacks get (model-rounds done, model-rounds in all, models done, models in all).
Progress = Callable[[int, int, int, int], None]


class ProfilerError(Exception):
    """Bad input the user can fix; the scripts print it as one line and exit with code 2."""


@dataclass(frozen=True)
class Protocol:
    warmup_runs: int = 20
    warmup_s: float = 0.5
    rounds: int = 8
    round_s: float = 0.25
    min_runs_per_round: int = 3
    group_size: int = 32
    num_inputs: int = 4
    seed: int = 0
    round_tolerance: float | None = 0.1

    @classmethod
    def quick(cls) -> Protocol:
        """Few, short rounds: rough numbers in seconds, for smoke tests and the demo."""
        return cls(warmup_runs=5, warmup_s=0.05, rounds=3, round_s=0.03)

    @classmethod
    def brief(cls) -> Protocol:
        """Short interleaved rounds for a spot check or a recalibration of whole subnets: a few
        hundred calls per small model, medians within a few percent of the full protocol's."""
        return cls(warmup_runs=10, warmup_s=0.1, rounds=5, round_s=0.05)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Protocol:
        """The protocol a table or job recorded; one recorded before `round_tolerance` existed kept every round."""
        return cls(**{"round_tolerance": None, **{f.name: d[f.name] for f in fields(cls) if f.name in d}})


@dataclass(frozen=True)
class Entry:
    """One model of a bundle: a block (`kind` "block", `key` its table key) or a whole network
    (`kind` "network", `blocks` the keys whose sum predicts it)."""

    file: str
    key: str
    kind: str
    input_shape: tuple[int, ...]
    input_dtype: str = "float32"
    input_name: str = "x"
    blocks: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stats:
    p10_ms: float
    p50_ms: float
    p90_ms: float
    mean_ms: float
    runs: int  # calls in the kept rounds
    rounds: int  # rounds kept (see `round_tolerance`)
    round_spread: float  # (max - min) / median of the per-round medians, over every round

    @classmethod
    def of(cls, rounds: Sequence[Sequence[float]], tolerance: float | None = None) -> Stats:
        """Statistics over the calls of the rounds whose median is within `tolerance` (a fraction)
        of the fastest round's median; every round when `tolerance` is None."""
        medians = np.array([np.median(r) for r in rounds])
        kept = [r for r, m in zip(rounds, medians) if tolerance is None or m <= medians.min() * (1 + tolerance)]
        samples = np.concatenate([np.asarray(r, dtype=float) for r in kept])
        p10, p50, p90 = np.percentile(samples, [10, 50, 90])
        spread = float((medians.max() - medians.min()) / np.median(medians))
        return cls(float(p10), float(p50), float(p90), float(samples.mean()), int(samples.size), len(kept), spread)


def read_manifest(folder: str | Path) -> tuple[dict[str, Any], list[Entry]]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ProfilerError(
            f"{folder} has no {MANIFEST}; write a bundle with `hwnas profile --export-blocks {folder} ...`"
        )
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("version") != MANIFEST_VERSION:
            raise ValueError(f"manifest version {manifest.get('version')!r}, this profiler reads {MANIFEST_VERSION}")
        entries = [
            Entry(
                file=m["file"],
                key=m["key"],
                kind=m["kind"],
                input_shape=tuple(m["input"]["shape"]),
                input_dtype=m["input"]["dtype"],
                input_name=m["input"]["name"],
                blocks=tuple(m.get("blocks", ())),
                extra={k: v for k, v in m.items() if k not in {"file", "key", "kind", "input", "blocks"}},
            )
            for m in manifest["models"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProfilerError(f"{path} is not a valid bundle manifest ({exc}); export the bundle again") from exc
    missing = [e.file for e in entries if not (Path(folder) / e.file).is_file()]
    if missing:
        raise ProfilerError(f"bundle {folder} lacks {missing[0]} (and {len(missing) - 1} more); copy the whole folder")
    return manifest, entries


def read_measurements(path: str | Path) -> dict[str, dict[str, str]]:
    """Rows already measured, by model file (empty when the file does not exist yet)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ProfilerError(
                f"{path} has columns {reader.fieldnames}, expected {list(COLUMNS)}; delete it to re-measure"
            )
        return {row["file"]: row for row in reader}


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write via a temporary file and a rename, so a kill never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_measurements(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in COLUMNS} for row in rows)
    atomic_write(path, buf.getvalue())


def make_inputs(entry: Entry, protocol: Protocol) -> list[np.ndarray]:
    """`num_inputs` distinct random inputs for the model (rotated between calls)."""
    rng = np.random.default_rng(protocol.seed)
    return [rng.standard_normal(entry.input_shape).astype(entry.input_dtype) for _ in range(protocol.num_inputs)]


def time_group(
    runners: Sequence[Runner], protocol: Protocol, rng: random.Random, on_round: Callable[[], None] = lambda: None
) -> list[Stats]:
    """Warm up each runner, then time them in `protocol.rounds` shuffled rounds."""
    for run in runners:
        start, n = time.perf_counter(), 0
        while n < protocol.warmup_runs or time.perf_counter() - start < protocol.warmup_s:
            run(n)
            n += 1
    samples: list[list[list[float]]] = [[] for _ in runners]
    for _ in range(protocol.rounds):
        order = list(range(len(runners)))
        rng.shuffle(order)
        for i in order:
            times: list[float] = []
            start = time.perf_counter()
            while len(times) < protocol.min_runs_per_round or time.perf_counter() - start < protocol.round_s:
                times.append(runners[i](len(times)))
            samples[i].append(times)
            on_round()
    return [Stats.of(s, protocol.round_tolerance) for s in samples]


def measure_entries(
    folder: str | Path,
    entries: Sequence[Entry],
    load: Callable[[Path, Entry], Runner],
    protocol: Protocol = Protocol(),
    progress: Progress | None = None,
    release: Callable[[], None] = lambda: None,
    on_rows: Callable[[list[dict[str, Any]]], None] = lambda rows: None,
    out: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Measure `entries` with `load` (a backend's model loader) and return one row per entry.

    Rows go to `out` (default `folder/measurements.csv`) after every group, and entries already
    there are not measured again (a killed run resumes). `progress` gets (model-rounds done,
    total, models done, total); `release` frees a group's resources; `on_rows` sees all rows so far after every group.
    """
    folder = Path(folder)
    out = Path(out) if out else folder / MEASUREMENTS
    done = read_measurements(out)
    rows = [done[e.file] for e in entries if e.file in done]
    todo = [e for e in entries if e.file not in done]
    total, count = len(entries) * protocol.rounds, len(rows) * protocol.rounds
    rng = random.Random(protocol.seed)

    def tick() -> None:
        nonlocal count
        count += 1
        if progress:
            progress(count, total, len(rows), len(entries))

    if progress:
        progress(count, total, len(rows), len(entries))
    for start in range(0, len(todo), protocol.group_size):
        group = todo[start : start + protocol.group_size]
        runners = [load(folder / e.file, e) for e in group]
        stats = time_group(runners, protocol, rng, tick)
        del runners
        release()
        rows += [{"file": e.file, "key": e.key, **asdict(s)} for e, s in zip(group, stats)]
        write_measurements(out, rows)
        if progress:
            progress(count, total, len(rows), len(entries))
        on_rows(rows)
    return rows


def measure_bundle(
    folder: str | Path, load: Callable[[Path, Entry], Runner], protocol: Protocol = Protocol(), **kwargs: Any
) -> list[dict[str, Any]]:
    """Measure every model of the bundle in `folder` (see `measure_entries`)."""
    _, entries = read_manifest(folder)
    return measure_entries(folder, entries, load, protocol, **kwargs)


def host_fingerprint() -> dict[str, Any]:
    """What identifies the measuring machine, from the standard library alone."""
    return {
        "cpu_model": cpu_model(),
        **cpu_identity(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


# SIMD extensions that inference kernels dispatch on (x86 `flags`, Arm `Features` in /proc/cpuinfo).
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "asimddp",
    "asimdhp",
    "sve",
    "sve2",
    "i8mm",
    "bf16",
)


def cpu_identity() -> dict[str, str]:
    """The CPU's generation and ISA: a model name alone can be as vague as "AMD EPYC", which
    covers parts whose kernels run twice as fast as each other's."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break  # the first processor describes them all
            key, _, value = line.partition(":")
            info.setdefault(key.strip().lower(), value.strip())
    except OSError:
        return {"cpu_id": platform.processor() or platform.machine(), "cpu_isa": ""}
    if "cpu family" in info:
        cpu_id = (
            f"{info.get('vendor_id', '?')} family {info['cpu family']} model {info.get('model', '?')} "
            f"stepping {info.get('stepping', '?')}"
        )
    else:
        cpu_id = (
            " ".join(
                f"{k.removeprefix('cpu ')} {info[k]}"
                for k in ("cpu implementer", "cpu part", "cpu variant")
                if k in info
            )
            or platform.machine()
        )
    flags = set((info.get("flags") or info.get("features") or "").split())
    return {"cpu_id": cpu_id, "cpu_isa": " ".join(f for f in ISA_FLAGS if f in flags)}


def write_fingerprint(folder: str | Path, fingerprint: dict[str, Any]) -> None:
    stamped = {**fingerprint, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write(Path(folder) / FINGERPRINT, json.dumps(stamped, indent=2) + "\n")


def text_progress(label: str) -> Progress:
    """A progress callback: a tqdm bar (rounds, with time left, and models done) when tqdm is
    installed, else a line every 10%."""
    try:
        from tqdm import tqdm
    except ImportError:
        last = [-1]

        def report(done: int, total: int, models: int, all_models: int) -> None:
            tenth = done * 10 // max(total, 1)
            if tenth != last[0]:
                last[0] = tenth
                print(f"{label}: {models}/{all_models} models measured", flush=True)

        return report
    bars: list[Any] = []

    def update(done: int, total: int, models: int, all_models: int) -> None:
        if not bars:  # created on first use, so its clock starts with the measuring
            bars.append(tqdm(desc=label, unit="model-round", initial=done, total=total))
        bar = bars[0]
        bar.total = total
        bar.n = done
        bar.set_postfix_str(f"models done {models}/{all_models}", refresh=False)
        bar.refresh()
        if models >= all_models:
            bar.close()

    return update


# ---- the scripts' shared command line ---------------------------------------------------------------
def script_parser(doc: str, default_device: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="folder written by `hwnas profile --export-blocks`")
    parser.add_argument("--device", default=default_device, help="label of this target, recorded in the fingerprint")
    parser.add_argument("--rounds", type=int, default=Protocol.rounds, help="interleaved timing rounds")
    parser.add_argument(
        "--group-size",
        type=int,
        default=Protocol.group_size,
        help="models loaded and interleaved at once (lower it where memory is short)",
    )
    return parser


def run_script(
    name: str, args: argparse.Namespace, measure: Callable[[Protocol, Progress], list[dict[str, Any]]]
) -> int:
    """Run a profiler script's measurement; bad input is one line on stderr and exit code 2."""
    try:
        if args.rounds < 1 or args.group_size < 1:
            raise ProfilerError("--rounds and --group-size must be at least 1")
        rows = measure(Protocol(rounds=args.rounds, group_size=args.group_size), text_progress(name))
    except ProfilerError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    print(f"measured {len(rows)} models -> {Path(args.bundle) / MEASUREMENTS}")
    print(f"next: hwnas import-table {args.bundle} --device {args.device}")
    return 0
