"""What a search leaves to look at: the history of every evaluated arch, its Pareto front (search-val
top-1 against predicted latency on each device, or GMACs without a table) as CSV, and a plot with a
panel per device and the budgets."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hwnas.io import atomic_write_bytes
from hwnas.plots import figure, save_figure
from hwnas.subnet_search.constraints import metric_device, metric_info
from hwnas.subnet_search.evolution import Record
from hwnas.subnet_search.feasibility import nondominated

AXIS = {"latency_ms": "predicted latency (ms)", "flops_g": "GMACs (multiply-accumulates)", "params_m": "params (M)"}


def axis_label(metric: str, device: str | None = None) -> str:
    if metric_device(metric):
        return f"predicted latency on {metric_device(metric)} (ms)"
    return AXIS[metric] if device is None else f"predicted latency on {device} (ms)"


def history_frame(records: Sequence[Record]) -> pd.DataFrame:
    rows = [
        {
            "generation": r.generation,
            "origin": r.origin,
            "digest": r.arch.digest,
            "top1_search_val": r.top1,
            "loss_search_val": r.loss if math.isfinite(r.loss) else None,
            **r.costs,
            "arch": json.dumps(r.arch.to_dict(), separators=(",", ":")),
        }
        for r in records
    ]
    return pd.DataFrame(rows)


def pareto_front(history: pd.DataFrame, costs: Sequence[str]) -> pd.DataFrame:
    """The archs no other arch beats in accuracy and every one of `costs` (one of equal archs),
    cheapest in the first cost first."""
    if history.empty:
        return history
    points = np.column_stack(
        [-history["top1_search_val"].to_numpy(float), *(history[c].to_numpy(float) for c in costs)]
    )
    front = history.iloc[np.sort(nondominated(points))]
    return front.sort_values([costs[0], "top1_search_val"], ascending=[True, False], kind="stable").reset_index(
        drop=True
    )


def write_tables(history: pd.DataFrame, pareto: pd.DataFrame, out: Path) -> tuple[Path, Path]:
    return (
        atomic_write_bytes(out / "history.csv", history.to_csv(index=False)),
        atomic_write_bytes(out / "pareto.csv", pareto.to_csv(index=False)),
    )


def pareto_plot(
    history: pd.DataFrame,
    costs: Sequence[str],
    budgets: Sequence[dict[str, float]],
    best_digest: str,
    title: str,
    path: Path,
    device: str | None = None,
) -> Path:
    """One panel per cost (latency on each device): every evaluated arch, the panel's own front,
    the winner and each budget's limit. `device` names the first latency panel's device."""
    fig, axes = figure(7 * len(costs), 4.5, ncols=len(costs))
    panels = list(np.atleast_1d(axes))
    best = history[history["digest"] == best_digest].iloc[0]
    for ax, cost in zip(panels, costs):
        points = ax.scatter(
            history[cost],
            history["top1_search_val"],
            c=history["generation"],
            cmap="viridis",
            s=14,
            alpha=0.7,
            label="evaluated",
        )
        front = pareto_front(history, [cost])
        ax.step(front[cost], front["top1_search_val"], where="post", color="tab:red", lw=1.5)
        ax.scatter(front[cost], front["top1_search_val"], color="tab:red", s=24, label="Pareto front")
        ax.scatter(
            [best[cost]],
            [best["top1_search_val"]],
            marker="*",
            s=220,
            color="gold",
            edgecolors="k",
            zorder=5,
            label=f"best: {best['top1_search_val']:.1f}% at {best[cost]:.4g}",
        )
        for limit in sorted({b[cost] for b in budgets if cost in b}):
            ax.axvline(limit, color="k", ls="--", lw=1, label=f"budget {metric_info(cost)[0]} {limit:g}")
        ax.set_xlabel(axis_label(cost, device if len(costs) > 1 else None))
        ax.set_ylabel("search-val top-1 (%)")
        ax.legend(fontsize=7, loc="lower right")
    fig.colorbar(points, ax=panels[-1], label="generation")
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
