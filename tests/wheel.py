"""A wheel built from the checkout, installed into a fresh virtual environment outside it.

The wheel is installed with pip (`--no-deps`); its dependencies (torch, timm, onnxruntime, ...)
come from the test environment's site-packages through a `.pth` line, which runs no editable hook,
so `hwnas` itself can only come from the wheel. Built once per test session (conftest's
`installed_wheel`): test_wheel checks the install, test_pipeline runs its demo from it.
"""

from __future__ import annotations

import os
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
        base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HWNAS_TABLES")}
        return subprocess.run(
            [str(self.python), "-m", "hwnas", *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**base, "XDG_CACHE_HOME": str(self.cache), **(env or {})},
            timeout=600,
        )


def install_wheel(root: Path) -> InstalledWheel:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(root / "dist"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next((root / "dist").glob("hwnas-*.whl"))
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    (site / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return InstalledWheel(python=python, site=site, cache=root / "cache")
