"""`Arch`: one subnet of a search space, frozen, validated and JSON-serialisable."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwnas.errors import ArchError
from hwnas.spaces.blocks import BlockConfig
from hwnas.spaces.space import GeneValue, SearchSpace

SPACE_KEY = "space"
SPACE_OPTIONS_KEY = "space_options"  # shape overrides of the space instance, when there are any


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
        # Frozen slots cannot be set by the default unpickler; rebuild through validation instead.
        return (Arch.from_dict, (self.to_dict(),))

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
        """A stable hash (16 hex digits) of the canonical JSON: equal across processes and runs."""
        if self._hash is None:
            text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
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
        data.update({k: list(v) if isinstance(v, tuple) else v for k, v in self._genes.items()})
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], space: SearchSpace | None = None) -> Arch:
        """Rebuild (and validate) an arch from `to_dict()` output. Its space is looked up by name,
        unless given (a user's YAML space, which a name alone cannot find in another process)."""
        from hwnas.spaces.registry import get_space

        if not isinstance(data, Mapping):
            raise ArchError(f"arch: expected a JSON object, got {type(data).__name__}")
        if SPACE_KEY not in data:
            raise ArchError(f"arch: missing field {SPACE_KEY!r} naming the search space (see `hwnas spaces`)")
        options = data.get(SPACE_OPTIONS_KEY) or {}
        if not isinstance(options, Mapping):
            raise ArchError(f"arch: field {SPACE_OPTIONS_KEY!r} must be an object, got {options!r}")
        if space is None:
            space = get_space(data[SPACE_KEY], **options)
        elif data[SPACE_KEY] != space.name:
            raise ArchError(f"arch is from space {data[SPACE_KEY]!r}, not {space.name!r}; give that space")
        genes = {k: v for k, v in data.items() if k not in (SPACE_KEY, SPACE_OPTIONS_KEY)}
        return cls(space, genes)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
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
            raise ArchError(f"arch file {path} does not exist; write one with `hwnas sample --space NAME --out {path}`") from None
        except json.JSONDecodeError as exc:
            raise ArchError(f"arch file {path} is not valid JSON ({exc.msg} at line {exc.lineno}); fix the file") from None
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
