"""Find spaces by name (YAML shipped in the package) or by path (a user's own YAML file)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hwnas.errors import SpaceError
from hwnas.spaces.autoformer import AutoFormerSpace
from hwnas.spaces.space import SHAPE_FIELDS, SearchSpace, SpaceSpec
from hwnas.spaces.vitas import ViTASSpace

FAMILIES: dict[str, type[SearchSpace]] = {cls.family: cls for cls in (AutoFormerSpace, ViTASSpace)}

# Spaces loaded from a user's YAML path, by name, so `Arch.from_dict` finds them again in-process.
_USER_SPEC_FILES: dict[str, Path] = {}


@lru_cache(maxsize=1)
def _builtin_files() -> dict[str, Path]:
    """The shipped YAML files by name (fixed for the life of the process, so listed once)."""
    folder = resources.files("hwnas.spaces") / "configs"
    return {Path(str(f)).stem: Path(str(f)) for f in folder.iterdir() if str(f).endswith(".yaml")}


def list_spaces() -> list[str]:
    """Names of the spaces shipped with hwnas."""
    return sorted(_builtin_files())


def get_space(name: str | Path, **overrides: int) -> SearchSpace:
    """A search space by shipped name (`"autoformer-tiny"`) or YAML path, with optional shape overrides
    (`img_size`, `patch_size`, `in_chans`, `num_classes`)."""
    bad = sorted(set(overrides) - set(SHAPE_FIELDS))
    if bad:
        raise SpaceError(f"space option {bad[0]!r} is not known; options are {', '.join(SHAPE_FIELDS)}")
    for key, value in overrides.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SpaceError(f"space option {key}={value!r} must be a positive integer")
    path = _resolve(name)
    return _load(str(path), tuple(sorted(overrides.items())))


def _resolve(name: str | Path) -> Path:
    text = str(name)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise SpaceError(f"space file {path} does not exist; give a shipped name ({', '.join(list_spaces())}) or a YAML path")
        if path.stem in _builtin_files():
            raise SpaceError(f"space file {path} has the name of a shipped space; rename the file")
        _USER_SPEC_FILES[path.stem] = path.resolve()
        return path.resolve()
    files = {**_builtin_files(), **_USER_SPEC_FILES}
    if text not in files:
        raise SpaceError(f"unknown search space {text!r}; known spaces: {', '.join(list_spaces())} (see `hwnas spaces`)")
    return files[text]


@lru_cache(maxsize=None)
def _load(path: str, overrides: tuple[tuple[str, int], ...]) -> SearchSpace:
    spec = load_spec(Path(path), dict(overrides))
    return FAMILIES[spec.family](spec)


def load_spec(path: Path, overrides: dict[str, int] | None = None) -> SpaceSpec:
    """Parse and check one space YAML file."""
    try:
        raw: dict[str, Any] = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpaceError(f"space file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise SpaceError(f"space file {path} must hold a mapping")
    family = raw.get("family")
    if family not in FAMILIES:
        raise SpaceError(f"space file {path}: family {family!r} is not one of {', '.join(FAMILIES)}")
    missing = [k for k in ("choices", *SHAPE_FIELDS) if k not in raw]
    if missing:
        raise SpaceError(f"space file {path}: missing key {missing[0]!r}")
    choices = raw["choices"]
    if not isinstance(choices, dict) or not all(isinstance(v, list) and v for v in choices.values()):
        raise SpaceError(f"space file {path}: 'choices' must map each gene to a non-empty list")
    known = {"family", "description", "choices", *SHAPE_FIELDS}
    overrides = overrides or {}
    spec = SpaceSpec(
        name=path.stem,
        family=family,
        description=str(raw.get("description", "")),
        **{k: int(overrides.get(k, raw[k])) for k in SHAPE_FIELDS},
        choices={k: tuple(sorted(v)) for k, v in choices.items()},
        options={k: v for k, v in raw.items() if k not in known},
        overrides={k: v for k, v in overrides.items() if v != raw[k]},
    )
    if spec.img_size % spec.patch_size:
        raise SpaceError(f"space {spec.name}: img_size {spec.img_size} is not a multiple of patch_size {spec.patch_size}")
    try:
        genes = FAMILIES[family].declare_genes(spec)
    except KeyError as exc:
        raise SpaceError(f"space file {path}: family {family} needs {exc.args[0]!r} (a choice or option)") from None
    extra = sorted(set(choices) - {g.name for g in genes})
    if extra:
        raise SpaceError(f"space file {path}: {extra[0]!r} is not a gene of family {family}")
    return spec


def spec_dict(space: SearchSpace) -> dict[str, Any]:
    """A space's full declaration as plain data (exported models carry it to load without the YAML)."""
    s = space.spec
    return {"name": s.name, "family": s.family, "description": s.description,
            **{k: getattr(s, k) for k in SHAPE_FIELDS}, "choices": {k: list(v) for k, v in s.choices.items()},
            "options": dict(s.options), "overrides": dict(s.overrides)}


def space_from_dict(data: Mapping[str, Any]) -> SearchSpace:
    """The space `spec_dict` describes: the shipped one when its name and choices match, else built from the data."""
    if data["name"] in _builtin_files():
        shipped = get_space(data["name"], **data.get("overrides", {}))
        if spec_dict(shipped) == dict(data):
            return shipped
    if data["family"] not in FAMILIES:
        raise SpaceError(f"space {data['name']!r} is of family {data['family']!r}, which this hwnas does not know")
    spec = SpaceSpec(name=data["name"], family=data["family"], description=data.get("description", ""),
                     **{k: int(data[k]) for k in SHAPE_FIELDS},
                     choices={k: tuple(sorted(v)) for k, v in data["choices"].items()},
                     options=dict(data.get("options", {})), overrides=dict(data.get("overrides", {})))
    return FAMILIES[spec.family](spec)
