"""Search spaces: declarative YAML choices plus one class per macro-family (see design §2)."""

from hwnas.spaces.arch import Arch
from hwnas.spaces.blocks import BlockConfig
from hwnas.spaces.registry import FAMILIES, get_space, list_spaces, space_from_dict, spec_dict
from hwnas.spaces.space import Gene, SearchSpace, SpaceSpec

__all__ = ["Arch", "BlockConfig", "FAMILIES", "Gene", "SearchSpace", "SpaceSpec", "get_space", "list_spaces", "space_from_dict",
           "spec_dict"]
