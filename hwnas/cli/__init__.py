"""The `hwnas` command line, one module per stage; `main` is the entry point.

Conventions for every command: `--help` describes every option; a command that reports figures
accepts `--json` and then prints exactly one JSON object on stdout; bad input or usage prints one
line on stderr and exits with code 2 (`hwnas --debug ...` shows the traceback instead).
"""

from hwnas.cli import export, latency, pipeline, search, spaces, train  # noqa: F401  (each registers its commands)
from hwnas.cli.app import DRIFT_MODES, cli, main

__all__ = ["DRIFT_MODES", "cli", "main"]
