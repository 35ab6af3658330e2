"""Data-parallel training under `torchrun`: every rank trains the same arch at every step (the
draw depends only on (seed, step)) on its own shard of the data; rank 0 writes the run folder."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from hwnas.spaces import Arch
from hwnas.supernet import Supernet


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self) -> torch.device:
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def join_world() -> World:
    """The torchrun world (NCCL on GPUs, gloo on CPUs), or a world of one outside torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return World(dist.get_rank(), size, int(os.environ.get("LOCAL_RANK", "0")))


class MultiArch(nn.Module):
    """Runs several subnets of one supernet on the same batch in one forward call, so that DDP sees
    one forward per backward also for sandwich steps."""

    def __init__(self, supernet: Supernet):
        super().__init__()
        self.supernet = supernet

    def forward(self, x: Tensor, archs: list[Arch]) -> list[Tensor]:  # type: ignore[override]
        return [self.supernet(x, arch) for arch in archs]
