"""Supernet training: it learns, checkpoints every epoch, resumes exactly, and refuses bad runs."""

from __future__ import annotations

import collections
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from hwnas.data.split import DataError
from hwnas.errors import ArchError, HwnasError
from hwnas.resources import available_cores
from hwnas.spaces import Arch, get_space
from hwnas.training import TrainConfig, TrainedRun, train
from hwnas.training.checkpoint import CheckpointError
from hwnas.training.sampling import step_archs
from tests.helpers import assert_one_line_error, hwnas, torchrun, toy_space_yaml, train_killed_after_first_epoch


@pytest.fixture(scope="module")
def toy_yaml(tmp_path_factory) -> Path:
    return toy_space_yaml(tmp_path_factory.mktemp("spaces"), "train-toy")


def config(toy_yaml: Path, **kw) -> TrainConfig:
    base = dict(space=str(toy_yaml), data="synthetic", epochs=4, batch_size=16, lr=2e-3, warmup_epochs=1)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(toy_yaml, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    train(config(toy_yaml), out, progress=False)
    return out


def test_run_folder_has_everything(trained):
    for name in (
        "config.json",
        "split.json",
        "checkpoint.pt",
        "supernet.safetensors",
        "metrics.jsonl",
        "metrics.csv",
        "learning_curve.png",
    ):
        assert (trained / name).is_file(), name
    metrics = pd.read_csv(trained / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2, 3, 4]
    assert {"loss", "lr", "val_top1_largest", "val_top1_smallest", "val_top1_middle"} <= set(metrics.columns)
    assert metrics["loss"].iloc[-1] < metrics["loss"].iloc[0]
    assert metrics["val_top1_largest"].iloc[-1] > 50  # 10 classes: chance is 10%


def test_inherited_accuracy_on_held_out_parts(trained):
    run = TrainedRun(trained)
    split = run.split
    assert not set(split.train) & (set(split.search_val) | set(split.test))
    net = run.supernet()
    val = run.top1(run.space.largest(), "search_val", net)
    metrics = pd.read_csv(trained / "metrics.csv")
    assert val == pytest.approx(metrics["val_top1_largest"].iloc[-1])  # the saved weights are the trained ones
    smallest = run.space.smallest()
    correct = manual_correct(run, smallest, "test")
    assert run.top1(smallest, "test", net) == pytest.approx(100 * correct / len(split.test))
    assert correct > 0.3 * len(split.test)  # trained: well above chance (10%)


def manual_correct(run: TrainedRun, arch, part: str) -> int:
    """Correct predictions of `arch` on every image of a split part, counted here image by image."""
    from hwnas.data import PoolDataset, model_input

    net = run.supernet()
    dataset = PoolDataset(run.pool, getattr(run.split, part), run.space.spec.img_size, run.space.spec.in_chans)
    with torch.no_grad():
        return sum(int(net(model_input(x[None]), arch).argmax(1).item() == int(y)) for x, y in dataset)


def test_resume_after_a_kill_is_exact(toy_yaml, trained, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train_killed_after_first_epoch(config(toy_yaml), out, monkeypatch)
    report = train(config(toy_yaml), out, resume=True, progress=False)
    assert report["epochs_run"] == 3
    straight, resumed = load_file(str(trained / "supernet.safetensors")), load_file(str(out / "supernet.safetensors"))
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    drop = ["seconds"]
    pd.testing.assert_frame_equal(
        pd.read_csv(trained / "metrics.csv").drop(columns=drop), pd.read_csv(out / "metrics.csv").drop(columns=drop)
    )


def test_bad_runs_are_refused(toy_yaml, trained, tmp_path):
    with pytest.raises(HwnasError, match="already holds a training run; pass `resume`"):
        train(config(toy_yaml), trained, progress=False)
    with pytest.raises(HwnasError, match=r"other settings than the run's: lr=0.001 \(run: 0.002\)"):
        train(config(toy_yaml, lr=1e-3), trained, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(config(toy_yaml), tmp_path / "fresh", resume=True, progress=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupted or not a hwnas checkpoint"):
        train(config(toy_yaml), broken, resume=True, progress=False)
    other = toy_space_yaml(tmp_path, "other-toy", embed_dim=[32, 64])
    with pytest.raises(
        DataError,
        match=r"trained another space named 'train-toy' than 'other-toy' \(choices.embed_dim: "
        r"\[32, 48\] vs \[32, 64\], run's vs given\)",
    ):
        train(config(other), trained, resume=True, progress=False)


def test_a_run_keeps_its_space_when_the_yaml_is_edited_or_moved(tmp_path):
    """A space is its content: the run stores its declaration and rebuilds the space from it."""
    (tmp_path / "a").mkdir()
    yaml_path = toy_space_yaml(tmp_path / "a", "mine")
    out = tmp_path / "run"
    train(config(yaml_path, epochs=1), out, progress=False)
    arch = TrainedRun(out).space.largest()
    arch.to_json(tmp_path / "arch.json")
    edited = toy_space_yaml(tmp_path / "a", "mine", embed_dim=[32, 64])  # same file, other choices
    run = TrainedRun(out)
    assert run.space.spec.choices["embed_dim"] == (32, 48) and run.space == arch.space != get_space(edited)
    moved = tmp_path / "elsewhere"
    (tmp_path / "a").rename(moved)  # the YAML is gone from where the run was trained
    result = hwnas("eval", "--run", str(out), "--arch", str(tmp_path / "arch.json"), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["top1"] == pytest.approx(run.top1(arch))
    with pytest.raises(DataError, match=r"choices.embed_dim: \[32, 48\] vs \[32, 64\]"):
        train(config(moved / "mine.yaml", epochs=2), out, resume=True, progress=False)
    with pytest.raises(ArchError, match=r"another space named 'mine' \(choices.embed_dim: \[32, 48\] vs \[32, 64\]"):
        Arch.from_json(tmp_path / "arch.json", get_space(moved / "mine.yaml"))


def test_sandwich_trains_teacher_and_students(toy_yaml, tmp_path):
    space = get_space(toy_yaml)
    archs = step_archs(space, "sandwich", seed=0, step=5, sandwich_random=2)
    assert archs[:2] == [space.largest(), space.smallest()] and len(archs) == 4
    assert step_archs(space, "sandwich", 0, 5, 2) == archs and step_archs(space, "uniform", 0, 5) != step_archs(
        space, "uniform", 0, 6
    )
    report = train(config(toy_yaml, sampling="sandwich", epochs=1), tmp_path / "run", progress=False)
    assert report["final"]["val_top1_smallest"] > 10


def test_a_sampling_registered_once_is_known_to_the_config_and_the_trainer(toy_yaml, tmp_path, monkeypatch):
    from hwnas.training import sampling as samplings

    @dataclass(frozen=True)
    class LargestTeachesOne(samplings.Sampling):
        def archs(self, space, draw, sandwich_random, archs_per_batch):
            return [space.largest(), draw()]

    mine = LargestTeachesOne("largest-teaches-one", "the largest plus one random arch, distilled", distils=True)
    monkeypatch.setitem(samplings.SAMPLINGS, mine.name, mine)
    space = get_space(toy_yaml)
    archs = step_archs(space, mine.name, 0, 3)
    assert archs[0] == space.largest() and len(archs) == 2
    report = train(config(toy_yaml, sampling=mine.name, epochs=1), tmp_path / "run", progress=False)
    assert (
        report["config"]["sampling"] == mine.name
        and "sampling largest-teaches-one" in TrainConfig(**{**report["config"], "format": 2}).describe()
    )
    with pytest.raises(HwnasError, match="unknown `sampling` 'nope'; use uniform or distinct or sandwich or multi"):
        TrainConfig(space="autoformer-digits", sampling="nope").with_defaults(get_space("autoformer-digits"))


def test_uniform_draws_each_gene_and_distinct_draws_each_arch_uniformly():
    space = get_space("autoformer-digits")  # depth 4/5/6 hold 768/3,072/12,288 archs
    uniform = collections.Counter(step_archs(space, "uniform", 0, step)[0].depth for step in range(4000))
    assert all(uniform[d] / 4000 == pytest.approx(1 / 3, abs=0.03) for d in (4, 5, 6))  # AutoFormer: depth first
    distinct = collections.Counter(step_archs(space, "distinct", 0, step)[0].depth for step in range(4000))
    assert distinct[6] / 4000 == pytest.approx(12288 / 16128, abs=0.03)
    assert distinct[4] / 4000 == pytest.approx(768 / 16128, abs=0.02)
    # sandwich and multi draw their random subnets as the space's default does (runs of format 1: distinct)
    sandwich = collections.Counter(
        step_archs(space, "sandwich", 0, step, draw_kind="uniform")[2].depth for step in range(2000)
    )
    assert sandwich[4] / 2000 == pytest.approx(1 / 3, abs=0.04)
    assert TrainConfig(space="vitas-digits").with_defaults(get_space("vitas-digits")).sampling == "distinct"
    old = TrainConfig.from_dict({"space": "autoformer-digits", "sampling": "sandwich", "weight_decay": 0.05})
    assert (old.format, old.draw_kind(space), old.no_weight_decay, old.search_val) == (1, "distinct", False, "15%")
    assert TrainConfig.from_dict({"space": "autoformer-digits", "sampling": "uniform"}).sampling == "distinct"
    # a run of format 1 resumes with the command's defaults: nothing given conflicts with what it saved
    assert TrainConfig(space="autoformer-digits").conflicts(old) == []


def test_the_budget_follows_the_size_of_the_data():
    cfg = TrainConfig(space="autoformer-digits").with_defaults(get_space("autoformer-digits"), train_images=1167)
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.drop_path, cfg.sampling, cfg.workers) == (
        40,
        32,
        1e-3,
        0.0,
        "uniform",
        0,
    )
    # a 32-px space on a large folder gets the large budget, a 224-px one on a small folder the small one
    big = TrainConfig(space="autoformer-digits", data="/data/cifar").with_defaults(
        get_space("autoformer-digits"), train_images=50_000
    )
    assert (big.epochs, big.batch_size, big.drop_path, big.hflip) == (500, 128, 0.1, 0.5)
    small = TrainConfig(space="autoformer-tiny", data="/data/pets").with_defaults(
        get_space("autoformer-tiny"), train_images=5000
    )
    assert (small.epochs, small.batch_size) == (40, 32)
    # ViT-ResNAS's ImageNet recipe is its release's, with DropPath by size (scripts/vit-sr-nas/super_net/*.sh)
    for name, drop_path in (("resnas-tiny", 0.2), ("resnas-small", 0.3), ("resnas-digits", 0.2)):
        on_imagenet = TrainConfig(space=name, data="/data/imagenet").with_defaults(get_space(name), train_images=10**6)
        assert (on_imagenet.epochs, on_imagenet.warmup_epochs, on_imagenet.drop_path) == (120, 5, drop_path)
        assert (on_imagenet.batch_size, on_imagenet.lr) == (128, 1e-3)
    with pytest.raises(HwnasError, match="unknown `weight_sharing` 'suffix'; use prefix or cyclic"):
        replace(cfg, weight_sharing="suffix").check()


def test_cli_eval(trained, toy_yaml, tmp_path):
    space = get_space(toy_yaml)
    arch_file = tmp_path / "arch.json"
    space.largest().to_json(arch_file)
    result = hwnas("eval", "--run", str(trained), "--arch", str(arch_file), "--split", "test", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["top1"] == pytest.approx(TrainedRun(trained).top1(space.largest(), "test"))
    get_space("autoformer-digits").smallest().to_json(tmp_path / "other.json")
    assert_one_line_error(
        hwnas("eval", "--run", str(trained), "--arch", str(tmp_path / "other.json")),
        "is from space 'autoformer-digits', not 'train-toy'",
    )
    assert_one_line_error(hwnas("eval", "--run", str(tmp_path), "--arch", str(arch_file)), "is not a training run")


def test_cli_train_bad_data(tmp_path):
    assert_one_line_error(
        hwnas(
            "train", "--space", "autoformer-digits", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")
        ),
        "does not exist",
    )


def test_torchrun_two_processes_on_cpu(toy_yaml, tmp_path):
    """DDP with gloo: both ranks train the same archs each step (else the gradient sync would fail).
    `multi`, whose processes draw their own subnets, is tested in test_multi_arch."""
    out = tmp_path / "ddp"
    args = ["-m", "hwnas", "train", "--space", str(toy_yaml), "--data", "synthetic", "--epochs", "2"]
    args += ["--batch-size", "16", "--sampling", "uniform", "--out", str(out)]
    result = torchrun(*args, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["processes"] == 2 and report["final"]["epoch"] == 2
    single = TrainedRun(out)
    # every rank trained the archs of (seed, step): the ranks compared their epoch digests (and would have
    # refused to go on had they differed), and rank 0's is the sequence drawn here
    steps = len(single.split.train) // 2 // 16
    for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()):
        drawn = hashlib.sha256()
        for step in range((row["epoch"] - 1) * steps, row["epoch"] * steps):
            drawn.update("".join(a.digest for a in step_archs(single.space, "uniform", 0, step)).encode())
        assert row["archs_sha"] == drawn.hexdigest()[:16]
    assert single.top1(single.space.largest()) > 100 / single.space.spec.num_classes * 1.5  # above chance: it learned
    resumed = torchrun(*args)
    assert resumed.returncode != 0 and "already holds a training run" in resumed.stderr


def test_cyclic_weight_sharing_trains_and_evaluates(toy_yaml, tmp_path):
    out = tmp_path / "cyclic"
    report = train(config(toy_yaml, weight_sharing="cyclic", epochs=2), out, progress=False)
    run = TrainedRun(out)
    assert run.config.weight_sharing == "cyclic"
    assert run.top1(run.space.smallest()) == pytest.approx(report["final"]["val_top1_smallest"])


def test_vitas_space_trains_with_shifted_identities(tmp_path):
    out = tmp_path / "vitas"
    report = train(TrainConfig(space="vitas-digits", data="synthetic", epochs=1, batch_size=32), out, progress=False)
    assert report["final"]["epoch"] == 1
    run = TrainedRun(out)
    space = run.space
    shifted = space.arch(embed_dim=64, num_heads=[2, 0, 2, 0, 2, 0], mlp_ratio=[2.0] * 6)
    assert shifted == space.smallest()  # one encoding, so one set of inherited weights and one score
    net = run.supernet()
    assert run.top1(shifted, "search_val", net) == run.top1(space.smallest(), "search_val", net)


def test_trains_on_an_image_folder(tmp_path):
    from tests.test_data import make_folder

    data = make_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=(8, 2), corrupt=3)
    space = str(toy_space_yaml(tmp_path, "folder-toy"))
    report = train(
        TrainConfig(space=space, data=str(data), epochs=2, batch_size=4, aug="deit", img_size=16, search_val="1/class"),
        tmp_path / "run",
        progress=False,
    )
    run = TrainedRun(tmp_path / "run")
    # the shape comes from the data and the command line, and every later command gets it from the run
    assert (run.space.spec.num_classes, run.space.spec.img_size) == (3, 16)
    assert (run.config.num_classes, run.config.hflip, run.config.workers) == (3, 0.5, min(available_cores(), 8))
    assert len(run.split.search_val) == 3 and run.split.search_val_rule == "1/class" and len(run.split.test) == 6
    broken = sum(b"broken" in run.pool.files[i] for i in run.split.train)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics["failed_images"]) == [broken] * 2  # skipped and counted every epoch, never a crash
    assert report["final"]["epoch"] == 2
    assert (tmp_path / "run" / "images.json").is_file()
    assert run.top1(run.space.largest(), "test") == pytest.approx(
        100 * manual_correct(run, run.space.largest(), "test") / 6
    )
    with pytest.raises(HwnasError, match=r"`resume` with other settings than the run's: img_size=32 \(run: 16\)"):
        train(TrainConfig(space=space, data=str(data), img_size=32), tmp_path / "run", resume=True, progress=False)


def test_position_embeddings_and_class_tokens_get_no_weight_decay(toy_yaml):
    from hwnas.supernet import build_supernet
    from hwnas.training.trainer import build_recipe

    space = get_space(toy_yaml)
    net = build_supernet(space)
    base = config(toy_yaml).with_defaults(space)
    decayed = {
        name
        for group in build_recipe(net, base, 10, 10).optimizer.param_groups
        if group["weight_decay"] > 0
        for name, p in net.named_parameters()
        if any(p is q for q in group["params"])
    }
    assert "pos_embed" not in decayed and "cls_token" not in decayed and "patch_embed.proj.weight" in decayed
    old = replace(base, no_weight_decay=False)  # runs of format 1 decayed them
    decayed_old = {
        name
        for group in build_recipe(net, old, 10, 10).optimizer.param_groups
        if group["weight_decay"] > 0
        for name, p in net.named_parameters()
        if any(p is q for q in group["params"])
    }
    assert {"pos_embed", "cls_token"} <= decayed_old


def test_train_prints_the_recipe_it_chose_before_the_first_epoch(toy_yaml, tmp_path, capsys):
    import hwnas

    report = hwnas.train(toy_yaml, tmp_path / "run", data="synthetic", epochs=1, batch_size=16)
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("train "))
    assert (
        "1 epoch, batch 16, lr 0.001 (3 warm-up)" in line and "augmentation weak, hflip 0," in line
    )  # synthetic data is held in memory: no flips
    assert line.startswith("train train-toy on synthetic (") and "sampling uniform" in line
    assert err.index(line) < err.index("%|"), "the recipe comes before the first progress bar"
    assert report.epochs_run == 1 and report.to_dict()["config"]["aug"] == "weak"
