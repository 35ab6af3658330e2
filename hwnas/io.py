"""File writing that never leaves a half-written result behind (write a temporary file, then rename).

The implementation is the device-side profilers' (they cannot import hwnas), shared here.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from hwnas.profilers.protocol import atomic_write as atomic_write_bytes

__all__ = ["atomic_write_bytes", "atomic_write_json", "package_data", "sha256_file"]


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_bytes(path, json.dumps(obj, indent=2) + "\n")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks (supernet weights can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_data(package: str, *parts: str) -> Path:
    """A folder or file shipped inside `package`: found the same way in a wheel install and a checkout."""
    return Path(str(resources.files(package).joinpath(*parts)))
