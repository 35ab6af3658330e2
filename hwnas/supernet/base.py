"""The interface every supernet family implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn

from hwnas.errors import ArchError
from hwnas.spaces import Arch, SearchSpace


class Supernet(nn.Module, ABC):
    """One weight-sharing network holding every arch of `space`.

    `supernet(x, arch)` runs the subnet `arch` on the shared weights (the arch is an explicit
    argument: nothing is remembered between calls); `extract(arch)` returns it as a static module.
    """

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space

    def check_arch(self, arch: Arch) -> None:
        if not isinstance(arch, Arch):
            raise ArchError(f"expected an Arch, got {type(arch).__name__}; build one with space.arch(...) or Arch.from_dict")
        if arch.space != self.space:
            raise ArchError(f"arch is from space {arch.space.key} but this supernet is {self.space.key}")

    @abstractmethod
    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        """Logits of subnet `arch` on images `x` (B, C, H, W)."""

    @abstractmethod
    def extract(self, arch: Arch) -> nn.Module:
        """A static module with the subnet's weights copied out: no slicing, same outputs."""
