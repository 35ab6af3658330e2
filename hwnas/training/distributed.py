"""Work under `torchrun`: data-parallel training, where every rank trains the same archs at every
step (the draw depends only on (seed, step)), or under a sampling that draws per rank (multi) its
own (drawn from (seed, step, rank)), on its own shard of the data; and searches, where the ranks
share each generation's evaluations. Rank 0 writes the run folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from hwnas.errors import HwnasError

T, R = TypeVar("T"), TypeVar("R")


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
        """This rank's GPU (one per local rank), or the CPU where CUDA is not visible."""
        if not torch.cuda.is_available():
            return torch.device("cpu")
        if self.local_rank >= torch.cuda.device_count():
            raise HwnasError(
                f"torchrun started local rank {self.local_rank}, but this node has "
                f"{torch.cuda.device_count()} GPU(s); use `torchrun --nproc_per_node {torch.cuda.device_count()}`, "
                f"or CUDA_VISIBLE_DEVICES= to train on CPU"
            )
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def agree(self, value: str, what: str) -> None:
        """Refuse to go on when the ranks hold different `value`s (say, the archs they trained)."""
        if not self.distributed:
            return
        values: list[str | None] = [None] * self.size
        dist.all_gather_object(values, value)
        if len(set(values)) > 1:
            raise HwnasError(
                f"the {self.size} ranks disagree on {what} ({', '.join(map(str, values))}); "
                f"every rank must run the same hwnas version, space and config"
            )

    def main_first(self, work: Callable[[], R]) -> R:
        """`work()` on rank 0, then on the others: what rank 0 writes (a folder's listing, a
        split, a table's local calibration) the others read instead of making again."""
        if self.is_main:
            result = work()
        self.barrier()
        if not self.is_main:
            result = work()
        return result

    def share(self, items: Sequence[T], work: Callable[[T], R]) -> list[R]:
        """`work` on every item, the items dealt round-robin over the ranks; every rank gets all
        results, in the items' order (a search's generation scored on all GPUs)."""
        mine = [work(item) for item in items[self.rank :: self.size]]
        if not self.distributed:
            return mine
        gathered: list[list[R] | None] = [None] * self.size
        dist.all_gather_object(gathered, mine)
        results: list[R] = [None] * len(items)  # type: ignore[list-item]
        for rank, part in enumerate(gathered):
            results[rank :: self.size] = part  # type: ignore[assignment]
        return results

    def gather(self, value: T) -> list[T]:
        """Every rank's `value`, in rank order (a list of one outside torchrun)."""
        if not self.distributed:
            return [value]
        values: list[T | None] = [None] * self.size
        dist.all_gather_object(values, value)
        return values  # type: ignore[return-value]

    def total(self, count: int) -> int:
        """`count` summed over the ranks."""
        if not self.distributed:
            return count
        counts: list[int | None] = [None] * self.size
        dist.all_gather_object(counts, count)
        return sum(int(c or 0) for c in counts)

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
