"""How the widths of a dimension share the supernet's channels.

`prefix` (AutoFormer's weight entanglement): width k uses channels 0..k-1, so the first channels
serve every width and the last only the largest. `cyclic` (ViTAS): width k uses the cyclic window
{(o_k + i) mod C}; the offsets lay the windows of the ascending widths end to end around the ring
(o_k = sum of the smaller widths mod C), so every channel serves about the same number of widths.
Offsets are fixed by the choices alone, so a subnet is the same at training, search and export.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hwnas.layers.elastic import Selection, leading

SHARINGS = ("prefix", "cyclic")


class ChannelSharing:
    """The channel selection of every width choice of one dimension of size max(widths)."""

    def __init__(self, widths: Sequence[int], mode: str = "prefix"):
        if mode not in SHARINGS:
            raise ValueError(f"unknown weight sharing {mode!r}; use {' or '.join(SHARINGS)}")
        self.mode, self.size = mode, max(widths)
        self.offsets: dict[int, int] = {}
        start = 0
        for w in sorted(set(widths)):
            self.offsets[w] = start % self.size if mode == "cyclic" and w < self.size else 0
            start += w
        self._indices = {w: (torch.arange(w) + o) % self.size for w, o in self.offsets.items()}

    def select(self, width: int) -> Selection:
        """A slice for prefix windows (views, no gather), else the window's index tensor."""
        if self.offsets[width] == 0:
            return leading(width)
        return self._indices[width]

    def usage(self) -> torch.Tensor:
        """How many width choices use each channel."""
        counts = torch.zeros(self.size, dtype=torch.long)
        for w in self.offsets:
            counts[self._indices[w]] += 1
        return counts

    def balance(self) -> float:
        """max / min uses per channel (1.0 is perfectly even)."""
        counts = self.usage()
        return float(counts.max() / counts.min())
