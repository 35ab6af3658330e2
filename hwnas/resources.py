"""What this machine offers to worker processes: the cores this process may run on and the memory
free for them (loader workers, parallel ONNX exports)."""

from __future__ import annotations

import os
from pathlib import Path


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def available_memory_bytes() -> int | None:
    """Memory the kernel can give new processes without swapping (Linux `MemAvailable`); None where
    it does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
