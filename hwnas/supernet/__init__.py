"""Weight-sharing supernets (design §3): elastic layers and one supernet class per space family."""

from __future__ import annotations

from typing import Any

from hwnas.spaces import SearchSpace
from hwnas.supernet.autoformer import AutoFormerSupernet, timm_kwargs
from hwnas.supernet.base import Supernet

SUPERNETS: dict[str, type[Supernet]] = {"autoformer": AutoFormerSupernet, "vitas": AutoFormerSupernet}


def build_supernet(space: SearchSpace | str, **kwargs: Any) -> Supernet:
    """The supernet of `space` (a space or its name), freshly initialised."""
    from hwnas.spaces import get_space

    space = get_space(space) if isinstance(space, str) else space
    return SUPERNETS[space.family](space, **kwargs)


__all__ = ["AutoFormerSupernet", "SUPERNETS", "Supernet", "build_supernet", "timm_kwargs"]
