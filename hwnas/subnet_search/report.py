"""What a search leaves to look at: the history of every evaluated arch, its Pareto front (search-val
top-1 against predicted latency, or GMACs without a table) as CSV, and a plot with the budget."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hwnas.io import atomic_write_bytes
from hwnas.plots import figure, save_figure
from hwnas.subnet_search.constraints import METRICS
from hwnas.subnet_search.evolution import Record

AXIS = {"latency_ms": "predicted latency (ms)", "flops_g": "GMACs (multiply-accumulates)", "params_m": "params (M)"}


def history_frame(records: Sequence[Record]) -> pd.DataFrame:
    rows = [{"generation": r.generation, "origin": r.origin, "digest": r.arch.digest, "top1_search_val": r.top1,
             "loss_search_val": r.loss if math.isfinite(r.loss) else None, **r.costs, "arch": json.dumps(r.arch.to_dict(), separators=(",", ":"))} for r in records]
    return pd.DataFrame(rows)


def pareto_front(history: pd.DataFrame, cost: str) -> pd.DataFrame:
    """The archs no other arch beats in both accuracy and `cost`, cheapest first."""
    ordered = history.sort_values([cost, "top1_search_val"], ascending=[True, False], kind="stable")
    best = ordered["top1_search_val"].cummax()
    keep = ordered["top1_search_val"] > best.shift(fill_value=-np.inf)
    return ordered[keep.to_numpy()].reset_index(drop=True)


def write_tables(history: pd.DataFrame, pareto: pd.DataFrame, out: Path) -> tuple[Path, Path]:
    return (atomic_write_bytes(out / "history.csv", history.to_csv(index=False)),
            atomic_write_bytes(out / "pareto.csv", pareto.to_csv(index=False)))


def pareto_plot(history: pd.DataFrame, pareto: pd.DataFrame, cost: str, limit: float | None, best_digest: str,
                title: str, path: Path) -> Path:
    fig, ax = figure(7, 4.5)
    points = ax.scatter(history[cost], history["top1_search_val"], c=history["generation"], cmap="viridis", s=14,
                        alpha=0.7, label="evaluated (all within the budget)")
    fig.colorbar(points, ax=ax, label="generation")
    ax.step(pareto[cost], pareto["top1_search_val"], where="post", color="tab:red", lw=1.5)
    ax.scatter(pareto[cost], pareto["top1_search_val"], color="tab:red", s=24, label="Pareto front")
    best = history[history["digest"] == best_digest].iloc[0]
    ax.scatter([best[cost]], [best["top1_search_val"]], marker="*", s=220, color="gold", edgecolors="k", zorder=5,
               label=f"best: {best['top1_search_val']:.1f}% at {best[cost]:.4g}")
    if limit is not None:
        ax.axvline(limit, color="k", ls="--", lw=1, label=f"budget {METRICS[cost][0]} {limit:g}")
    ax.set_xlabel(AXIS[cost])
    ax.set_ylabel("search-val top-1 (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)
