"""Multi-architectural sampling across processes: every rank draws its own M subnets, spread over
the choices, from (seed, step, rank); DDP averages the gradients of all M x processes subnets; a
resumed run continues every rank's sequence."""

from __future__ import annotations

import collections
import copy
import hashlib
import json
import random
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from hwnas.errors import HwnasError
from hwnas.spaces import Arch, SearchSpace, get_space
from hwnas.supernet import build_supernet
from hwnas.training import TrainConfig, TrainedRun, train
from hwnas.training.multi_arch import step_model
from hwnas.training.sampling import step_archs
from hwnas.training.trainer import digest
from tests.helpers import assert_one_line_error, hwnas_in_process, torchrun
from tests.test_resnas import small_yaml


def resnas_dimensions(space: Any, arch: Arch) -> dict[tuple[Any, ...], tuple[tuple[Any, ...], Any]]:
    """Each dimension of a ViT-ResNAS arch (a stage's width, a slot's skip flag, attention and MLP
    width) with its choices and value; None where the arch does not run the slot."""
    out: dict[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = {}
    for s, stage in enumerate(space.stages(arch)):
        out["embed", s] = (space.choices("embed_dim", s), stage.embed_dim)
        runs = dict(zip(stage.slots, stage.blocks))
        for slot in range(space.slots(s)):
            if slot in space.skippable(s):
                out["skip", s, slot] = ((0, 1), int(slot not in runs))
            for k, gene in enumerate(("attn_dim", "mlp_hidden")):
                out[gene, s, slot] = (space.choices(gene, s), runs[slot][k] if slot in runs else None)
    return out


def gene_dimensions(space: SearchSpace, arch: Arch) -> dict[tuple[Any, ...], tuple[tuple[Any, ...], Any]]:
    """Each gene's value (each layer's, None past the arch's depth), for spaces that canonicalise nothing."""
    out: dict[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = {}
    for gene in space.genes:
        value = arch.genes[gene.name]
        if not gene.is_list:
            out[gene.name,] = (gene.choices, value)
            continue
        sizing = {g.name: g for g in space.genes}.get(str(gene.length))
        longest = max(sizing.choices) if sizing else gene.length
        for i in range(int(longest)):
            out[gene.name, i] = (gene.choices, value[i] if i < len(value) else None)
    return out


def assert_spread(archs: list[Arch], dimensions: Any) -> None:
    """No two archs share a value of a dimension while the choices suffice; beyond, each value at most
    ceil(M / choices) times, and as evenly as that where every arch has the dimension."""
    per_arch = [dimensions(arch) for arch in archs]
    for key, (choices, _) in per_arch[0].items():
        values = [d[key][1] for d in per_arch if d[key][1] is not None]
        counts = collections.Counter(values)
        assert max(counts.values(), default=0) <= -(-len(archs) // len(choices)), (key, values)
        if len(values) == len(archs) >= len(choices):
            assert max(counts[c] for c in choices) - min(counts[c] for c in choices) <= 1, (key, values)


def test_every_rank_draws_its_own_subnets_spread_over_the_choices():
    space = get_space("resnas-tiny")  # stage widths that never shrink: the family's rules refuse no draw
    for m in (2, 4, 8):
        for step in range(12):
            mine, theirs = (step_archs(space, "multi", 0, step, archs_per_batch=m, rank=r) for r in (0, 1))
            assert mine == step_archs(space, "multi", 0, step, archs_per_batch=m, rank=0)  # (seed, step, rank) only
            assert not {a.digest for a in mine} & {a.digest for a in theirs}
            assert_spread(mine, lambda a: resnas_dimensions(space, a))
            assert_spread(theirs, lambda a: resnas_dimensions(space, a))
    autoformer = get_space(
        "autoformer-digits"
    )  # depth sizes the per-layer genes: spread among the archs with the layer
    for count in (2, 3, 5):
        assert_spread(autoformer.sample_spread(count, 7), lambda a: gene_dimensions(autoformer, a))


def test_rules_that_refuse_a_spread_draw_still_reach_every_arch():
    """resnas-digits' stage widths overlap (64 then 56 shrinks): once the first subnet takes (48, 96),
    the values left only build refused archs, so the second is drawn from all choices."""
    space = get_space("resnas-digits")
    widths = collections.Counter(
        (a.embed_dim_1, a.embed_dim_2)
        for step in range(300)
        for a in step_archs(space, "multi", 0, step, archs_per_batch=2, rank=0)
    )
    assert set(widths) == {(48, 56), (48, 96), (64, 96)} and min(widths.values()) > 60


def test_shared_draws_and_runs_of_earlier_formats(tmp_path):
    space = get_space("resnas-digits")
    own = TrainConfig(space="resnas-digits", sampling="multi", archs_per_batch=4).with_defaults(space)
    shared = TrainConfig(space="resnas-digits", sampling="multi", archs_per_batch=4, shared_draws=True).with_defaults(
        space
    )
    assert (own.draw_rank(1), shared.draw_rank(1), own.spreads, shared.spreads) == (1, None, True, True)
    assert "4 subnets per batch), drawn per process" in own.describe()
    assert "the same on every process" in shared.describe()
    assert TrainConfig(space="resnas-digits", sampling="uniform").with_defaults(space).draw_rank(1) is None
    refused = hwnas_in_process(
        "train", "--space", "resnas-digits", "--sampling", "uniform", "--shared-draws", "--out", str(tmp_path / "run")
    )
    assert_one_line_error(refused, "--shared-draws is for samplings whose processes draw their own subnets (multi)")
    assert not (tmp_path / "run").exists()
    # a run of format 2 drew its subnets independently and shared them: a resume continues that sequence
    old = TrainConfig.from_dict({**own.to_dict(), "format": 2, "shared_draws": None}).with_defaults(space)
    assert (old.draw_rank(1), old.spreads) == (None, False)
    legacy = step_archs(space, "multi", 0, 5, archs_per_batch=4, rank=old.draw_rank(1), spread=old.spreads)
    rng = random.Random("0/5")
    assert legacy == [space.sample(rng) for _ in range(4)]


def _ddp_step(rank: int, folder: str) -> None:
    """Rank `rank` of 2 (gloo): one DDP backward of the trainer's step model, its gradients against
    one process's over both ranks' examples; the largest difference written to `folder`."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=2)
    space = get_space("resnas-digits")
    result = {}
    for case in ("multi", "single path"):
        torch.manual_seed(0)
        supernet = build_supernet(space)
        reference = copy.deepcopy(supernet)
        if case == "multi":  # each rank its own 2 subnets, each on 2 of its 4 examples
            archs = [step_archs(space, "multi", 0, 0, archs_per_batch=2, rank=r) for r in range(2)]
        else:  # rank 0 skips layers that rank 1 runs: DDP must reduce zeros for them on rank 0
            archs = [[space.smallest()], [space.largest()]]
        data = torch.Generator().manual_seed(1)
        x, y = torch.randn(2, 4, 3, 32, 32, generator=data), torch.randint(0, 10, (2, 4), generator=data)
        model = step_model(supernet, case == "multi", distributed=True)
        F.cross_entropy(model(x[rank], archs[rank])[0], y[rank]).backward()
        if case == "multi":  # the 4 subnets on the 8 examples in one process (2 examples each)
            loss = F.cross_entropy(reference.forward_multi(x.flatten(0, 1), archs[0] + archs[1]), y.flatten())
        else:
            loss = sum(F.cross_entropy(reference(x[r], archs[r][0]), y[r]) for r in range(2)) / 2
        loss.backward()
        worst = 0.0
        for (name, p), q in zip(supernet.named_parameters(), reference.parameters()):
            assert (p.grad is None) == (q.grad is None), name
            if p.grad is not None:
                worst = max(worst, float((p.grad - q.grad).abs().max()))
        result[case] = worst
        del model
    dist.destroy_process_group()
    Path(folder, f"rank{rank}.json").write_text(json.dumps(result))


def test_ddp_averages_the_gradients_of_every_ranks_subnets(tmp_path):
    torch.multiprocessing.spawn(_ddp_step, args=(str(tmp_path),), nprocs=2)
    for rank in range(2):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["multi"] < 1e-6 and result["single path"] < 1e-6, (rank, result)


KILLED_AFTER_FIRST_CHECKPOINT = """
import os
import sys

import hwnas.training.trainer as trainer
from hwnas.cli import main

real = trainer.save_checkpoint


def save_then_die(run_dir, state):
    path = real(run_dir, state)
    if state["epoch"] == 0:
        os._exit(3)  # rank 0 killed right after its first checkpoint; torchrun stops the other rank
    return path


trainer.save_checkpoint = save_then_die
main(sys.argv[1:])
"""


def test_torchrun_ranks_train_their_own_subnets_and_resume_them(tmp_path):
    """Two processes (gloo), 2 subnets each per step: the epoch's archs_sha is the digest of the ranks'
    own sequences, drawn from (seed, step, rank); killed after the first epoch and resumed, the run
    continues each rank's sequence, and a resume on another number of processes is refused."""
    space_yaml, out = small_yaml(tmp_path), tmp_path / "ddp"
    args = ["train", "--space", str(space_yaml), "--data", "synthetic", "--epochs", "2", "--batch-size", "16"]
    # the draws of the full space from the first step (a warm-up would restrict them: see test_resnas)
    args += ["--sampling", "multi", "--archs-per-batch", "2", "--no-warmup-choices", "--out", str(out)]
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED_AFTER_FIRST_CHECKPOINT))
    killed = torchrun(str(script), *args)
    assert killed.returncode != 0 and (out / "checkpoint.pt").is_file(), killed.stderr[-3000:]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    resumed = torchrun("-m", "hwnas", *args, "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads(resumed.stdout[resumed.stdout.index("{") :])
    assert report["processes"] == 2 and report["epochs_run"] == 1 and report["final"]["epoch"] == 2
    run = TrainedRun(out)
    steps = len(run.split.train) // 2 // 16
    for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()):
        ranks = []
        for rank in range(2):
            drawn = hashlib.sha256()
            for step in range((row["epoch"] - 1) * steps, row["epoch"] * steps):
                archs = step_archs(run.space, "multi", 0, step, archs_per_batch=2, rank=rank)
                drawn.update("".join(a.digest for a in archs).encode())
            ranks.append(drawn.hexdigest()[:16])
        assert ranks[0] != ranks[1] and row["archs_sha"] == digest(ranks), row
    with pytest.raises(HwnasError, match=r"written by 2 process\(es\) .* subnets of every step would change"):
        train(run.config, out, resume=True, progress=False)
