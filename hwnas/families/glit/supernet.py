"""GLiT supernet: one block per position holding every (G, low-level) choice on shared weights.

The release has no supernet, so the sharing is ours, after AutoFormer and OFA:
- across G: attention takes the leading channels of the block's input and output, the locality
  module the trailing ones (its 1x1 convs read and write the last C*(3-G)/3 channels);
- across e_v, e_c and MLP ratio: leading slices (qkv as [q | k | v], each sliced alike; the first
  1x1 conv as [values | gates], each sliced alike);
- across kernel sizes: a smaller kernel is the centre taps of the largest (OFA's elastic kernel,
  without OFA's learned kernel-transformation matrices).

BatchNorm (in the locality module) keeps running statistics that, trained across subnets, fit no
one of them: `arch_dependent_batchnorm` tells scoring and extraction to recalibrate them per subnet
(`hwnas.supernet.batchnorm`). Its forward slices the running buffers in place, so a recalibration
pass writes the active subnet's statistics into the leading channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from torch import Tensor, nn

from hwnas.families.glit.model import LocalBranch, glit_block
from hwnas.families.glit.space import GLiTSpace, Layer
from hwnas.layers.elastic import ElasticLayer, ElasticLinear, ElasticMlp, State, init_linears, leading, prefixed
from hwnas.spaces import Arch
from hwnas.supernet.base import LayerChoice, Supernet


class ElasticLocalBranch(ElasticLayer):
    """`LocalBranch` at its largest (`dim` channels in and out, `max_hidden` wide, `max_kernel`
    taps); a choice reads and writes the trailing `local_dim` channels."""

    def __init__(self, dim: int, max_hidden: int, max_kernel: int):
        super().__init__()
        self.dim, self.max_hidden, self.max_kernel = dim, max_hidden, max_kernel
        self.pw1 = nn.Conv1d(dim, 2 * max_hidden, 1)
        self.dw = nn.Conv1d(max_hidden, max_hidden, max_kernel, groups=max_hidden)
        self.bn = nn.BatchNorm1d(max_hidden)
        self.pw2 = nn.Conv1d(max_hidden, dim, 1)

    def active_state(self, local_dim: int, hidden: int, kernel: int) -> State:
        """The weights and BatchNorm buffers of the static `LocalBranch` (views of this one's)."""
        m, lo, k0 = self.max_hidden, self.dim - local_dim, (self.max_kernel - kernel) // 2
        bn = self.bn
        return {
            "pw1.weight": torch.cat([self.pw1.weight[:hidden, lo:], self.pw1.weight[m : m + hidden, lo:]]),
            "pw1.bias": torch.cat([self.pw1.bias[:hidden], self.pw1.bias[m : m + hidden]]),
            "dw.weight": self.dw.weight[:hidden, :, k0 : k0 + kernel],
            "dw.bias": self.dw.bias[:hidden],
            "bn.weight": bn.weight[:hidden],
            "bn.bias": bn.bias[:hidden],
            "bn.running_mean": bn.running_mean[:hidden],
            "bn.running_var": bn.running_var[:hidden],
            "bn.num_batches_tracked": bn.num_batches_tracked,
            "pw2.weight": self.pw2.weight[lo:, :hidden],
            "pw2.bias": self.pw2.bias[lo:],
        }

    def static_layer(self, local_dim: int, hidden: int, kernel: int) -> LocalBranch:
        return LocalBranch(local_dim, hidden, kernel)

    def forward(self, x: Tensor, local_dim: int, hidden: int, kernel: int) -> Tensor:
        w = self.active_state(local_dim, hidden, kernel)
        y = F.glu(F.conv1d(x.transpose(1, 2), w["pw1.weight"], w["pw1.bias"]), dim=1)
        y = F.conv1d(y, w["dw.weight"], w["dw.bias"], padding=kernel // 2, groups=hidden)
        y = F.silu(self._batch_norm(y, w))
        return F.conv1d(y, w["pw2.weight"], w["pw2.bias"]).transpose(1, 2)

    def _batch_norm(self, y: Tensor, w: State) -> Tensor:
        """`nn.BatchNorm1d`'s forward on the leading channels; in training the running statistics
        of those channels are updated in place (momentum None: a cumulative average, as torch's)."""
        bn, momentum = self.bn, self.bn.momentum  # the BatchNorm's own mode: recalibration trains only it
        if bn.training:
            bn.num_batches_tracked.add_(1)
            momentum = 1.0 / float(bn.num_batches_tracked) if momentum is None else momentum
        return F.batch_norm(
            y,
            w["bn.running_mean"],
            w["bn.running_var"],
            w["bn.weight"],
            w["bn.bias"],
            bn.training,
            momentum or 0.0,
            bn.eps,
        )


class ElasticGLiTBlock(ElasticLayer):
    """A pre-norm block holding every token mixer of one position: attention (parameter names as
    timm's `Attention`) and the locality module (`attn.local`), and an elastic MLP."""

    def __init__(self, dim: int, max_qkv: int, max_hidden: int, max_kernel: int, max_mlp: int, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = ElasticLinear(dim, 3 * max_qkv)
        self.attn.proj = ElasticLinear(max_qkv, dim)
        self.attn.local = ElasticLocalBranch(dim, max_hidden, max_kernel)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = ElasticMlp(dim, max_mlp)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.dim, self.max_qkv = dim, max_qkv

    def _qkv(self, layer: Layer) -> tuple[Tensor, Tensor]:
        q, g = layer.qkv_dim, layer.global_dim
        qkv = self.attn.qkv
        weight = qkv.weight.view(3, self.max_qkv, self.dim)[:, :q, :g].reshape(3 * q, g)
        return weight, qkv.bias.view(3, self.max_qkv)[:, :q].reshape(3 * q)

    def _attend(self, x: Tensor, layer: Layer) -> Tensor:
        B, N, _ = x.shape
        qkv = F.linear(x, *self._qkv(layer)).reshape(B, N, 3, layer.num_heads, layer.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(*qkv.unbind(0)).transpose(1, 2).reshape(B, N, layer.qkv_dim)
        return self.attn.proj(out, leading(layer.qkv_dim), leading(layer.global_dim))

    def forward(self, x: Tensor, layer: Layer) -> Tensor:
        h, g = self.norm1(x), layer.global_dim
        parts = [self._attend(h[..., :g], layer)] if g else []
        if layer.local_hidden:
            parts.append(self.attn.local(h[..., g:], self.dim - g, layer.local_hidden, layer.kernel))
        x = x + self.drop_path(torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0])
        return x + self.drop_path(self.mlp(self.norm2(x), leading(self.dim), layer.mlp_hidden))

    def active_state(self, layer: Layer) -> State:
        """The weights of `model.glit_block(dim, layer)`."""
        full = leading(self.dim)
        state = {
            "norm1.weight": self.norm1.weight,
            "norm1.bias": self.norm1.bias,
            "norm2.weight": self.norm2.weight,
            "norm2.bias": self.norm2.bias,
            **prefixed("mlp", self.mlp.active_state(full, layer.mlp_hidden)),
        }
        if layer.global_dim:
            weight, bias = self._qkv(layer)
            state.update(
                {
                    "attn.qkv.weight": weight,
                    "attn.qkv.bias": bias,
                    **prefixed(
                        "attn.proj", self.attn.proj.active_state(leading(layer.qkv_dim), leading(layer.global_dim))
                    ),
                }
            )
        if layer.local_hidden:
            local = self.attn.local.active_state(self.dim - layer.global_dim, layer.local_hidden, layer.kernel)
            state.update(prefixed("attn.local", local))
        return state

    def static_layer(self, layer: Layer) -> nn.Module:
        drop_path = self.drop_path.drop_prob if isinstance(self.drop_path, DropPath) else 0.0
        return glit_block(self.dim, layer, drop_path=drop_path)


class GLiTSupernet(Supernet):
    """Parameter names of the static model (timm's `VisionTransformer`) outside the blocks."""

    space: GLiTSpace
    arch_dependent_batchnorm = True

    def __init__(self, space: GLiTSpace, drop_path_rate: float = 0.0, weight_sharing: str = "prefix"):
        super().__init__(space)
        self.require_prefix_sharing(
            weight_sharing,
            "GLiT's blocks share channels by position (leading for attention, trailing for the locality module)",
        )
        s, dim = space.spec, space.embed_dim
        layers = [space.layer(g, i) for g, i in space.block_choices()]
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(s.in_chans, dim, kernel_size=s.patch_size, stride=s.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, space.num_tokens, dim))
        rates = torch.linspace(0, drop_path_rate, space.depth).tolist()
        widest = {
            name: max(1, *(getattr(layer, name) for layer in layers))  # 1: a space without that branch
            for name in ("qkv_dim", "local_hidden", "kernel", "mlp_hidden")
        }
        self.blocks = nn.ModuleList(
            ElasticGLiTBlock(
                dim, widest["qkv_dim"], widest["local_hidden"], widest["kernel"], widest["mlp_hidden"], rate
            )
            for rate in rates
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, s.num_classes)
        trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        init_linears(self)

    def layer_choices(self, arch: Arch) -> dict[str, LayerChoice]:
        """Every layer but the blocks at its full (fixed) width; block i as the arch's layer i."""
        self.check_arch(arch)
        layers = {path: LayerChoice() for path in ("patch_embed", "cls_token", "pos_embed")}
        layers.update({f"blocks.{i}": LayerChoice((layer,)) for i, layer in enumerate(self.space.layers(arch))})
        return {**layers, "norm": LayerChoice(), "head": LayerChoice()}

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        c = self.layer_choices(arch)
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for i, block in enumerate(self.blocks):
            x = block(x, *c[f"blocks.{i}"].choice)
        return self.head(self.norm(x)[:, 0])
