"""hwnas: hardware-aware, latency-constrained neural architecture search for Vision Transformers.

Public API (stages flow one way: space -> supernet -> train -> latency table -> search -> export):

    space = hwnas.get_space("autoformer-tiny")
    arch = space.sample(seed=0)                  # or hwnas.Arch.from_dict({...})
    supernet = hwnas.build_supernet(space)
    logits = supernet(images, arch)              # the subnet on shared weights
    model = supernet.extract(arch)               # static timm VisionTransformer, same outputs
    model = hwnas.build_model(arch)              # the same network freshly initialised, no supernet
    hwnas.count_params(arch), hwnas.count_flops(arch)   # analytic; also accept a module
    result = hwnas.search("runs/digits", latency_ms=0.8, device="cpu")   # best arch under a budget
    model = hwnas.load_model("export_dir")       # an exported subnet back (safetensors + config.json)

Names that need torch load on first use, so the CLI and the space tools start fast.
"""

from importlib import import_module
from typing import Any

from hwnas.errors import ArchError, HwnasError, SpaceError
from hwnas.spaces import Arch, BlockConfig, SearchSpace, get_space, list_spaces

__version__ = "0.1.0"

_LAZY = {
    "build_model": "hwnas.family",
    "build_supernet": "hwnas.supernet",
    "Supernet": "hwnas.supernet",
    "count_flops": "hwnas.cost",
    "count_params": "hwnas.cost",
    "load_model": "hwnas.export",
    "search": "hwnas.subnet_search",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hwnas' has no attribute {name!r}")


__all__ = [
    "Arch", "ArchError", "BlockConfig", "HwnasError", "SearchSpace", "SpaceError", "Supernet",
    "build_model", "build_supernet", "count_flops", "count_params", "get_space", "list_spaces", "load_model", "search",
]
