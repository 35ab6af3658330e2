"""Operator rows against sampled rows: which way to a cheaper latency table.

A ViT encoder block is an attention half (LayerNorm, qkv, attention, projection, residual) and an
MLP half (LayerNorm, fc1, GELU, fc2, residual). Profiling the halves apart makes a space's rows grow
with width x heads plus width x hidden instead of their product (nn-Meter's kernel-level route); a
sampled table measures a few whole blocks per kind and fits the rest on their costs
(`hwnas.latency.rowfit`). This script measures, on this machine with onnxruntime (1 thread), a
spread of `--rows` encoder blocks of `--space` whole and as their two halves, and reports:

- how many models each route needs for the whole space;
- how far the sum of the halves is from the block (raw, and after a line fitted on the other rows,
  leave-one-out: what a calibration could absorb of what fusion saves);
- how far the per-kind fit on costs is from the block, leave-one-out on the same rows.

Prints a markdown table and writes JSON.

    .venv/bin/python benchmarks/operator_rows.py [--space resnas-tiny] [--rows 24]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from provenance import provenance  # date, machine, versions and command, for benchmarks/report.py
from torch import nn

from hwnas import get_space
from hwnas.io import atomic_write_json
from hwnas.latency.bundle import Plan, block_plans
from hwnas.latency.measure import measurement_info
from hwnas.latency.profile import ProfileSettings, measure_plans
from hwnas.latency.rowfit import KindFit
from hwnas.latency.sampled import spread
from hwnas.latency.table import LATENCY


class Half(nn.Module):
    """One residual half of a timm ViT block: x + attn(norm1(x)) or x + mlp(norm2(x))."""

    def __init__(self, block: nn.Module, part: str):
        super().__init__()
        self.norm = block.norm1 if part == "attn" else block.norm2
        self.body = block.attn if part == "attn" else block.mlp

    def forward(self, x):
        return x + self.body(self.norm(x))


def half_plans(whole: list[Plan]) -> list[Plan]:
    """Each block plan's two halves, as plans of their own (same input, their own file)."""
    plans = []
    for plan in whole:
        for part in ("attn", "mlp"):
            entry = replace(
                plan.entry, file=plan.entry.file.replace(".onnx", f".{part}.onnx"), key=f"{part}:{plan.entry.key}"
            )
            plans.append(Plan(entry, lambda build=plan.build, part=part: Half(build(), part).eval()))
    return plans


def loo_line(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each y predicted by a line in x fitted on the other rows."""
    out = np.empty_like(y)
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        slope, intercept = np.polyfit(x[keep], y[keep], 1)
        out[i] = slope * x[i] + intercept
    return out


def error_pct(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    rel = np.abs(predicted - measured) / measured
    return {
        "mape_pct": float(100 * rel.mean()),
        "within_5pct": float(100 * (rel <= 0.05).mean()),
        "max_pct": float(100 * rel.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="resnas-tiny")
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/operator_rows.json"))
    args = parser.parse_args()
    space = get_space(args.space)
    encoders = [b for b in dict.fromkeys(space.block_configs()) if b.kind == "encoder"]
    chosen = spread(encoders, [], args.rows)
    settings = ProfileSettings(device="cpu", threads=1)
    whole = block_plans(chosen, settings.batch_size, settings.precision)
    plans = whole + half_plans(whole)
    with tempfile.TemporaryDirectory(prefix="hwnas-operator-rows-") as work:
        rows = measure_plans(
            plans,
            "onnxruntime",
            settings,
            Path(work),
            measurement_info(space, settings),
            f"measure {len(chosen)} blocks and their halves",
            out=Path(work) / "measured.csv",
        )
    ms = {r["file"]: float(r[LATENCY]) for r in rows}
    block = np.array([ms[p.entry.file] for p in whole])
    halves = np.array(
        [
            ms[p.entry.file.replace(".onnx", ".attn.onnx")] + ms[p.entry.file.replace(".onnx", ".mlp.onnx")]
            for p in whole
        ]
    )
    sampled = KindFit.fit(chosen, block, LATENCY)
    attention = {(b.tokens, b.in_dim, b.num_heads, b.qkv_dim) for b in encoders}
    mlp = {(b.tokens, b.in_dim, b.mlp_hidden) for b in encoders}
    result = {
        "space": space.key,
        "kind": "encoder",
        "rows_in_space": len(encoders),
        "operator_rows_for_space": len(attention) + len(mlp),
        "attention_halves": len(attention),
        "mlp_halves": len(mlp),
        "rows_measured_here": len(chosen),
        "block_ms_range": [float(block.min()), float(block.max())],
        "halves_raw": error_pct(halves, block),
        "halves_calibrated_loo": error_pct(loo_line(halves, block), block),
        "halves_sum_over_block_median": float(np.median(halves / block)),
        "sampled_fit_loo": {"mape_pct": sampled.cv_error_pct},
        "rows": [{"key": b.key, "block_ms": float(m), "halves_ms": float(h)} for b, m, h in zip(chosen, block, halves)],
        "provenance": provenance(),
    }
    atomic_write_json(args.out, result)
    print(
        f"{space.key}, encoder blocks: {len(encoders)} rows; operator rows {len(attention)} attention + {len(mlp)} MLP halves"
    )
    print("| route | models for the space | MAPE on the measured blocks | within ±5% |")
    print("|---|---|---|---|")
    for name, r in (
        ("halves summed", result["halves_raw"]),
        ("halves + a line (LOO)", result["halves_calibrated_loo"]),
    ):
        print(f"| {name} | {result['operator_rows_for_space']} | {r['mape_pct']:.1f}% | {r['within_5pct']:.0f}% |")
    print(f"| per-kind fit on costs (LOO) | a sample (here {len(chosen)}) | {sampled.cv_error_pct:.1f}% | |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
