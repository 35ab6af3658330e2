"""Where a benchmark result comes from: when, on which machine, with which versions, by which command.

Every benchmark in this folder stores `provenance()` under the key "provenance" of the JSON it writes;
`benchmarks/report.py` prints it under each result of the generated results pages.

    {"date": "2026-12-06T10:00:00+00:00",
     "command": "python benchmarks/search.py --seeds 0 1 2",
     "machine": {"cpu_model": "AMD EPYC", "cpu_id": "AuthenticAMD family 25 model 1 stepping 1",
                 "cores": 2, "gpu": null},
     "versions": {"python": "3.11.7", "torch": "2.14.1+cu130", "onnxruntime": "1.32.0", "hwnas": "0.1.0"}}

The CPU is identified as the latency tables' fingerprints identify it (`hwnas.profilers.protocol`:
the "model name" of /proc/cpuinfo, else `platform.processor()`, and the vendor/family/model/stepping,
since a model name can be as vague as "AMD EPYC"). The GPU is named only when torch sees one.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from hwnas.profilers.protocol import cpu_identity, cpu_model

ROOT = Path(__file__).resolve().parent.parent


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _relative(arg: str, cwd: Path) -> str:
    """`arg` with a path inside the repository written relative to its root (also `--opt=PATH`)."""
    if arg.startswith("-") and "=" in arg:
        option, value = arg.split("=", 1)
        return f"{option}={_relative(value, cwd)}"
    if not arg or arg.startswith("-"):
        return arg
    path = Path(arg) if os.path.isabs(arg) else cwd / arg
    if not os.path.isabs(arg) and not path.exists():
        return arg  # not a path here (a space name, a number): as given
    try:
        return Path(os.path.relpath(path.resolve(), ROOT)).as_posix() if path.resolve().is_relative_to(ROOT) else arg
    except (OSError, ValueError):
        return arg


def command_line(argv: list[str] | None = None) -> str:
    """The command that runs this process, as one would type it from the repository root."""
    argv = sys.argv if argv is None else argv
    cwd = Path.cwd()
    return shlex.join(["python", *(_relative(a, cwd) for a in argv)])


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def gpu_name() -> str | None:
    torch = _torch()
    return torch.cuda.get_device_name() if torch is not None and torch.cuda.is_available() else None


def provenance(command: str | None = None) -> dict[str, Any]:
    """Date (UTC, ISO 8601), command, machine and versions of the result this process writes."""
    torch = _torch()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "command": command if command is not None else command_line(),
        "machine": {
            "cpu_model": cpu_model(),
            "cpu_id": cpu_identity()["cpu_id"],
            "cores": os.cpu_count(),
            "gpu": gpu_name(),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": getattr(torch, "__version__", None),
            "onnxruntime": _version("onnxruntime", "onnxruntime-gpu"),
            "hwnas": _version("hwnas"),
        },
    }


if __name__ == "__main__":
    import json

    print(json.dumps(provenance(), indent=2))
