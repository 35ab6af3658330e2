"""Block configurations: the unit that latency tables are keyed by and analytic costs are summed over.

A network is a sequence of blocks; two blocks with equal `BlockConfig` run the same kernels on a
device, whichever space or architecture they come from, so tables for several spaces share rows.
Batch size and dtype are properties of a measurement, not of the block, and live in the table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Block kinds. Later families add theirs ("reduction" for ViT-ResNAS, "glit" for GLiT blocks).
PATCH_EMBED = "patch_embed"  # conv patchify + class token + position embedding
ENCODER = "encoder"  # pre-norm transformer block: LN -> MHSA -> +res, LN -> MLP -> +res
HEAD = "head"  # final LayerNorm, class-token pooling and the classifier


@dataclass(frozen=True, order=True)
class BlockConfig:
    """Everything about one block that the runtime sees, in the ViT literature's terms.

    Fields that do not apply to a kind stay 0. `tokens` counts the class token too.
    """

    kind: str
    tokens: int = 0
    in_dim: int = 0
    out_dim: int = 0
    num_heads: int = 0
    qkv_dim: int = 0
    mlp_hidden: int = 0
    patch_size: int = 0
    in_chans: int = 0
    num_classes: int = 0

    @property
    def key(self) -> str:
        """A stable, readable identifier: `encoder/tokens=197/in_dim=192/out_dim=192/...`."""
        values = asdict(self)
        kind = values.pop("kind")
        return "/".join([kind, *(f"{name}={value}" for name, value in values.items() if value)])

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)

    def params(self) -> int:
        """Trainable parameters of this block (biases and norms included)."""
        d_in, d = self.in_dim, self.out_dim
        if self.kind == PATCH_EMBED:
            conv = d * self.in_chans * self.patch_size**2 + d
            return conv + d + self.tokens * d  # + class token + position embedding
        if self.kind == ENCODER:
            q, m = self.qkv_dim, self.mlp_hidden
            norms = 2 * (2 * d)
            attn = (3 * q * d + 3 * q) + (q * d + d)
            mlp = (m * d + m) + (m * d + d)
            return norms + attn + mlp
        if self.kind == HEAD:
            return 2 * d_in + d_in * self.num_classes + self.num_classes
        raise ValueError(f"no cost model for block kind {self.kind!r}")

    def macs(self) -> int:
        """Multiply-accumulates of one forward pass on one image, counting attention's two matrix
        products (which fvcore and torch's counters skip under fused attention) and no norms,
        activations or additions: the convention in which DeiT-Tiny costs 1.25 G."""
        d_in, d = self.in_dim, self.out_dim
        if self.kind == PATCH_EMBED:
            patches = self.tokens - 1
            return patches * d * self.in_chans * self.patch_size**2
        if self.kind == ENCODER:
            t, q, m = self.tokens, self.qkv_dim, self.mlp_hidden
            linear = t * (3 * q * d + q * d + 2 * m * d)
            attention = 2 * t * t * q  # q @ k^T and attn @ v
            return linear + attention
        if self.kind == HEAD:
            return d_in * self.num_classes
        raise ValueError(f"no cost model for block kind {self.kind!r}")
