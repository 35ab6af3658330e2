"""The train / search-val / test split: fixed by a seed, saved in the run folder, reused by search
and export, so the search never scores on training images (AutoFormer's subImageNet was drawn from
them) nor on the test split (Cream#237)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hwnas import migrate
from hwnas.errors import HwnasError, cli_message
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
    search_val_rule: str = "15%"  # how search_val was sized (`--search-val`); splits saved before: 15%

    def __post_init__(self) -> None:
        parts = [set(self.train), set(self.search_val), set(self.test)]
        if any(a & b for i, a in enumerate(parts) for b in parts[i + 1 :]):
            raise DataError(f"split of {self.source} has an example in two parts; delete split.json to redraw it")

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()})

    @classmethod
    def load(cls, path: str | Path) -> Split:
        try:
            d = migrate.split(json.loads(Path(path).read_text()))
            return cls(
                d["source"],
                int(d["seed"]),
                *(tuple(int(i) for i in d[k]) for k in SPLITS),
                str(d["search_val_rule"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"split file {path} is unreadable ({cli_message(exc)}); delete it to draw the split again"
            ) from exc


SEARCH_VAL_SHARE = 0.15
SEARCH_VAL_CAP = 10_000  # AutoFormer scores on 10,000 ImageNet images; ViT-ResNAS on 25 per class


def search_val_counts(rule: str, class_sizes: np.ndarray, available: np.ndarray) -> np.ndarray:
    """Search-val images per class under `rule`, of classes of `class_sizes` images (`available`
    of them not in the test part): `auto` (15%, at most 10,000 in all), `P%`, `N` (in all, spread
    by class size) or `N/class`. One line names a rule that is malformed or leaves a class nothing
    to train on."""
    text = rule.strip()
    total = int(class_sizes.sum())
    try:
        if text == "auto":
            counts = np.rint(class_sizes * min(SEARCH_VAL_SHARE, SEARCH_VAL_CAP / max(total, 1)))
        elif text.endswith("%"):
            counts = np.rint(class_sizes * float(text[:-1]) / 100)
        elif text.endswith("/class"):
            counts = np.full(len(class_sizes), int(text.removesuffix("/class")))
        else:
            counts = np.rint(class_sizes * int(text) / max(total, 1))
    except ValueError:
        raise DataError(
            f"--search-val {rule!r} is not a size; use auto, a share (15%), a total (10000) "
            f"or a count per class (25/class)"
        ) from None
    counts = counts.astype(np.int64)
    if (counts < 0).any() or (counts >= available).any():
        raise DataError(
            f"--search-val {rule} takes {int(counts.sum())} of the {int(available.sum())} train images, leaving "
            f"a class with none to train on; use a smaller --search-val (the smallest class has "
            f"{int(available.min())})"
        )
    return counts


def stratified_split(
    labels: np.ndarray,
    source: str,
    seed: int,
    search_val: str = "15%",
    test: float = 0.2,
    pool: np.ndarray | None = None,
) -> Split:
    """Per class, shuffle with `seed`, cut the `test` fraction off, then the search-val images
    (`search_val_counts`, shares of the class); the rest trains.

    `pool` restricts the split to those indices (e.g. a folder's `train/` images when `val/` is the test).
    """
    indices = np.arange(len(labels)) if pool is None else np.asarray(pool)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels[indices])
    members = [rng.permutation(indices[labels[indices] == cls]) for cls in classes]
    n_test = [round(len(m) * test) for m in members]
    sizes = np.asarray([len(m) for m in members])
    n_val = search_val_counts(search_val, sizes, sizes - np.asarray(n_test))
    parts: dict[str, list[int]] = {k: [] for k in SPLITS}
    for m, t, v in zip(members, n_test, n_val):
        parts["test"] += m[:t].tolist()
        parts["search_val"] += m[t : t + v].tolist()
        parts["train"] += m[t + v :].tolist()
    return Split(source, seed, *(tuple(sorted(parts[k])) for k in SPLITS), search_val_rule=search_val)
