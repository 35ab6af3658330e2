"""The model a training step runs: several subnets of one supernet in one forward call.

DDP needs one forward per backward, so a step that trains several subnets (sandwich, or the
subnets of multi-architectural sampling that share the batch) runs them through `MultiArch`; which
subnets and how they share the batch is the sampling's (`hwnas.training.sampling`)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

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
        return [self.supernet.forward_multi(x, archs)] if self.per_example else [self.supernet(x, a) for a in archs]


def step_model(supernet: Supernet, per_example: bool, distributed: bool) -> nn.Module:
    """`MultiArch` over `supernet`, data-parallel under torchrun, where the ranks may run different
    subnets (multi draws per rank). DDP averages every gradient over the ranks, so a step's gradient
    is the mean over all ranks' examples: over its M x processes subnets under multi. A single-path
    subnet skips layers, which get no gradient on that rank: `find_unused_parameters` has DDP reduce
    zeros for them instead of waiting. The masked pass of multi runs every parameter (widths and
    skips are masks), so there DDP skips that search of the graph."""
    model = MultiArch(supernet, per_example=per_example)
    return DistributedDataParallel(model, find_unused_parameters=not per_example) if distributed else model
