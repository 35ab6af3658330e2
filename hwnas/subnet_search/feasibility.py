"""Is there one arch within several budgets at once? Exact, without enumerating the space.

Each budget bounds a sum of block costs (latency on a device, after its calibration a * sum + b
with a > 0, is a bound on the sum of the table's rows; GMACs and params are sums already). The
cheapest arch under one cost may break another budget (a table need not rank blocks as another
device's does), so trying each cost's cheapest arch is not enough. A space gives its archs as
frames of independent slots (`SearchSpace.frames`); within a frame the partial cost vectors are
extended slot by slot, keeping only those that can still finish within every budget (the cheapest
completion per cost is known) and that no other partial vector beats in every cost. What survives
the last slot is an arch within every budget; nothing surviving means there is none in the frame.
Work: frames x slots x (kept vectors x options); the kept vectors are a Pareto set, a few thousand
at most on the shipped spaces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from hwnas.spaces import Arch, SearchSpace
from hwnas.spaces.blocks import BlockConfig

BlockCost = Callable[[BlockConfig], float]
RELATIVE_SLACK = 1e-9  # sums in another order differ in the last bits; the caller checks the arch it gets


def nondominated(points: np.ndarray) -> np.ndarray:
    """Indices of the rows of `points` (n x d) that no other row is at most in every column and
    below in one (duplicates keep their first row)."""
    _, first = np.unique(points, axis=0, return_index=True)
    order = first[np.argsort(points[first].sum(axis=1), kind="stable")]  # a row can only be beaten by a lower sum
    if points.shape[1] == 1:
        return order[:1]
    if points.shape[1] == 2:  # a staircase: by the first cost, keep each row below every earlier second cost
        order = order[np.lexsort((points[order, 1], points[order, 0]))]
        second = points[order, 1]
        return order[second < np.minimum.accumulate(np.concatenate(([np.inf], second[:-1])))]
    front = np.zeros((0, points.shape[1]))
    kept: list[np.ndarray] = []
    for start in range(0, len(order), 256):  # each chunk against the front so far and against itself
        chunk = order[start : start + 256]
        rows = points[chunk]
        beaten = np.zeros(len(chunk), dtype=bool)
        for other in (front, rows):
            if len(other):
                beaten |= (
                    (other[None, :, :] <= rows[:, None, :]).all(axis=2)
                    & (other[None, :, :] < rows[:, None, :]).any(axis=2)
                ).any(axis=1)
        kept.append(chunk[~beaten])
        front = np.concatenate([front, points[chunk[~beaten]]])
    return np.concatenate(kept)


def within_all(
    space: SearchSpace, block_costs: Sequence[BlockCost], caps: Sequence[float], slack: float = RELATIVE_SLACK
) -> Arch | None:
    """An arch whose sum of each `block_costs[i]` over its blocks is at most `caps[i]` (give or take
    `slack`, relative: summed in another order a total moves in its last bits), or None when no arch
    of the space has one. Raises NotImplementedError for a family without frames."""
    caps_arr = np.asarray(caps, dtype=float)
    limit = caps_arr + slack * np.abs(caps_arr)
    cache: dict[BlockConfig, np.ndarray] = {}

    def cost(blocks: Sequence[BlockConfig]) -> np.ndarray:
        out = np.zeros(len(caps_arr))
        for b in blocks:
            if b not in cache:
                cache[b] = np.array([f(b) for f in block_costs], dtype=float)
            out = out + cache[b]
        return out

    for frame in space.frames():
        options = [np.array([cost(o) for o in slot]).reshape(len(slot), len(caps_arr)) for slot in frame.slots]
        rest = np.zeros((len(options) + 1, len(caps_arr)))  # cheapest completion per cost after slot s
        for s in range(len(options) - 1, -1, -1):
            rest[s] = rest[s + 1] + options[s].min(axis=0)
        partial = cost(frame.fixed)[None, :]
        if (partial + rest[0] > limit).any():
            continue
        trail: list[tuple[np.ndarray, np.ndarray]] = []  # per slot: (parent row, option) of each kept vector
        for s, opts in enumerate(options):
            grown = (partial[:, None, :] + opts[None, :, :]).reshape(-1, len(caps_arr))
            parent, choice = np.divmod(np.arange(len(grown)), len(opts))
            alive = np.flatnonzero((grown + rest[s + 1] <= limit).all(axis=1))
            if not len(alive):
                break
            kept = alive[nondominated(grown[alive])]
            partial = grown[kept]
            trail.append((parent[kept], choice[kept]))
        else:
            picks, row = [], 0
            for parents, choices in reversed(trail):
                picks.append(int(choices[row]))
                row = int(parents[row])
            return frame.build(picks[::-1])
    return None
