"""A wheel built from the checkout, installed into a fresh virtual environment outside it.

The wheel is installed with pip (`--no-deps`); its dependencies (torch, timm, onnxruntime, ...)
come from the test environment's site-packages through a `.pth` line, which runs no editable hook,
so `hwnas` itself can only come from the wheel. Built once per test session (conftest's
`installed_wheel`): test_wheel checks the install, test_pipeline runs its demo from it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class InstalledWheel:
    python: Path  # the fresh environment's interpreter
    site: Path  # its site-packages, where the wheel went
    cache: Path  # XDG_CACHE_HOME of the commands run through `hwnas`

    def hwnas(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`hwnas ARGS` with the installed package, from `cwd`, without the checkout on the path."""
        # local calibrations go where an installed hwnas puts them (XDG_CACHE_HOME), not the tests' folder
        drop = ("PYTHONPATH", "HWNAS_TABLES", "HWNAS_CALIBRATION_DIR")
        base = {k: v for k, v in os.environ.items() if k not in drop}
        return subprocess.run(
            [str(self.python), "-m", "hwnas", *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**base, "XDG_CACHE_HOME": str(self.cache), **(env or {})},
            timeout=600,
        )


# what the wheel is built from: copied, so no build/ folder of an earlier build can slip stale modules in
SOURCES = ("pyproject.toml", "README.md", "hwnas", "profilers", "latency_tables")
LEFT_OUT = shutil.ignore_patterns("__pycache__", "*.local.json", ".*.work")


def _run(*args: str) -> str:
    return subprocess.run(list(args), check=True, capture_output=True, text=True).stdout


def install_wheel(root: Path) -> InstalledWheel:
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=LEFT_OUT)
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = (sys.executable, "-m", "pip")
    _run(*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "--quiet", "--wheel-dir", str(root / "dist"))
    wheel = next((root / "dist").glob("hwnas-*.whl"))
    _run(sys.executable, "-m", "venv", "--without-pip", str(root / "venv"))
    python = root / "venv" / "bin" / "python"
    site = Path(_run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    _run(*pip, "install", "--no-deps", "--quiet", "--target", str(site), str(wheel))
    (site / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return InstalledWheel(python=python, site=site, cache=root / "cache")
