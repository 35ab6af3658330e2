"""`hwnas demo`: the pipeline as far as it exists, on the embedded digits data, on CPU.

Today: build the supernet, extract the smallest, the largest and random subnets, check each static
model against the supernet on real digits images, count its cost both ways, predict its CPU latency
from the CPU latency table (`hwnas profile --device cpu` builds one; one ships), and plot the space.
Training, search and export join here as their issues land.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from hwnas.cost import count_flops, count_params
from hwnas.data import load_digits_tensors
from hwnas.io import atomic_write_json
from hwnas.plots import figure, save_figure
from hwnas.spaces import Arch, SearchSpace
from hwnas.supernet import build_supernet

EQUIVALENCE_TOL = 1e-5


def run_demo(space: SearchSpace, out: Path, num_archs: int = 8, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    supernet = build_supernet(space).eval()
    # A fresh supernet has zero biases and unit norms, which would hide a wrong bias or norm slice:
    # perturb every parameter so the check covers them (until training lands in the demo).
    with torch.no_grad():
        for p in supernet.parameters():
            p.add_(torch.randn_like(p), alpha=0.05)
    images, _ = load_digits_tensors(space.spec.img_size, space.spec.in_chans)
    batch = images[:64]
    rng = random.Random(seed)
    archs: list[tuple[str, Arch]] = [("smallest", space.smallest()), ("largest", space.largest())]
    archs += [(f"random-{i}", space.sample(rng)) for i in range(num_archs)]

    rows = []
    for name, arch in tqdm(archs, desc="extract + check", disable=not progress):
        model = supernet.extract(arch).eval()
        with torch.no_grad():
            diff = (supernet(batch, arch) - model(batch)).abs().max().item()
        rows.append({
            "name": name, "arch": arch.to_dict(), "digest": arch.digest,
            "params": arch.params(), "model_params": count_params(model),
            "macs": arch.macs(), "fvcore_macs": count_flops(model), "max_abs_diff": diff,
        })
    latency_note = add_cpu_latency(space, archs, rows)
    all_match = all(r["max_abs_diff"] <= EQUIVALENCE_TOL and r["params"] == r["model_params"]
                    and r["macs"] == r["fvcore_macs"] for r in rows)
    plot = plot_space_costs(space, archs, out / "space_costs.png", seed)
    report = {"space": space.describe(), "archs": rows, "all_match": all_match, "latency": latency_note,
              "tolerance": EQUIVALENCE_TOL, "plot": str(plot), "results": str(out / "demo.json")}
    atomic_write_json(out / "demo.json", report)
    return report


def add_cpu_latency(space: SearchSpace, archs: list[tuple[str, Arch]], rows: list[dict[str, Any]]) -> str:
    """Add each arch's predicted CPU latency to its row; say which table gave it (or why none)."""
    from hwnas.latency.predict import LatencyPredictor
    from hwnas.latency.table import TableError, find_table, fingerprint_summary

    try:
        table = find_table("cpu")
        predicted = LatencyPredictor(table, space).predict_many([a for _, a in archs])
    except TableError as exc:
        return f"no CPU latency prediction: {exc}"
    for row, ms in zip(rows, predicted):
        row["cpu_latency_ms"] = float(ms)
    return f"predicted with {table.name}: {fingerprint_summary(table.fingerprint)}"


def plot_space_costs(space: SearchSpace, checked: list[tuple[str, Arch]], path: Path, seed: int, n: int = 2000) -> Path:
    """Params vs MACs of `n` random archs of the space, with the checked ones marked."""
    rng = random.Random(seed)
    cloud = [space.sample(rng) for _ in range(n)]
    fig, ax = figure()
    ax.scatter([a.macs() / 1e6 for a in cloud], [a.params() / 1e6 for a in cloud], s=4, alpha=0.3, label=f"{n} random archs")
    ax.scatter([a.macs() / 1e6 for _, a in checked], [a.params() / 1e6 for _, a in checked], s=30, c="red",
               label="extracted and checked")
    ax.set_xlabel("MMACs per image")
    ax.set_ylabel("parameters (M)")
    ax.set_title(f"{space.key}: cost of random subnets")
    ax.legend()
    return save_figure(fig, path)
