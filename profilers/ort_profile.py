"""Measure a bundle of ONNX models with ONNX Runtime on the CPU (no torch, no hwnas needed).

    python ort_profile.py BUNDLE_DIR [--threads 1] [--device cpu]

writes BUNDLE_DIR/measurements.csv and fingerprint.json; bring the folder back and run
`hwnas import-table BUNDLE_DIR --device LABEL` to turn it into a latency table.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

try:  # imported as hwnas.profilers.ort_profile
    from . import protocol as P
except ImportError:  # run as a script from the profilers folder
    import protocol as P  # type: ignore[no-redef]

BACKEND = "onnxruntime"


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise P.ProfilerError("onnxruntime is not installed; pip install onnxruntime") from exc
    return onnxruntime


def session_settings(threads: int) -> dict[str, Any]:
    """The SessionOptions every measurement uses; recorded in the fingerprint. One thread per op and
    sequential execution make a block's time independent of the others (see README)."""
    if threads < 1:
        raise P.ProfilerError(f"--threads must be at least 1, got {threads}; 1 is the most stable on small hosts")
    return {
        "intra_op_num_threads": threads,
        "inter_op_num_threads": 1,
        "execution_mode": "ORT_SEQUENTIAL",
        "graph_optimization_level": "ORT_ENABLE_ALL",
        "providers": ["CPUExecutionProvider"],
    }


def session(path: str | Path, threads: int) -> Any:
    ort = _ort()
    settings = session_settings(threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings["intra_op_num_threads"]
    options.inter_op_num_threads = settings["inter_op_num_threads"]
    options.execution_mode = getattr(ort.ExecutionMode, settings["execution_mode"])
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, settings["graph_optimization_level"])
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=settings["providers"])


def loader(threads: int, protocol: P.Protocol) -> Any:
    """A bundle loader: (model path, entry) -> a runner timing one `session.run` in milliseconds."""

    def load(path: Path, entry: P.Entry) -> P.Runner:
        sess = session(path, threads)
        name = sess.get_inputs()[0].name
        inputs = P.make_inputs(entry, protocol)

        def run(i: int) -> float:
            feed = {name: inputs[i % len(inputs)]}
            start = time.perf_counter_ns()
            sess.run(None, feed)
            return (time.perf_counter_ns() - start) / 1e6

        return run

    return load


def fingerprint(device: str, threads: int, protocol: P.Protocol) -> dict[str, Any]:
    ort = _ort()
    return {
        "device": device,
        "backend": BACKEND,
        "backend_version": ort.__version__,
        "onnxruntime": ort.__version__,
        "threads": threads,
        "session_options": session_settings(threads),
        "protocol": protocol.to_dict(),
        **P.host_fingerprint(),
    }


def measure(
    folder: str | Path,
    device: str = "cpu",
    threads: int = 1,
    protocol: P.Protocol = P.Protocol(),  # noqa: B008  (frozen)
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Measure every model of the bundle (resuming), then record the fingerprint beside the rows.
    `kwargs` go to `protocol.measure_entries` (progress, on_rows)."""
    fp = fingerprint(device, threads, protocol)
    rows = P.measure_bundle(folder, loader(threads, protocol), protocol, **kwargs)
    P.write_fingerprint(folder, fp)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = P.script_parser(__doc__, default_device="cpu")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    args = parser.parse_args(argv)
    return P.run_script(
        "ort_profile",
        args,
        lambda protocol, progress: measure(args.bundle, args.device, args.threads, protocol, progress=progress),
    )


if __name__ == "__main__":
    sys.exit(main())
