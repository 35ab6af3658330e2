"""ViT-ResNAS's multi-stage space (Liao et al., 2021; `yilunliao/vit-search`, `supernet_config/sr_*_mh.py`).

A stem, then stages joined by residual spatial reductions (each halves the token grid and widens
the channels), then the head. Per stage: one embed width; per block slot an attention width (heads
of the stage's head width) and an MLP hidden width; some slots may be skipped (an identity).

Genes, for each stage s = 1..S: `embed_dim_s`, `attn_dim_s` and `mlp_hidden_s` (one per slot), and
`skip_s` (one 0/1 flag per skippable slot; absent when the stage has none). A skipped slot's widths
do not matter and are canonicalised to the smallest choice, so equal networks have one encoding.
Stage widths may not shrink: the reduction's residual path zero-pads channels.

Warm-up of choices (`warmup_draws`) follows the release's `ChannelDrop.set_mask`
(`nets/channel_drop.py`): each dimension is drawn among its largest choices only, from the largest
alone in the first epoch to all of them after a quarter of the epochs (`main.py --num-warmup-epochs
30` of 120).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwnas.errors import ArchError, SpaceError
from hwnas.spaces.blocks import BlockConfig
from hwnas.spaces.space import Frame, Gene, GeneValue, SearchSpace, Seed, SpaceSpec

if TYPE_CHECKING:
    from hwnas.spaces.arch import Arch

WARMUP_SHARE = 4  # the warm-up lasts 1/4 of the epochs: the release's 30 of 120
# A skip flag's choices largest first as the release lists a skippable block's (`supernet_config/
# sr_*_mh.py`, `layer: [d, d, 0, 0]`): it may be skipped from 2/3 of the warm-up on, then in half the draws.
SKIP_RANKED = (0, 0, 1, 1)
STEMS = ("patch", "conv")  # plain patchify conv (ViT), or ViT-ResNAS's conv-BN-ReLU stem (`PatchConvEmbed`)


@dataclass(frozen=True)
class StageLayout:
    """One stage of an arch: its width and the (attention width, MLP hidden) of each block it runs."""

    embed_dim: int
    blocks: tuple[tuple[int, int], ...]
    slots: tuple[int, ...]  # the supernet slot each block runs on (skipped slots leave gaps)


class ResNASSpace(SearchSpace):
    """YAML options: `blocks` (slots per stage), `skippable` (slot positions that may be skipped, the
    same in every stage), `head_dim` (per stage), `stem` (`patch` or `conv`) and `stem_channels`."""

    family = "resnas"
    high_level_genes = ()

    @classmethod
    def declare_genes(cls, spec: SpaceSpec) -> tuple[Gene, ...]:
        c, o = spec.choices, spec.options
        slots, head_dims = [int(n) for n in o["blocks"]], [int(h) for h in o["head_dim"]]
        skippable = sorted(int(i) for i in o.get("skippable", ()))
        where = f"space {spec.name}"
        if len(head_dims) != len(slots) or not slots:
            raise SpaceError(
                f"{where}: give one `head_dim` per stage ({len(slots)} stages in `blocks`), got {head_dims}"
            )
        if o.get("stem", "patch") not in STEMS:
            raise SpaceError(f"{where}: stem {o.get('stem')!r} is not one of {', '.join(STEMS)}")
        if o.get("stem") == "conv" and spec.patch_size % 2:
            raise SpaceError(
                f"{where}: the conv stem halves the image first, so patch_size must be even, got {spec.patch_size}"
            )
        grid = spec.img_size // spec.patch_size
        if grid % 2 ** (len(slots) - 1):
            raise SpaceError(
                f"{where}: a {grid}x{grid} token grid cannot be halved {len(slots) - 1} times; "
                f"pick img_size / patch_size divisible by {2 ** (len(slots) - 1)}"
            )
        genes: list[Gene] = []
        for s, (n, head_dim) in enumerate(zip(slots, head_dims), start=1):
            attn = c[f"attn_dim_{s}"]
            odd = [a for a in attn if a % head_dim]
            if odd:
                raise SpaceError(
                    f"{where}: attn_dim_{s} = {odd[0]} is not a multiple of the stage's head_dim "
                    f"{head_dim}; use multiples of {head_dim}"
                )
            genes += [
                Gene(f"embed_dim_{s}", c[f"embed_dim_{s}"]),
                Gene(f"attn_dim_{s}", attn, length=n),
                Gene(f"mlp_hidden_{s}", c[f"mlp_hidden_{s}"], length=n),
            ]
            skip = [i for i in skippable if i < n]
            if skip:
                genes.append(Gene(f"skip_{s}", (0, 1), length=len(skip)))
        return tuple(genes)

    # ---- shape ---------------------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.spec.options["blocks"])

    def slots(self, stage: int) -> int:
        return int(self.spec.options["blocks"][stage])

    def skippable(self, stage: int) -> list[int]:
        return [i for i in sorted(int(i) for i in self.spec.options.get("skippable", ())) if i < self.slots(stage)]

    def head_dim(self, stage: int) -> int:
        return int(self.spec.options["head_dim"][stage])

    @property
    def stem(self) -> str:
        return str(self.spec.options.get("stem", "patch"))

    @property
    def stem_channels(self) -> int:
        return int(self.spec.options.get("stem_channels", 24))

    def grid(self, stage: int) -> int:
        """Side of the token grid in `stage` (0-based): halved by each reduction."""
        return self.spec.img_size // self.spec.patch_size // 2**stage

    def tokens(self, stage: int) -> int:
        return self.grid(stage) ** 2 + 1  # + class token

    def choices(self, gene: str, stage: int) -> tuple[Any, ...]:
        return self.spec.choices[f"{gene}_{stage + 1}"]

    # ---- arch <-> layout -------------------------------------------------------------------------
    def stages(self, arch: Arch) -> list[StageLayout]:
        """Each stage's width and the blocks it runs (skipped slots dropped)."""
        out = []
        for s in range(self.num_stages):
            skipped = self._skipped(arch.genes, s)
            attn, mlp = getattr(arch, f"attn_dim_{s + 1}"), getattr(arch, f"mlp_hidden_{s + 1}")
            kept = [i for i in range(self.slots(s)) if i not in skipped]
            out.append(
                StageLayout(
                    int(getattr(arch, f"embed_dim_{s + 1}")),
                    tuple((int(attn[i]), int(mlp[i])) for i in kept),
                    tuple(kept),
                )
            )
        return out

    def _skipped(self, genes: Mapping[str, Any], stage: int) -> set[int]:
        flags = genes.get(f"skip_{stage + 1}", ())
        return {slot for slot, flag in zip(self.skippable(stage), flags) if flag}

    def canonicalize(self, genes: dict[str, GeneValue]) -> dict[str, GeneValue]:
        widths = [int(genes[f"embed_dim_{s + 1}"]) for s in range(self.num_stages)]  # type: ignore[arg-type]
        for s in range(1, self.num_stages):
            if widths[s] < widths[s - 1]:
                raise ArchError(
                    f"{self.key} arch: stage widths shrink (embed_dim_{s + 1} = {widths[s]} < embed_dim_{s} = "
                    f"{widths[s - 1]}); each stage must be at least as wide as the one before"
                )
        out = dict(genes)
        for s in range(self.num_stages):
            skipped = self._skipped(genes, s)
            for name in (f"attn_dim_{s + 1}", f"mlp_hidden_{s + 1}"):
                low = min(self.spec.choices[name])
                out[name] = tuple(low if i in skipped else v for i, v in enumerate(genes[name]))  # type: ignore[arg-type]
        return out

    # ---- warm-up of choices ----------------------------------------------------------------------
    def warmup_draws(self, epoch: int, epochs: int) -> ResNASSpace:
        """What epoch `epoch` (0-based) of `epochs` draws from: the release's schedule, in which a
        dimension of K choices (largest first) draws among its 1 + floor(epoch (K - 1) / W) largest,
        W = epochs / 4; this space itself once the warm-up is over."""
        if WARMUP_SHARE * epoch >= epochs:
            return self
        ranked = {}
        for gene in self.genes:
            order = SKIP_RANKED if gene.name.startswith("skip_") else tuple(sorted(gene.choices, reverse=True))
            ranked[gene.name] = order[: 1 + WARMUP_SHARE * epoch * (len(order) - 1) // epochs]
        return WarmupDraws(self, ranked)

    # ---- sampling and counting -----------------------------------------------------------------
    def _widths(self) -> list[tuple[int, ...]]:
        """Every stage-width combination that does not shrink."""
        per_stage = [sorted(self.choices("embed_dim", s)) for s in range(self.num_stages)]
        return [w for w in itertools.product(*per_stage) if all(a <= b for a, b in zip(w, w[1:]))]

    def _stage_count(self, s: int) -> int:
        per_block = len(self.choices("attn_dim", s)) * len(self.choices("mlp_hidden", s))
        free, k = self.slots(s) - len(self.skippable(s)), len(self.skippable(s))
        return sum(math.comb(k, j) * per_block ** (free + j) for j in range(k + 1))

    def num_archs(self) -> int:
        return len(self._widths()) * math.prod(self._stage_count(s) for s in range(self.num_stages))

    def sample_distinct(self, seed: Seed = None) -> Arch:
        """Uniform over distinct archs: widths uniform over the non-shrinking combinations, then per
        stage the number of skipped slots in proportion to how many archs it gives."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        widths = rng.choice(self._widths())
        genes: dict[str, Any] = {}
        for s, width in enumerate(widths):
            n = s + 1
            skippable = self.skippable(s)
            per_block = len(self.choices("attn_dim", s)) * len(self.choices("mlp_hidden", s))
            free, k = self.slots(s) - len(skippable), len(skippable)
            counts = [math.comb(k, j) * per_block ** (free + j) for j in range(k + 1)]
            kept = rng.choices(range(k + 1), weights=counts)[0]
            kept_slots = set(rng.sample(skippable, kept))
            genes[f"embed_dim_{n}"] = width
            genes[f"attn_dim_{n}"] = [rng.choice(self.choices("attn_dim", s)) for _ in range(self.slots(s))]
            genes[f"mlp_hidden_{n}"] = [rng.choice(self.choices("mlp_hidden", s)) for _ in range(self.slots(s))]
            if skippable:
                genes[f"skip_{n}"] = [0 if slot in kept_slots else 1 for slot in skippable]
        return self.arch(**genes)

    def _uniform(self, pick: Callable[[list[Any]], Any], skip: int) -> Arch:
        genes: dict[str, Any] = {}
        for s in range(self.num_stages):
            n = s + 1
            genes[f"embed_dim_{n}"] = pick(sorted(self.choices("embed_dim", s)))
            for name in ("attn_dim", "mlp_hidden"):
                genes[f"{name}_{n}"] = [pick(sorted(self.choices(name, s)))] * self.slots(s)
            if self.skippable(s):
                genes[f"skip_{n}"] = [skip] * len(self.skippable(s))
        return self.arch(**genes)

    def uniform_archs(self) -> list[Arch]:
        """ViT-Res-style hand designs: every slot of every stage runs, all blocks at the same rank of
        their stage's attention and MLP choices, for every non-shrinking width combination."""
        out = []
        for widths in self._widths():
            for i in range(min(len(self.choices("attn_dim", s)) for s in range(self.num_stages))):
                for j in range(min(len(self.choices("mlp_hidden", s)) for s in range(self.num_stages))):
                    out.append(
                        self.with_stages(
                            [
                                (
                                    w,
                                    [(sorted(self.choices("attn_dim", s))[i], sorted(self.choices("mlp_hidden", s))[j])]
                                    * self.slots(s),
                                )
                                for s, w in enumerate(widths)
                            ]
                        )
                    )
        return out

    def largest(self) -> Arch:
        return self._uniform(lambda v: v[-1], 0)

    def smallest(self) -> Arch:
        return self._uniform(lambda v: v[0], 1)

    def middle(self) -> Arch:
        return self._uniform(lambda v: v[(len(v) - 1) // 2], 0)

    def extreme_arch(self, block_cost: Callable[[BlockConfig], float], costliest: bool = False) -> Arch:
        """Exact, whatever the costs: for each non-shrinking width combination the stages are
        independent, so each slot takes its cheapest (costliest) block, and a skippable slot runs
        only if that lowers (raises) the total; the best combination wins. Work: width combinations
        x stages x slots x (attention x MLP choices) block costs."""
        pick = max if costliest else min
        better = (lambda a, b: a > b) if costliest else (lambda a, b: a < b)
        best: tuple[float, dict[str, Any]] | None = None
        for widths in self._widths():
            total = block_cost(self.stem_block(widths[0])) + block_cost(self.head_block(widths[-1]))
            total += sum(block_cost(self.reduction_block(s, widths[s - 1], widths[s])) for s in range(1, len(widths)))
            genes: dict[str, Any] = {}
            for s, width in enumerate(widths):
                n = s + 1
                options = [
                    (block_cost(self.encoder_block(s, width, a, m)), a, m)
                    for a in self.choices("attn_dim", s)
                    for m in self.choices("mlp_hidden", s)
                ]
                cost, a, m = pick(options, key=lambda o: o[0])
                skips = [1 if better(0.0, cost) else 0 for _ in self.skippable(s)]
                total += cost * (self.slots(s) - sum(skips))
                genes.update(
                    {
                        f"embed_dim_{n}": width,
                        f"attn_dim_{n}": [a] * self.slots(s),
                        f"mlp_hidden_{n}": [m] * self.slots(s),
                    }
                )
                if skips:
                    genes[f"skip_{n}"] = skips
            if best is None or better(total, best[0]):
                best = (total, genes)
        assert best is not None
        return self.arch(**best[1])

    def frames(self) -> Iterator[Frame]:
        """One frame per non-shrinking width combination: stem, reductions and head fixed, one slot
        per block slot over its (attention, MLP) pairs, plus skipping it where it may be skipped."""
        for widths in self._widths():
            fixed = [
                self.stem_block(widths[0]),
                self.head_block(widths[-1]),
                *(self.reduction_block(s, widths[s - 1], widths[s]) for s in range(1, len(widths))),
            ]
            pairs = [
                [(a, m) for a in self.choices("attn_dim", s) for m in self.choices("mlp_hidden", s)]
                for s in range(self.num_stages)
            ]
            slots = []
            for s, width in enumerate(widths):
                run = tuple((self.encoder_block(s, width, a, m),) for a, m in pairs[s])
                slots += [run + (((),) if i in self.skippable(s) else ()) for i in range(self.slots(s))]

            def build(picks: Sequence[int], widths: tuple[int, ...] = widths, pairs: list = pairs) -> Arch:
                stages, first = [], 0
                for s, width in enumerate(widths):  # option len(pairs[s]) is the skip
                    chosen, first = picks[first : first + self.slots(s)], first + self.slots(s)
                    stages.append((width, [pairs[s][k] if k < len(pairs[s]) else None for k in chosen]))
                return self.with_stages(stages)

            yield Frame(tuple(fixed), tuple(slots), build)

    # ---- blocks --------------------------------------------------------------------------------
    def stem_block(self, embed_dim: int) -> BlockConfig:
        s = self.spec
        if self.stem == "conv":
            return BlockConfig.of(
                "conv_stem",
                tokens=self.tokens(0),
                out_dim=embed_dim,
                patch_size=s.patch_size,
                in_chans=s.in_chans,
                mid_chans=self.stem_channels,
            )
        return BlockConfig.of(
            "patch_embed",
            tokens=self.tokens(0),
            in_dim=s.in_chans,
            out_dim=embed_dim,
            patch_size=s.patch_size,
            in_chans=s.in_chans,
        )

    def encoder_block(self, stage: int, embed_dim: int, attn_dim: int, mlp_hidden: int) -> BlockConfig:
        heads = attn_dim // self.head_dim(stage)
        return BlockConfig.of(
            "encoder",
            tokens=self.tokens(stage),
            in_dim=embed_dim,
            out_dim=embed_dim,
            num_heads=heads,
            qkv_dim=attn_dim,
            mlp_hidden=mlp_hidden,
        )

    def reduction_block(self, stage: int, in_dim: int, out_dim: int) -> BlockConfig:
        """The residual spatial reduction into `stage` (1-based count of reductions passed)."""
        return BlockConfig.of("reduction", tokens=self.tokens(stage - 1), in_dim=in_dim, out_dim=out_dim)

    def head_block(self, embed_dim: int) -> BlockConfig:
        return BlockConfig.of(
            "head",
            tokens=self.tokens(self.num_stages - 1),
            in_dim=embed_dim,
            out_dim=self.spec.num_classes,
            num_classes=self.spec.num_classes,
        )

    def arch_blocks(self, arch: Arch) -> list[BlockConfig]:
        stages = self.stages(arch)
        blocks = [self.stem_block(stages[0].embed_dim)]
        for s, stage in enumerate(stages):
            if s:
                blocks.append(self.reduction_block(s, stages[s - 1].embed_dim, stage.embed_dim))
            blocks += [self.encoder_block(s, stage.embed_dim, a, m) for a, m in stage.blocks]
        return [*blocks, self.head_block(stages[-1].embed_dim)]

    def block_configs(self) -> list[BlockConfig]:
        blocks: set[BlockConfig] = set()
        widths = self._widths()
        for s in range(self.num_stages):
            for d in {w[s] for w in widths}:
                blocks |= {
                    self.encoder_block(s, d, a, m)
                    for a in self.choices("attn_dim", s)
                    for m in self.choices("mlp_hidden", s)
                }
            if s:
                blocks |= {self.reduction_block(s, w[s - 1], w[s]) for w in widths}
        blocks |= {self.stem_block(w[0]) for w in widths} | {self.head_block(w[-1]) for w in widths}
        return sorted(blocks)

    def block_indexer(self, index: Mapping[BlockConfig, int]) -> Callable[[Arch], list[int]]:
        """Lookups keyed by genes (prediction calls this once per arch)."""
        encoders: dict[tuple[int, int, int, int], int] = {}
        for s in range(self.num_stages):
            for d in self.choices("embed_dim", s):
                for a in self.choices("attn_dim", s):
                    for m in self.choices("mlp_hidden", s):
                        block = self.encoder_block(s, d, a, m)
                        if block in index:
                            encoders[s, d, a, m] = index[block]

        def indices(arch: Arch) -> list[int]:
            stages = self.stages(arch)
            out = [index[self.stem_block(stages[0].embed_dim)]]
            for s, stage in enumerate(stages):
                if s:
                    out.append(index[self.reduction_block(s, stages[s - 1].embed_dim, stage.embed_dim)])
                out += [encoders[s, stage.embed_dim, a, m] for a, m in stage.blocks]
            return [*out, index[self.head_block(stages[-1].embed_dim)]]

        return indices

    def with_stages(self, stages: Sequence[tuple[int, Sequence[tuple[int, int] | None]]]) -> Arch:
        """The arch of (width, per-slot (attention, MLP) or None for a skipped slot) per stage."""
        genes: dict[str, Any] = {}
        for s, (width, blocks) in enumerate(stages):
            n, low_a, low_m = s + 1, min(self.choices("attn_dim", s)), min(self.choices("mlp_hidden", s))
            if len(blocks) != self.slots(s):
                raise ArchError(f"{self.key} arch: stage {n} has {len(blocks)} slots, the space has {self.slots(s)}")
            skipped = [i for i, b in enumerate(blocks) if b is None]
            wrong = [i for i in skipped if i not in self.skippable(s)]
            if wrong:
                raise ArchError(
                    f"{self.key} arch: slot {wrong[0]} of stage {n} cannot be skipped; skippable slots: "
                    f"{', '.join(map(str, self.skippable(s))) or 'none'}"
                )
            genes[f"embed_dim_{n}"] = width
            genes[f"attn_dim_{n}"] = [b[0] if b else low_a for b in blocks]
            genes[f"mlp_hidden_{n}"] = [b[1] if b else low_m for b in blocks]
            if self.skippable(s):
                genes[f"skip_{n}"] = [1 if i in skipped else 0 for i in self.skippable(s)]
        return self.arch(**genes)


class WarmupDraws(ResNASSpace):
    """The draws of a warm-up epoch: every gene (every slot's value) uniformly among its allowed
    choices, as the release draws each `ChannelDrop` layer on its own; the archs are the full space's.
    Only the draws training makes are restricted (`sample`, `sample_distinct`, `sample_spread`,
    `largest`, `smallest`); the rest describes the full space."""

    def __init__(self, full: ResNASSpace, ranked: Mapping[str, tuple[Any, ...]]):
        super().__init__(full.spec)
        self.full, self.ranked = full, dict(ranked)

    def _drawable(self, gene: Gene) -> Sequence[Any]:
        return self.ranked[gene.name]

    def _drawn_arch(self, **genes: Any) -> Arch:
        return self.full.arch(**genes)

    def _draw(self, pick: Callable[[Sequence[Any]], Any]) -> Arch:
        genes: dict[str, Any] = {}
        for gene in self.genes:
            options = self._drawable(gene)
            genes[gene.name] = (
                [pick(options) for _ in range(self._length(gene, genes))] if gene.is_list else pick(options)
            )
        return self._drawn_arch(**genes)

    def sample(self, seed: Seed = None) -> Arch:
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        return self._redraw_refused(lambda: self._draw(rng.choice))

    def sample_distinct(self, seed: Seed = None) -> Arch:
        """Gene by gene, as the release draws in warm-up (its only draw)."""
        return self.sample(seed)

    def largest(self) -> Arch:
        return self.full.largest()

    def smallest(self) -> Arch:
        return self._draw(lambda options: options[-1])
