"""The train / search-val / test split: fixed by a seed, saved in the run folder, reused by search
and export, so the search never scores on training images (AutoFormer's subImageNet was drawn from
them) nor on the test split (Cream#237)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json

SPLITS = ("train", "search_val", "test")


class DataError(HwnasError):
    """Missing, empty or inconsistent data."""


@dataclass(frozen=True)
class Split:
    """Indices into one pool of examples, per part. `source` names the data they index."""

    source: str
    seed: int
    train: tuple[int, ...]
    search_val: tuple[int, ...]
    test: tuple[int, ...]

    def __post_init__(self) -> None:
        parts = [set(self.train), set(self.search_val), set(self.test)]
        if any(a & b for i, a in enumerate(parts) for b in parts[i + 1 :]):
            raise DataError(f"split of {self.source} has an example in two parts; delete split.json to redraw it")

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()})

    @classmethod
    def load(cls, path: str | Path) -> Split:
        try:
            d = json.loads(Path(path).read_text())
            return cls(d["source"], int(d["seed"]), *(tuple(int(i) for i in d[k]) for k in SPLITS))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"split file {path} is unreadable ({exc}); delete it to draw the split again") from exc


def stratified_split(labels: np.ndarray, source: str, seed: int, search_val: float = 0.15, test: float = 0.2,
                     pool: np.ndarray | None = None) -> Split:
    """Per class, shuffle with `seed` and cut `test` and `search_val` fractions off; the rest trains.

    `pool` restricts the split to those indices (e.g. a folder's `train/` images when `val/` is the test).
    """
    indices = np.arange(len(labels)) if pool is None else np.asarray(pool)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {k: [] for k in SPLITS}
    for cls in np.unique(labels[indices]):
        members = rng.permutation(indices[labels[indices] == cls])
        n_test, n_val = round(len(members) * test), round(len(members) * search_val)
        parts["test"] += members[:n_test].tolist()
        parts["search_val"] += members[n_test : n_test + n_val].tolist()
        parts["train"] += members[n_test + n_val :].tolist()
    return Split(source, seed, *(tuple(sorted(parts[k])) for k in SPLITS))
