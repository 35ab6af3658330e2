"""Find spaces by name (the YAML files families ship) or by path (a user's own YAML file), and
rebuild a space from its declaration (what runs, exports and measuring jobs store).

A space is its content (`SearchSpace.digest`), not its file: a file is parsed once per content,
so an edited YAML is a new space, and a run keeps the declaration it was trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from hwnas.errors import SpaceError
from hwnas.families.registry import families, get_family
from hwnas.spaces.space import SHAPE_FIELDS, SearchSpace, SpaceSpec


def _shipped_files() -> dict[str, Path]:
    """The YAML files every registered family ships, by name."""
    files: dict[str, Path] = {}
    for family in families().values():
        files.update(family.shipped_spaces())
    return files


def list_spaces() -> list[str]:
    """Names of the spaces shipped with hwnas (and with the families of installed plug-ins)."""
    return sorted(_shipped_files())


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
    return _load(path.stem, str(path), path.read_text(), tuple(sorted(overrides.items())))


def _resolve(name: str | Path) -> Path:
    text = str(name)
    shipped = _shipped_files()
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise SpaceError(
                f"space file {path} does not exist; give a shipped name ({', '.join(sorted(shipped))}) or a YAML path"
            )
        if path.stem in shipped and path.resolve() != shipped[path.stem].resolve():
            raise SpaceError(f"space file {path} has the name of a shipped space; rename the file")
        return path.resolve()
    if text not in shipped:
        raise SpaceError(
            f"unknown search space {text!r}; known spaces: {', '.join(sorted(shipped))} (see `hwnas spaces`), "
            f"or give a YAML path"
        )
    return shipped[text]


@cache
def _load(name: str, where: str, text: str, overrides: tuple[tuple[str, int], ...]) -> SearchSpace:
    """Keyed by the file's content: editing a YAML in a long process gives the new space."""
    spec = parse_spec(name, where, text, dict(overrides))
    return get_family(spec.family).space(spec)


def parse_spec(name: str, where: str, text: str, overrides: dict[str, int] | None = None) -> SpaceSpec:
    """Parse and check one space YAML document (`where` names it in errors)."""
    try:
        raw: dict[str, Any] = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpaceError(f"space file {where} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise SpaceError(f"space file {where} must hold a mapping")
    known_families = families()
    family = raw.get("family")
    if family not in known_families:
        raise SpaceError(f"space file {where}: family {family!r} is not one of {', '.join(sorted(known_families))}")
    missing = [k for k in ("choices", *SHAPE_FIELDS) if k not in raw]
    if missing:
        raise SpaceError(f"space file {where}: missing key {missing[0]!r}")
    choices = raw["choices"]
    if not isinstance(choices, dict) or not all(isinstance(v, list) and v for v in choices.values()):
        raise SpaceError(f"space file {where}: 'choices' must map each gene to a non-empty list")
    known = {"family", "description", "choices", *SHAPE_FIELDS}
    overrides = overrides or {}
    spec = SpaceSpec(
        name=name,
        family=family,
        description=str(raw.get("description", "")),
        **{k: int(overrides.get(k, raw[k])) for k in SHAPE_FIELDS},
        choices={k: tuple(sorted(v)) for k, v in choices.items()},
        options={k: v for k, v in raw.items() if k not in known},
        overrides={k: v for k, v in overrides.items() if v != raw[k]},
    )
    check_spec(spec, f"space file {where}")
    return spec


def check_spec(spec: SpaceSpec, where: str) -> None:
    """Refuse a declaration its family cannot build, in one line."""
    if spec.img_size % spec.patch_size:
        raise SpaceError(
            f"space {spec.name}: img_size {spec.img_size} is not a multiple of patch_size {spec.patch_size}; "
            f"use an --img-size that is (e.g. {spec.img_size // spec.patch_size * spec.patch_size or spec.patch_size})"
        )
    space_class = get_family(spec.family).space
    try:
        genes = space_class.declare_genes(spec)
    except KeyError as exc:
        raise SpaceError(f"{where}: family {spec.family} needs {exc.args[0]!r} (a choice or option)") from None
    extra = sorted(set(spec.choices) - {g.name for g in genes})
    if extra:
        raise SpaceError(f"{where}: {extra[0]!r} is not a gene of family {spec.family}")


def spec_dict(space: SearchSpace) -> dict[str, Any]:
    """A space's full declaration as plain data (what `space_from_dict` rebuilds it from)."""
    return space.spec.to_dict()


def is_shipped(space: SearchSpace) -> bool:
    """Whether `space` is a shipped one (its name finds it, with this very content)."""
    if space.name not in _shipped_files():
        return False
    return get_space(space.name, **space.spec.overrides).digest == space.digest


def space_from_dict(data: Mapping[str, Any]) -> SearchSpace:
    """The space `spec_dict` describes: the shipped instance when the content matches one, else
    built from the data alone (its YAML may be gone or edited since)."""
    try:
        family = get_family(str(data["family"]))
        spec = SpaceSpec(
            name=str(data["name"]),
            family=str(data["family"]),
            description=str(data.get("description", "")),
            **{k: int(data[k]) for k in SHAPE_FIELDS},
            choices={k: tuple(sorted(v)) for k, v in data["choices"].items()},
            options=dict(data.get("options", {})),
            overrides=dict(data.get("overrides", {})),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SpaceError(
            f"space declaration {str(dict(data))[:80]}... is malformed ({exc!r}); it was not written by hwnas"
        ) from None
    check_spec(spec, f"space {spec.name}")
    space = family.space(spec)
    if spec.name in _shipped_files():
        shipped = get_space(spec.name, **spec.overrides)
        if shipped.digest == space.digest:
            return shipped
    return space
