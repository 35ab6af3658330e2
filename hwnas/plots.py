"""Matplotlib without a screen, and figures saved atomically beside the JSON/CSV they illustrate."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from hwnas.io import atomic_write_bytes


def figure(width: float = 6, height: float = 4.5, ncols: int = 1) -> tuple[Any, Any]:
    """A new (figure, axes) on the non-interactive Agg backend (axes: one per column when ncols > 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, height))


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write_bytes(path, png.getvalue())
