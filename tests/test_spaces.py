"""Search spaces and Arch: declaration, validation, canonical form, sampling, counting."""

from __future__ import annotations

import collections
import itertools
import json
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest

from hwnas import Arch, ArchError, SpaceError, get_space, list_spaces
from tests.helpers import toy_space_yaml

DEIT_TINY = dict(embed_dim=192, depth=12, num_heads=[3] * 12, mlp_ratio=[4.0] * 12)


def test_shipped_spaces():
    assert set(list_spaces()) >= {"autoformer-tiny", "autoformer-small", "autoformer-base", "autoformer-digits"}
    tiny = get_space("autoformer-tiny")
    assert tiny.spec.choices == {
        "embed_dim": (192, 216, 240),
        "depth": (12, 13, 14),
        "num_heads": (3, 4),
        "mlp_ratio": (3.5, 4.0),
    }
    assert tiny.num_tokens == 197 and tiny.head_dim == 64
    digits = get_space("autoformer-digits")
    assert (digits.spec.img_size, digits.spec.patch_size, digits.spec.num_classes) == (32, 4, 10)


def test_num_archs_closed_form():
    # AutoFormer-T: one embed width, then 2 heads x 2 ratios per layer, for depth 12..14.
    assert get_space("autoformer-tiny").num_archs() == 3 * sum(4**d for d in (12, 13, 14))
    assert get_space("autoformer-small").num_archs() == 3 * sum(9**d for d in (12, 13, 14))


def _tiny_yaml(tmp_path: Path, **overrides) -> Path:
    spec = {
        "family": "autoformer",
        "img_size": 16,
        "patch_size": 8,
        "in_chans": 3,
        "num_classes": 4,
        "head_dim": 8,
        "choices": {"embed_dim": [8, 16], "depth": [1, 2], "num_heads": [1, 2], "mlp_ratio": [1.0, 2.0]},
    }
    spec.update(overrides)
    path = tmp_path / "toy-space.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def test_num_archs_matches_brute_force(tmp_path):
    space = get_space(_tiny_yaml(tmp_path))
    c = space.spec.choices
    seen = set()
    for d, depth in itertools.product(c["embed_dim"], c["depth"]):
        for heads in itertools.product(c["num_heads"], repeat=depth):
            for ratios in itertools.product(c["mlp_ratio"], repeat=depth):
                seen.add(space.arch(embed_dim=d, depth=depth, num_heads=heads, mlp_ratio=ratios).digest)
    assert space.num_archs() == len(seen) == 2 * (4 + 16)


def test_arch_round_trip_and_stable_digest(tmp_path):
    space = get_space("autoformer-tiny")
    arch = space.arch(**DEIT_TINY)
    assert Arch.from_dict(arch.to_dict()) == arch
    arch.to_json(tmp_path / "a.json")
    assert Arch.from_json(tmp_path / "a.json") == arch
    assert pickle.loads(pickle.dumps(arch)) == arch
    assert arch.embed_dim == 192 and arch.num_heads == (3,) * 12
    # The digest is a content hash, the same in a fresh process (Python's hash() is salted per process).
    code = f"import hwnas; print(hwnas.get_space('autoformer-tiny').arch(**{DEIT_TINY!r}).digest)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == arch.digest
    # Equal networks, equal encodings: an int MLP ratio is the same choice as the float.
    same = space.arch(**{**DEIT_TINY, "mlp_ratio": [4] * 12})
    assert same == arch and same.digest == arch.digest and hash(same) == hash(arch)
    assert arch.replace(embed_dim=216) != arch


def test_arch_is_frozen():
    arch = get_space("autoformer-digits").smallest()
    with pytest.raises(AttributeError, match="frozen"):
        arch.embed_dim = 96  # type: ignore[misc]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"heads": 3}, r"unknown field 'heads'; this space's fields are embed_dim, depth, num_heads, mlp_ratio"),
        ({"embed_dim": 200}, r"field embed_dim = 200 is not a choice; choose from 192, 216, 240"),
        ({"mlp_ratio": [4.0] * 11 + [5.0]}, r"field mlp_ratio\[11\] = 5.0 is not a choice; choose from 3.5, 4.0"),
        ({"num_heads": [3] * 11}, r"field 'num_heads' has 11 entries but depth is 12; give one per layer"),
        ({"depth": 13}, r"field 'num_heads' has 12 entries but depth is 13"),
        ({"num_heads": 3}, r"field 'num_heads' must be a list of 12 values"),
        ({"embed_dim": True}, r"field embed_dim = True is not a choice"),
        ({"embed_dim": "192"}, r"field embed_dim = '192' is not a choice"),
        ({"space": "autoformer-huge"}, r"unknown search space 'autoformer-huge'; known spaces: autoformer-base"),
    ],
)
def test_arch_validation_errors_name_the_field(change, message):
    data = {"space": "autoformer-tiny", **DEIT_TINY, **change}
    with pytest.raises((ArchError, SpaceError), match=message) as err:
        Arch.from_dict(data)
    assert "\n" not in str(err.value)


def test_missing_fields():
    with pytest.raises(ArchError, match="missing field 'space'"):
        Arch.from_dict(DEIT_TINY)
    data = {"space": "autoformer-tiny", **DEIT_TINY}
    del data["depth"]
    with pytest.raises(ArchError, match="missing field 'depth'; give one of 12, 13, 14"):
        Arch.from_dict(data)
    del data["num_heads"]
    data["depth"] = 12
    with pytest.raises(ArchError, match="missing field 'num_heads'; give a list, one per layer, of 3, 4"):
        Arch.from_dict(data)


def test_arch_file_errors(tmp_path):
    with pytest.raises(ArchError, match="does not exist; write one with `hwnas sample"):
        Arch.from_json(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{'embed_dim': 192")
    with pytest.raises(ArchError, match="is not valid JSON"):
        Arch.from_json(bad)


def test_sampling_is_seeded_valid_and_covers_choices():
    space = get_space("autoformer-tiny")
    assert space.sample(7) == space.sample(7)
    assert space.sample(random.Random(7)) == space.sample(7)
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(300)]
    assert len({a.digest for a in archs}) == 300
    assert {a.depth for a in archs} == {12, 13, 14}
    assert {a.embed_dim for a in archs} == {192, 216, 240}
    assert {h for a in archs for h in a.num_heads} == {3, 4}
    for a in archs:
        assert len(a.num_heads) == len(a.mlp_ratio) == a.depth


def test_extremes():
    space = get_space("autoformer-small")
    small, large = space.smallest(), space.largest()
    assert (small.embed_dim, small.depth, set(small.num_heads), set(small.mlp_ratio)) == (320, 12, {5}, {3.0})
    assert (large.embed_dim, large.depth, set(large.num_heads), set(large.mlp_ratio)) == (448, 14, {7}, {4.0})
    rng = random.Random(1)
    for a in (space.sample(rng) for _ in range(50)):
        assert small.macs() <= a.macs() <= large.macs() and small.params() <= a.params() <= large.params()


def test_block_configs_cover_every_arch():
    space = get_space("autoformer-tiny")
    configs = space.block_configs()
    assert len(configs) == len(set(configs)) == 3 * 2 * 2 + 3 + 3
    rng = random.Random(0)
    used = set()
    for arch in (space.sample(rng) for _ in range(500)):
        blocks = arch.blocks()
        assert [b.kind for b in blocks] == ["patch_embed"] + ["encoder"] * arch.depth + ["head"]
        used.update(blocks)
    assert used == set(configs)  # enumeration is exact: nothing missing, nothing unreachable
    enc = space.encoder_block(216, 3, 3.5)
    assert (enc.tokens, enc.in_dim, enc.qkv_dim, enc.mlp_hidden) == (197, 216, 192, 756)
    assert enc.key == "encoder/tokens=197/in_dim=216/out_dim=216/num_heads=3/qkv_dim=192/mlp_hidden=756"


def test_space_overrides():
    space = get_space("autoformer-tiny", img_size=384, num_classes=100)
    assert space.num_tokens == (384 // 16) ** 2 + 1 and space.key == "autoformer-tiny[img_size=384,num_classes=100]"
    arch = space.smallest()
    data = arch.to_dict()
    assert data["space_options"] == {"img_size": 384, "num_classes": 100}
    assert Arch.from_dict(data) == arch and arch != get_space("autoformer-tiny").smallest()
    with pytest.raises(SpaceError, match="space option 'depth' is not known"):
        get_space("autoformer-tiny", depth=3)
    with pytest.raises(SpaceError, match="img_size 100 is not a multiple of patch_size 16"):
        get_space("autoformer-tiny", img_size=100)


def test_user_space_file_errors(tmp_path):
    with pytest.raises(SpaceError, match="family 'mobilenet' is not one of autoformer"):
        get_space(_tiny_yaml(tmp_path, family="mobilenet"))
    with pytest.raises(SpaceError, match=r"needs 'mlp_ratio' \(a choice or option\)"):
        get_space(_tiny_yaml(tmp_path, choices={"embed_dim": [8], "depth": [1], "num_heads": [1]}))
    with pytest.raises(SpaceError, match="space file .* does not exist"):
        get_space(tmp_path / "missing.yaml")
    shadow = tmp_path / "autoformer-tiny.yaml"
    shadow.write_text(_tiny_yaml(tmp_path).read_text())
    with pytest.raises(SpaceError, match="has the name of a shipped space; rename the file"):
        get_space(shadow)


def test_arch_of_a_user_space_loads_with_its_space(tmp_path):
    toy = get_space(_tiny_yaml(tmp_path))
    data = toy.largest().to_dict()
    assert Arch.from_dict(data, space=toy) == toy.largest()
    with pytest.raises(ArchError, match="is from space 'toy-space', not 'autoformer-digits'; give that space"):
        Arch.from_dict(data, space=get_space("autoformer-digits"))


def _vitas_yaml(tmp_path: Path) -> Path:
    spec = {
        "family": "vitas",
        "img_size": 16,
        "patch_size": 8,
        "in_chans": 3,
        "num_classes": 4,
        "head_dim": 8,
        "layers": 3,
        "min_layers": 1,
        "choices": {"embed_dim": [8, 16], "num_heads": [1, 2], "mlp_ratio": [1.0]},
    }
    path = tmp_path / "vitas-toy.yaml"
    path.write_text(json.dumps(spec))
    return path


def test_identity_shifting_gives_one_encoding_per_function(tmp_path):
    space = get_space("vitas-digits")
    a = space.arch(embed_dim=80, num_heads=[2, 0, 3, 0, 2, 2], mlp_ratio=[2.0, 3.0, 3.0, 2.0, 2.0, 3.0])
    b = space.arch(embed_dim=80, num_heads=[2, 3, 0, 2, 2, 0], mlp_ratio=[2.0, 3.0, 2.0, 2.0, 3.0, 3.0])
    assert a == b and a.digest == b.digest and a.num_heads == (2, 3, 2, 2, 0, 0)
    assert [blk.num_heads for blk in a.blocks()[1:-1]] == [2, 3, 2, 2]  # identities are not blocks
    with pytest.raises(ArchError, match="has 2 non-identity layers; it needs at least 3"):
        space.arch(embed_dim=80, num_heads=[2, 0, 0, 0, 0, 3], mlp_ratio=[2.0] * 6)
    # brute force: distinct canonical archs over every encoding == num_archs
    toy = get_space(_vitas_yaml(tmp_path))
    distinct = set()
    for e in (8, 16):
        for heads in itertools.product((0, 1, 2), repeat=3):
            if any(heads):
                distinct.add(toy.arch(embed_dim=e, num_heads=list(heads), mlp_ratio=[1.0] * 3).digest)
    assert len(distinct) == toy.num_archs() == 2 * (2 + 4 + 8)


def test_vitas_sampling_is_uniform_over_distinct_archs():
    space = get_space("vitas-digits")  # 3..6 active layers hold 64/256/1,024/4,096 archs per width
    counts = collections.Counter(len(space.layers(space.sample_distinct(i))) for i in range(4000))
    assert counts[6] / 4000 == pytest.approx(4096 / 5440, abs=0.03)
    assert counts[3] / 4000 == pytest.approx(64 / 5440, abs=0.01)
    assert all(len(space.layers(space.sample(i))) >= 3 for i in range(200))
    assert len(space.layers(space.smallest())) == 3 and len(space.layers(space.largest())) == 6


def test_spaces_are_their_content_not_their_file_name(tmp_path):
    """Two user files that share a name are two spaces; an arch file knows which one it was written for."""
    for folder in "abc":
        (tmp_path / folder).mkdir()
    first = get_space(toy_space_yaml(tmp_path / "a", "toy"))
    second = get_space(toy_space_yaml(tmp_path / "b", "toy", embed_dim=[32, 64]))
    assert first.name == second.name and first != second and first.digest != second.digest
    genes = dict(embed_dim=32, depth=1, num_heads=[1], mlp_ratio=[2.0])
    a, b = first.arch(**genes), second.arch(**genes)
    assert a != b and a.digest != b.digest
    a.to_json(tmp_path / "a.json")
    assert Arch.from_json(tmp_path / "a.json") == a  # the declaration it carries, not the 'toy' loaded last
    with pytest.raises(ArchError, match=r"another space named 'toy' \(choices.embed_dim: \[32, 48\] vs \[32, 64\]"):
        Arch.from_json(tmp_path / "a.json", second)
    renamed = get_space(toy_space_yaml(tmp_path / "c", "renamed"))  # the same content under another name
    assert renamed == first and Arch.from_dict(a.to_dict(), renamed) == a
    assert get_space("autoformer-digits").largest().to_json().count("space_spec") == 0  # shipped: found by name
