"""`Arch`: one subnet of a search space, frozen, validated and JSON-serialisable."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwnas.errors import ArchError
from hwnas.spaces.blocks import BlockConfig
from hwnas.spaces.space import GeneValue, SearchSpace, spec_difference

SPACE_KEY = "space"
SPACE_OPTIONS_KEY = "space_options"  # shape overrides of the space instance, when there are any
SPACE_DIGEST_KEY = "space_digest"  # the space's content digest: which space the name meant
SPACE_SPEC_KEY = "space_spec"  # arch files of a user's space carry its whole declaration
META_KEYS = (SPACE_KEY, SPACE_OPTIONS_KEY, SPACE_DIGEST_KEY, SPACE_SPEC_KEY)


class Arch:
    """An architecture: its space plus one value per gene (per-layer genes as tuples).

    Genes read as attributes (`arch.embed_dim`, `arch.num_heads[3]`). Construction validates and
    canonicalises, so two archs that build the same network compare and hash equal.
    """

    __slots__ = ("space", "_genes", "_hash")

    def __init__(self, space: SearchSpace, genes: Mapping[str, Any]):
        object.__setattr__(self, "space", space)
        object.__setattr__(self, "_genes", space.validate(genes))
        object.__setattr__(self, "_hash", None)

    # ---- access ------------------------------------------------------------------------------
    @property
    def genes(self) -> dict[str, GeneValue]:
        return dict(self._genes)

    def __getattr__(self, name: str) -> GeneValue:
        genes = object.__getattribute__(self, "_genes")
        if name in genes:
            return genes[name]
        raise AttributeError(f"{type(self).__name__} of {self.space.key} has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Arch is frozen; use arch.replace(...) for a changed copy")

    def __reduce__(self) -> tuple[Any, ...]:
        # Frozen slots cannot be set by the default unpickler; rebuild through validation instead,
        # from the space's declaration (a user's space cannot be found by name in another process).
        return (Arch.from_dict, ({**self.to_dict(), SPACE_SPEC_KEY: self.space.spec.to_dict()},))

    def replace(self, **changes: Any) -> Arch:
        """A validated copy with some genes changed."""
        return Arch(self.space, {**self._genes, **changes})

    # ---- identity ------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Arch) and self.space == other.space and self._genes == other._genes

    def __hash__(self) -> int:
        return hash(self.digest)

    @property
    def digest(self) -> str:
        """A stable hash (16 hex digits) of the space's content digest and the genes: equal across
        processes and runs, and different for archs of two spaces that merely share a name."""
        if self._hash is None:
            data = {k: v for k, v in self.to_dict().items() if k not in (SPACE_KEY, SPACE_OPTIONS_KEY)}
            text = json.dumps(data, sort_keys=True, separators=(",", ":"))
            object.__setattr__(self, "_hash", hashlib.sha256(text.encode()).hexdigest()[:16])
        return self._hash

    def __repr__(self) -> str:
        genes = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in self._genes.items())
        return f"Arch({self.space.key}: {genes})"

    # ---- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {SPACE_KEY: self.space.name}
        if self.space.spec.overrides:
            data[SPACE_OPTIONS_KEY] = dict(self.space.spec.overrides)
        data[SPACE_DIGEST_KEY] = self.space.digest
        data.update({k: list(v) if isinstance(v, tuple) else v for k, v in self._genes.items()})
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], space: SearchSpace | None = None) -> Arch:
        """Rebuild (and validate) an arch from `to_dict()` or `to_json()` output. Its space is the
        one given, else the declaration the data carries, else the shipped space of that name; a
        recorded content digest must match it (a same-named space with other choices is refused)."""
        from hwnas.spaces.registry import get_space, space_from_dict

        if not isinstance(data, Mapping):
            raise ArchError(f"arch: expected a JSON object, got {type(data).__name__}")
        if SPACE_KEY not in data:
            raise ArchError(f"arch: missing field {SPACE_KEY!r} naming the search space (see `hwnas spaces`)")
        options = data.get(SPACE_OPTIONS_KEY) or {}
        if not isinstance(options, Mapping):
            raise ArchError(f"arch: field {SPACE_OPTIONS_KEY!r} must be an object, got {options!r}")
        carried = data.get(SPACE_SPEC_KEY)
        if space is None:
            space = space_from_dict(carried) if isinstance(carried, Mapping) else get_space(data[SPACE_KEY], **options)
        recorded = data.get(SPACE_DIGEST_KEY)
        if (
            recorded != space.digest and data[SPACE_KEY] != space.name
        ):  # (the same content under two names is one space)
            raise ArchError(f"arch is from space {data[SPACE_KEY]!r}, not {space.name!r}; give that space")
        if recorded is not None and recorded != space.digest:
            differs = spec_difference(carried, space.spec.to_dict()) if isinstance(carried, Mapping) else None
            what = (
                f"{differs}, arch's vs this one's"
                if differs
                else f"content digest {recorded}, this one's {space.digest}: its YAML changed since"
            )
            raise ArchError(
                f"arch is from another space named {data[SPACE_KEY]!r} ({what}); give the space it was written for"
            )
        genes = {k: v for k, v in data.items() if k not in META_KEYS}
        return cls(space, genes)

    def to_json(self, path: str | Path | None = None) -> str:
        """The arch as a JSON file; an arch of a user's space also carries the space's declaration,
        so the file loads in any folder, after its YAML is moved or edited."""
        from hwnas.spaces.registry import is_shipped

        data = self.to_dict()
        if not is_shipped(self.space):
            data[SPACE_SPEC_KEY] = self.space.spec.to_dict()
        text = json.dumps(data, indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, path: str | Path, space: SearchSpace | None = None) -> Arch:
        """Load an arch JSON file, or a search's best.json (its `arch` field); a missing or
        malformed file is a one-line ArchError."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ArchError(
                f"arch file {path} does not exist; write one with `hwnas sample --space NAME --out {path}`"
            ) from None
        except json.JSONDecodeError as exc:
            raise ArchError(
                f"arch file {path} is not valid JSON ({exc.msg} at line {exc.lineno}); fix the file"
            ) from None
        if isinstance(data, Mapping) and isinstance(data.get("arch"), Mapping):
            data = data["arch"]
        return cls.from_dict(data, space)

    # ---- what it costs ---------------------------------------------------------------------------
    def blocks(self) -> list[BlockConfig]:
        """The blocks this arch runs, in order (what latency tables are summed over)."""
        return self.space.arch_blocks(self)

    def params(self) -> int:
        """Analytic parameter count (equals the extracted model's)."""
        return sum(b.params() for b in self.blocks())

    def macs(self) -> int:
        """Analytic multiply-accumulates per image, attention products included."""
        return sum(b.macs() for b in self.blocks())
