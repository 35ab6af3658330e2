"""ViT-ResNAS supernet: stages of elastic blocks joined by elastic residual spatial reductions.

Within a stage, weights are entangled as in AutoFormer (every width is the leading slice of the
stage's largest); a skipped slot is an identity. Two ways to run it:

- `forward(x, arch)`: one subnet on the whole batch, on sliced weights (single-path training,
  evaluation and extraction);
- `forward_multi(x, archs)`: ViT-ResNAS's multi-architectural sampling. Example i runs subnet
  `archs[i // (B / M)]`: every layer runs at full width and per-example channel masks (stage width,
  attention width before the projection, MLP hidden after the activation, block on/off) zero what
  an example's subnet does not have, with a LayerNorm over each example's own active channels. The
  M subnets train in one forward and backward pass and each gets exactly its sliced result.

Warm-up of choices and rewiring, as the release (`nets/vit_sr_supernet.py`, `set_epoch`): in the
first quarter of the epochs the draws grow from the largest choices (`ResNASSpace.warmup_draws`),
and up to its end every block's heads and MLP hidden units are re-sorted by importance before the
epoch (`ResNASSupernet.rewire`), so that the leading channels smaller subnets keep are the ones
that matter most.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import Tensor, nn

from hwnas.errors import HwnasError
from hwnas.families.resnas.model import NORM_EPS, ConvBnAct, ConvStem, SpatialReduction
from hwnas.families.resnas.space import WARMUP_SHARE, ResNASSpace
from hwnas.layers.elastic import (
    ElasticAttention,
    ElasticBlock,
    ElasticLayer,
    ElasticLayerNorm,
    ElasticLinear,
    ElasticMlp,
    ElasticPatchEmbed,
    Selection,
    State,
    init_linears,
    leading,
    prefixed,
    take,
    width,
)
from hwnas.layers.vit import Stem
from hwnas.spaces import Arch, SearchSpace
from hwnas.supernet.base import LayerChoice, Supernet


def masked_layer_norm(x: Tensor, mask: Tensor, active: Tensor, norm: nn.LayerNorm) -> Tensor:
    """LayerNorm of each example over its own active channels (`mask`, (B, 1, C) of 0/1; `active`,
    (B, 1, 1), their count), with the inactive channels of the output set to exactly zero. `x` must
    be zero outside the mask (every masked layer keeps it so). Computed in fp32, as `F.layer_norm` is
    under autocast."""
    x32 = x.float()
    mean = x32.sum(-1, keepdim=True) / active
    centred = (x32 - mean) * mask
    var = centred.pow(2).sum(-1, keepdim=True) / active
    return ((centred * torch.rsqrt(var + norm.eps) * norm.weight + norm.bias) * mask).to(x.dtype)


@dataclass
class Masks:
    """Per-example masks of one stage: channels (B, 1, C), their count (B, 1, 1), and per slot the
    attention (B, 1, A) and MLP hidden (B, 1, H) masks and the block on/off flag (B, 1, 1)."""

    embed: Tensor
    active: Tensor
    attn: list[Tensor]
    mlp: list[Tensor]
    on: list[Tensor]


class ElasticStem(ElasticLayer):
    """The stem (patchify conv, or the conv-BN-ReLU stem) with an elastic output width, plus the class
    token and position embedding; parameter names as the static `Stem` / `ConvStem`."""

    def __init__(self, space: ResNASSpace, max_dim: int):
        super().__init__()
        s = space.spec
        self.conv, self.in_chans, self.patch_size = space.stem == "conv", s.in_chans, s.patch_size
        if self.conv:
            mid = space.stem_channels
            self.conv1 = ConvBnAct(s.in_chans, mid, stride=2)
            self.conv2 = ConvBnAct(mid, mid)
            self.conv3 = ConvBnAct(mid, mid)
            self.patchify = ElasticPatchEmbed(mid, max_dim, s.patch_size // 2)
        else:
            self.patchify = ElasticPatchEmbed(s.in_chans, max_dim, s.patch_size)
        self.cls_token = nn.Parameter(trunc_normal_(torch.zeros(1, 1, max_dim), std=0.02))
        self.pos_embed = nn.Parameter(trunc_normal_(torch.zeros(1, space.tokens(0), max_dim), std=0.02))

    def forward(self, x: Tensor, sel: Selection) -> Tensor:
        if self.conv:
            x = self.conv1(x)
            x = x + self.conv3(self.conv2(x))
        x = self.patchify(x, sel)
        cls = take(self.cls_token, 2, sel).expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + take(self.pos_embed, 2, sel)

    def active_state(self, sel: Selection) -> State:
        state = {
            **self.patchify.active_state(sel),
            "cls_token": take(self.cls_token, 2, sel),
            "pos_embed": take(self.pos_embed, 2, sel),
        }
        if self.conv:
            for name in ("conv1", "conv2", "conv3"):
                state.update(prefixed(name, dict(getattr(self, name).state_dict(keep_vars=True))))
        return state

    def static_layer(self, sel: Selection) -> nn.Module:
        tokens = self.pos_embed.shape[1]
        if self.conv:
            return ConvStem(self.in_chans, self.conv1[0].out_channels, width(sel), self.patch_size, tokens)
        return Stem(self.in_chans, width(sel), self.patch_size, tokens)


class ElasticReduction(ElasticLayer):
    """Residual spatial reduction with elastic input and output widths (static: `SpatialReduction`)."""

    def __init__(self, max_in: int, max_out: int, grid: int):
        super().__init__()
        self.grid = grid
        self.norm = ElasticLayerNorm(max_in, eps=NORM_EPS)
        self.conv = nn.Conv2d(max_in, max_out, kernel_size=3, stride=2, padding=1)
        self.pos_embed = nn.Parameter(trunc_normal_(torch.zeros(1, (grid // 2) ** 2, max_out), std=0.02))
        self.token = ElasticLinear(max_in, max_out)

    def _paths(
        self, x: Tensor, y: Tensor, conv_w: Tensor, conv_b: Tensor, token: Tensor, pos: Tensor, out: int
    ) -> Tensor:
        B, _, C = x.shape
        g = self.grid
        pooled = F.avg_pool2d(x[:, 1:].transpose(1, 2).reshape(B, C, g, g), 2).flatten(2).transpose(1, 2)
        residual = F.pad(torch.cat([x[:, :1], pooled], dim=1), (0, out - C))
        patches = F.conv2d(y[:, 1:].transpose(1, 2).reshape(B, C, g, g), conv_w, conv_b, stride=2, padding=1)
        return torch.cat([token, patches.flatten(2).transpose(1, 2) + pos], dim=1) + residual

    def forward(self, x: Tensor, in_sel: Selection, out_sel: Selection) -> Tensor:
        y = self.norm(x, in_sel)
        w, b = take(take(self.conv.weight, 0, out_sel), 1, in_sel), take(self.conv.bias, 0, out_sel)
        token = self.token(y[:, :1], in_sel, out_sel)
        return self._paths(x, y, w, b, token, take(self.pos_embed, 2, out_sel), width(out_sel))

    def forward_masked(self, x: Tensor, before: Masks, after: Masks) -> Tensor:
        y = masked_layer_norm(x, before.embed, before.active, self.norm)
        token = F.linear(y[:, :1], self.token.weight, self.token.bias)
        out = self._paths(x, y, self.conv.weight, self.conv.bias, token, self.pos_embed, self.conv.out_channels)
        return out * after.embed

    def active_state(self, in_sel: Selection, out_sel: Selection) -> State:
        return {
            **prefixed("norm", self.norm.active_state(in_sel)),
            "conv.weight": take(take(self.conv.weight, 0, out_sel), 1, in_sel),
            "conv.bias": take(self.conv.bias, 0, out_sel),
            "pos_embed": take(self.pos_embed, 2, out_sel),
            **prefixed("token", self.token.active_state(in_sel, out_sel)),
        }

    def static_layer(self, in_sel: Selection, out_sel: Selection) -> SpatialReduction:
        return SpatialReduction(width(in_sel), width(out_sel), self.grid)


def _masked_block(block: ElasticBlock, x: Tensor, m: Masks, slot: int) -> Tensor:
    """`block` at full width on every example, its own widths applied by masks."""
    B, N, _ = x.shape
    attn, mlp = block.attn, block.mlp
    h = masked_layer_norm(x, m.embed, m.active, block.norm1)
    qkv = F.linear(h, attn.qkv.weight, attn.qkv.bias)
    q, k, v = qkv.reshape(B, N, 3, -1, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, -1) * m.attn[slot]
    x = x + block.drop_path(F.linear(a, attn.proj.weight, attn.proj.bias) * m.embed) * m.on[slot]
    h = masked_layer_norm(x, m.embed, m.active, block.norm2)
    hidden = mlp.act(F.linear(h, mlp.fc1.weight, mlp.fc1.bias)) * m.mlp[slot]
    return x + block.drop_path(F.linear(hidden, mlp.fc2.weight, mlp.fc2.bias) * m.embed) * m.on[slot]


def head_importance(attn: ElasticAttention) -> Tensor:
    """Per head, the L1 norm of its q, k and v weight rows and biases and of its columns of the
    output projection (the release's `Attention.rewiring`, `nets/supernet_blocks.py`)."""
    heads, d = attn.proj.in_features // attn.head_dim, attn.head_dim
    qkv = attn.qkv.weight.abs().view(3, heads, d, -1).sum((0, 2, 3))
    return (
        qkv + attn.qkv.bias.abs().view(3, heads, d).sum((0, 2)) + attn.proj.weight.abs().view(-1, heads, d).sum((0, 2))
    )


def hidden_importance(mlp: ElasticMlp) -> Tensor:
    """Per MLP hidden unit, the L1 norm of its fc1 row and bias and of its fc2 column (the release's
    `Mlp.rewiring`)."""
    return mlp.fc1.weight.abs().sum(1) + mlp.fc1.bias.abs() + mlp.fc2.weight.abs().sum(0)


def _reorder(
    param: nn.Parameter, shape: tuple[int, ...], dim: int, order: Tensor, optimizer: torch.optim.Optimizer | None
) -> None:
    """Put the slices of `param` (viewed as `shape`) along `dim` in `order`, in place, and so each of
    the optimiser's per-element state tensors (AdamW's moment estimates) that has its shape."""
    state = optimizer.state.get(param, {}) if optimizer is not None else {}
    for t in [param.data, *(v for v in state.values() if torch.is_tensor(v) and v.shape == param.shape)]:
        t.copy_(t.view(shape).index_select(dim, order).view(t.shape))


class ResNASSupernet(Supernet):
    """Parameter names follow `ResNASNet` (`model.py`): `stem`, `stages.s.slot`, `reductions.s`, `head`."""

    space: ResNASSpace
    per_example_archs = True
    warms_up_choices = True

    def __init__(self, space: ResNASSpace, drop_path_rate: float = 0.0, weight_sharing: str = "prefix"):
        super().__init__(space)
        self.require_prefix_sharing(weight_sharing, "ViT-ResNAS shares every width as a prefix (weight entanglement)")
        c, n = space.spec.choices, space.num_stages
        widths = [max(c[f"embed_dim_{s + 1}"]) for s in range(n)]
        self.stem = ElasticStem(space, widths[0])
        rates = iter(torch.linspace(0, drop_path_rate, sum(space.slots(s) for s in range(n))).tolist())
        self.stages = nn.ModuleList(
            nn.ModuleList(
                ElasticBlock(
                    widths[s],
                    max(c[f"attn_dim_{s + 1}"]) // space.head_dim(s),
                    space.head_dim(s),
                    max(c[f"mlp_hidden_{s + 1}"]),
                    drop_path=next(rates),
                )
                for _ in range(space.slots(s))
            )
            for s in range(n)
        )
        self.reductions = nn.ModuleList(
            ElasticReduction(widths[s - 1], widths[s], space.grid(s - 1)) for s in range(1, n)
        )
        self.norm = ElasticLayerNorm(widths[-1], eps=NORM_EPS)
        self.head = ElasticLinear(widths[-1], space.spec.num_classes)
        init_linears(self)

    # ---- warm-up of choices and rewiring ------------------------------------------------------------
    def on_epoch(self, epoch: int, epochs: int, optimizer: torch.optim.Optimizer | None = None) -> SearchSpace:
        """As the release's `set_epoch`: rewired in every epoch up to and including the one that ends
        the warm-up (epoch <= epochs / 4: its 0..30 of 120), and drawn as `ResNASSpace.warmup_draws`."""
        if WARMUP_SHARE * epoch <= epochs:
            self.rewire(optimizer)
        return self.space.warmup_draws(epoch, epochs)

    @torch.no_grad()
    def rewire(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Re-sort every block's heads (`head_importance`) and MLP hidden units (`hidden_importance`),
        most important first. Only hidden units are relabelled (q, k, v rows and biases and the
        projection's columns per head; fc1 rows and biases and fc2 columns per unit; norms and output
        biases stay), so the largest subnet computes the same function; the optimiser's moment
        estimates move with their weights (the release leaves them in place). Under DDP every process
        applies rank 0's orders: the weights agree after the all-reduce, the broadcast keeps ties safe."""
        blocks = [block for stage in self.stages for block in stage]
        orders = [
            torch.sort(importance, descending=True, stable=True).indices
            for block in blocks
            for importance in (head_importance(block.attn), hidden_importance(block.mlp))
        ]
        flat = torch.cat(orders)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast(flat, 0)
        orders = list(flat.split([len(o) for o in orders]))
        for block in blocks:
            heads, hidden = orders.pop(0), orders.pop(0)
            attn, mlp, d = block.attn, block.mlp, block.attn.head_dim
            _reorder(attn.qkv.weight, (3, len(heads), d, -1), 1, heads, optimizer)
            _reorder(attn.qkv.bias, (3, len(heads), d), 1, heads, optimizer)
            _reorder(attn.proj.weight, (-1, len(heads), d), 1, heads, optimizer)
            _reorder(mlp.fc1.weight, (len(hidden), -1), 0, hidden, optimizer)
            _reorder(mlp.fc1.bias, (len(hidden),), 0, hidden, optimizer)
            _reorder(mlp.fc2.weight, (-1, len(hidden)), 1, hidden, optimizer)

    # ---- one subnet on sliced weights ----------------------------------------------------------
    def layer_choices(self, arch: Arch) -> dict[str, LayerChoice]:
        """Names as `ResNASNet`: a stage's chosen slots become its blocks 0, 1, ... in order; the
        final norm and the classifier are the static `Head`'s."""
        self.check_arch(arch)
        layout = self.space.stages(arch)
        sels = [leading(stage.embed_dim) for stage in layout]
        layers = {"stem": LayerChoice((sels[0],))}
        for s, stage in enumerate(layout):
            if s:
                layers[f"reductions.{s - 1}"] = LayerChoice((sels[s - 1], sels[s]))
            for j, (slot, (attn, hidden)) in enumerate(zip(stage.slots, stage.blocks)):
                choice = (sels[s], attn // self.space.head_dim(s), hidden)
                layers[f"stages.{s}.{slot}"] = LayerChoice(choice, f"stages.{s}.{j}")
        layers["norm"] = LayerChoice((sels[-1],), "head.norm")
        layers["head"] = LayerChoice((sels[-1], leading(self.head.out_features)), "head.head")
        return layers

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        for path, layer in self.layer_choices(arch).items():
            if path == "norm":
                x = x[:, 0]  # the head reads the class token alone
            x = self.get_submodule(path)(x, *layer.choice)
        return x

    # ---- several subnets in one pass (multi-architectural sampling) -------------------------------
    def masks(self, archs: list[Arch], batch: int, device: torch.device) -> list[Masks]:
        """Each stage's per-example masks: example i belongs to `archs[i // (batch / len(archs))]`."""
        if batch % len(archs):
            raise HwnasError(
                f"a batch of {batch} examples cannot be split evenly among {len(archs)} archs; "
                f"make the batch size a multiple of --archs-per-batch"
            )
        for arch in archs:
            self.check_arch(arch)
        layouts = [self.space.stages(arch) for arch in archs]
        per = batch // len(archs)

        def mask(values: list[int], size: int) -> Tensor:
            counts = torch.tensor(values, device=device).repeat_interleave(per)
            return (torch.arange(size, device=device) < counts[:, None]).float()[:, None, :]

        out = []
        for s, blocks in enumerate(self.stages):
            embed = mask([lay[s].embed_dim for lay in layouts], self.stages[s][0].norm1.normalized_shape[0])
            attn, mlp, on = [], [], []
            for slot, block in enumerate(blocks):
                chosen = [dict(zip(lay[s].slots, lay[s].blocks)).get(slot) for lay in layouts]
                attn.append(mask([c[0] if c else 0 for c in chosen], block.attn.proj.in_features))
                mlp.append(mask([c[1] if c else 0 for c in chosen], block.mlp.fc1.out_features))
                on.append(mask([1 if c else 0 for c in chosen], 1))
            out.append(Masks(embed, embed.sum(-1, keepdim=True), attn, mlp, on))
        return out

    def forward_multi(self, x: Tensor, archs: list[Arch]) -> Tensor:
        """Logits of every example under its own subnet (see the module docstring)."""
        masks = self.masks(archs, x.shape[0], x.device)
        x = self.stem(x, leading(self.stem.pos_embed.shape[-1])) * masks[0].embed
        for s, blocks in enumerate(self.stages):
            if s:
                x = self.reductions[s - 1].forward_masked(x, masks[s - 1], masks[s])
            for slot, block in enumerate(blocks):
                x = _masked_block(block, x, masks[s], slot)
        last = masks[-1]
        cls = masked_layer_norm(x[:, :1], last.embed, last.active, self.norm)[:, 0]
        return F.linear(cls, self.head.weight, self.head.bias)
