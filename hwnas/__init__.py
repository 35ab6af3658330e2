"""hwnas: hardware-aware, latency-constrained neural architecture search for Vision Transformers.

One function per stage (stages flow one way: space -> supernet -> train -> latency table -> search -> export),
each returning a report dataclass with `to_dict()`; the `hwnas` command calls the same functions:

    run = hwnas.train("autoformer-digits", "runs/digits")            # TrainReport
    hwnas.profile("autoformer-digits", "cpu")                         # ProfileReport (a latency table)
    hwnas.predict(arch, "cpu")                                        # PredictReport
    result = hwnas.search("runs/digits", latency_ms=0.8, device="cpu")   # SearchResult
    hwnas.finetune("runs/digits", result.best, "runs/ft")            # FinetuneReport
    hwnas.export("runs/digits", result.best, "export/")               # ExportReport
    model = hwnas.load_model("export/")                               # the exported subnet, eval mode

Spaces and models: `get_space`, `Arch`, `build_supernet`, `build_model`, `count_params`, `count_flops`.
Names that need torch load on first use, so the CLI and the space tools start fast.
"""

from importlib import import_module
from typing import Any

from hwnas.errors import ArchError, HwnasError, HwnasWarning, SpaceError
from hwnas.spaces import Arch, BlockConfig, SearchSpace, get_space, list_spaces

__version__ = "0.1.0"

_LAZY = {
    **dict.fromkeys(
        ["train", "finetune", "profile", "predict", "search", "export", "load_model", "SearchResult"], "hwnas.api"
    ),
    **dict.fromkeys(
        ["DevicePrediction", "ExportReport", "FinetuneReport", "PredictReport", "ProfileReport", "TrainReport"],
        "hwnas.reports",
    ),
    "build_model": "hwnas.families.registry",
    "build_supernet": "hwnas.supernet",
    "Supernet": "hwnas.supernet",
    "count_flops": "hwnas.cost",
    "count_params": "hwnas.cost",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hwnas' has no attribute {name!r}")


__all__ = [
    "Arch",
    "ArchError",
    "BlockConfig",
    "DevicePrediction",
    "ExportReport",
    "FinetuneReport",
    "HwnasError",
    "HwnasWarning",
    "PredictReport",
    "ProfileReport",
    "SearchResult",
    "SearchSpace",
    "SpaceError",
    "Supernet",
    "TrainReport",
    "build_model",
    "build_supernet",
    "count_flops",
    "count_params",
    "export",
    "finetune",
    "get_space",
    "list_spaces",
    "load_model",
    "predict",
    "profile",
    "search",
    "train",
]
