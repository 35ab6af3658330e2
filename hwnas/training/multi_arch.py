"""The model a training step runs: several subnets of one supernet in one forward call.

DDP needs one forward per backward, so a step that trains several subnets (sandwich, or the
subnets of multi-architectural sampling that share the batch) runs them through `MultiArch`; which
subnets and how they share the batch is the sampling's (`hwnas.training.sampling`)."""

from __future__ import annotations

from torch import Tensor, nn

from hwnas.spaces import Arch
from hwnas.supernet import Supernet


class MultiArch(nn.Module):
    """Runs several subnets of one supernet in one forward call, so that DDP sees one forward per
    backward also for sandwich steps: each on the whole batch, or (`per_example`, multi-architectural
    sampling) each on its own slice of it, in one masked pass that gives one logits tensor."""

    def __init__(self, supernet: Supernet, per_example: bool = False):
        super().__init__()
        self.supernet = supernet
        self.per_example = per_example

    def forward(self, x: Tensor, archs: list[Arch]) -> list[Tensor]:  # type: ignore[override]
        if self.per_example:
            return [self.supernet.forward_multi(x, archs)]
        return [self.supernet(x, arch) for arch in archs]
