"""GLiT's block kind: a pre-norm block whose token mixer is attention on the first `global_dim`
channels plus the locality module on the rest (`global_dim` = 0: a pure-local block, its key simply
lacks the attention fields). A pure-global block is the shared `encoder` kind; the stem and the
head are the single-stage ViT's kinds.

Counts follow `BlockKind.macs`: the locality module's 1x1 convs count in full (the first one is
2 x `local_hidden` wide: GLU halves it after the conv) and so does the depthwise conv (`kernel`
taps per channel and token); GLU's product, BatchNorm (folded at inference) and SiLU do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwnas.spaces.blocks import BlockConfig, BlockKind, register_kind

if TYPE_CHECKING:
    from torch import nn


class GLiTKind(BlockKind):
    name = "glit"
    fields = ("tokens", "in_dim", "global_dim", "num_heads", "qkv_dim", "local_hidden", "kernel", "mlp_hidden")

    def params(self, cfg: BlockConfig) -> int:
        d, g, q, h, m = cfg.in_dim, cfg.global_dim, cfg.qkv_dim, cfg.local_hidden, cfg.mlp_hidden
        local = d - g
        attn = (3 * q * g + 3 * q) + (q * g + g) if g else 0
        branch = (2 * h * local + 2 * h) + (h * cfg.kernel + h) + 2 * h + (local * h + local)  # pw1, dw, BN, pw2
        return 2 * (2 * d) + attn + branch + (m * d + m) + (m * d + d)

    def macs(self, cfg: BlockConfig) -> int:
        t, d, g, q, h, m = cfg.tokens, cfg.in_dim, cfg.global_dim, cfg.qkv_dim, cfg.local_hidden, cfg.mlp_hidden
        local, parts = d - g, self.mac_parts(cfg)
        attn = t * (3 * q * g + q * g) + parts["attention"]
        branch = t * (2 * h * local + h * local) + parts["depthwise"]
        return attn + branch + 2 * t * m * d

    def mac_parts(self, cfg: BlockConfig) -> dict[str, int]:
        t = cfg.tokens
        return {"attention": 2 * t * t * cfg.qkv_dim, "depthwise": t * cfg.local_hidden * cfg.kernel}

    def input_shape(self, cfg: BlockConfig, batch_size: int) -> tuple[int, ...]:
        return (batch_size, cfg.tokens, cfg.in_dim)

    def module(self, cfg: BlockConfig) -> nn.Module:
        from hwnas.families.glit.model import glit_block
        from hwnas.families.glit.space import Layer

        layer = Layer(
            global_dim=cfg.global_dim,
            num_heads=cfg.num_heads,
            qkv_dim=cfg.qkv_dim,
            local_hidden=cfg.local_hidden,
            kernel=cfg.kernel,
            mlp_hidden=cfg.mlp_hidden,
        )
        return glit_block(cfg.in_dim, layer)


register_kind(GLiTKind())
