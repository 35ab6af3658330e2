"""Weight-sharing supernets (design §3): the contract (`base.py`) and channel sharing (the elastic
layers are in `hwnas.layers.elastic`).
Each family's supernet class lives in its folder and is found through its family record."""

from __future__ import annotations

from typing import Any

from hwnas.families.registry import get_family
from hwnas.spaces import SearchSpace
from hwnas.supernet.base import LayerChoice, Supernet


def build_supernet(space: SearchSpace | str, **kwargs: Any) -> Supernet:
    """The supernet of `space` (a space or its name), freshly initialised."""
    from hwnas.spaces import get_space

    space = get_space(space) if isinstance(space, str) else space
    return get_family(space.family).supernet_class()(space, **kwargs)


__all__ = ["LayerChoice", "Supernet", "build_supernet"]
