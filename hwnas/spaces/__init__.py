"""Search spaces: declarative YAML choices plus one class per family (see design §2 and `hwnas.families.registry`)."""

from hwnas.spaces.arch import Arch
from hwnas.spaces.blocks import BlockConfig, BlockKind, register_kind
from hwnas.spaces.registry import get_space, is_shipped, list_spaces, space_from_dict, spec_dict
from hwnas.spaces.space import Gene, SearchSpace, SpaceSpec, spec_difference

__all__ = [
    "Arch",
    "BlockConfig",
    "BlockKind",
    "Gene",
    "SearchSpace",
    "SpaceSpec",
    "get_space",
    "is_shipped",
    "list_spaces",
    "register_kind",
    "space_from_dict",
    "spec_dict",
    "spec_difference",
]
