"""Per-subnet BatchNorm statistics (OFA's `set_running_statistics`).

A supernet's BatchNorm layers are trained on batches of many subnets, so their running statistics
fit none of them; a subnet scored or extracted with them is mis-normalised. Before it is, its
statistics are measured again: the running buffers are reset, and the subnet runs (BatchNorm in
training mode with a cumulative average, everything else in eval mode, no gradients) over a fixed
set of training images. The result is a function of the arch and those images only, so it may be
cached per arch (`BatchNormCalibration`) without changing any score.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from hwnas.data.datasets import model_input
from hwnas.spaces import Arch
from hwnas.supernet.base import Supernet

BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def batchnorms(module: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def batchnorm_state(module: nn.Module) -> dict[str, Tensor]:
    """Every BatchNorm running buffer of `module`, copied (what a recalibration produces)."""
    return {f"{name}.{b}": getattr(m, b).detach().clone() for name, m in batchnorms(module) for b in BUFFERS}


@torch.no_grad()
def recalibrate(supernet: Supernet, arch: Arch, batches: Iterable[Tensor]) -> dict[str, Tensor]:
    """Measure the BatchNorm statistics of subnet `arch` on `batches` of images (in place) and return
    them; the supernet's train/eval mode is restored."""
    was_training = supernet.training
    layers = batchnorms(supernet)
    momenta = [m.momentum for _, m in layers]
    supernet.eval()
    for _, m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calibration batches
        m.train()
    try:
        device = next(supernet.parameters()).device
        for x in batches:
            supernet(model_input(x.to(device, non_blocking=True)), arch)
    finally:
        for (_, m), momentum in zip(layers, momenta):
            m.momentum = momentum
        supernet.train(was_training)
    return batchnorm_state(supernet)


class BatchNormCalibration:
    """Recalibrates a supernet's BatchNorm statistics per subnet on fixed images, keeping the
    statistics of the last `keep` archs (a search scores each arch once, then its winner again on
    the test split and for extraction). A supernet without arch-dependent BatchNorm is left as is.
    The cache assumes the supernet's weights do not change while this object is used."""

    def __init__(self, batches: Sequence[Tensor], keep: int = 64):
        self.batches, self.keep = batches, keep
        self._stats: OrderedDict[str, dict[str, Tensor]] = OrderedDict()

    def for_new_weights(self) -> BatchNormCalibration:
        """The same images with no statistics kept (after the supernet's weights changed)."""
        return BatchNormCalibration(self.batches, self.keep)

    @contextmanager
    def applied(self, supernet: Supernet, arch: Arch) -> Iterator[None]:
        """Within the block, `supernet`'s BatchNorm buffers hold subnet `arch`'s statistics; after
        it, the buffers it had (scoring leaves a supernet as it found it)."""
        if not supernet.arch_dependent_batchnorm:
            yield
            return
        saved = batchnorm_state(supernet)
        key = f"{id(supernet)}:{arch.digest}"
        if key in self._stats:
            self._stats.move_to_end(key)
            supernet.load_state_dict(self._stats[key], strict=False)
        else:
            self._stats[key] = recalibrate(supernet, arch, self.batches)
            if len(self._stats) > self.keep:
                self._stats.popitem(last=False)
        try:
            yield
        finally:
            supernet.load_state_dict(saved, strict=False)
