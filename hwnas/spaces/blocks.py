"""Block configurations and block kinds: the unit latency tables are keyed by and costs are summed over.

A network is a sequence of blocks. Two blocks with equal `BlockConfig` run the same kernels on a
device, whichever space or architecture they come from, so tables for several spaces share rows.
A `BlockConfig` is a kind plus integer fields; its key (`encoder/tokens=197/in_dim=192/...`) names
it in a table and lists only the non-zero fields, so a field a table's rows lack reads as 0 and a
new field or kind never changes an existing key.

A *block kind* says, in one place, what its fields mean: its key fields, parameter and MAC counts,
its input shape and the standalone module a table row is measured on. Families register their
kinds (`register_kind`); nothing else interprets a block's fields.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwnas.errors import HwnasError

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True, order=True)
class BlockConfig:
    """A block kind and its non-zero fields, in the kind's declared order. Fields read as
    attributes (`cfg.tokens`); a field the block does not set reads as 0."""

    kind: str
    values: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, kind: str, **fields: int) -> BlockConfig:
        """A block of a registered kind; every field must be one the kind declares."""
        order = get_kind(kind).fields
        unknown = sorted(set(fields) - set(order))
        if unknown:
            raise ValueError(f"block kind {kind!r} has no field {unknown[0]!r}; its fields are {', '.join(order)}")
        return cls(kind, tuple((name, int(fields[name])) for name in order if fields.get(name)))

    def __getattr__(self, name: str) -> int:
        if name.startswith("__"):
            raise AttributeError(name)
        return dict(object.__getattribute__(self, "values")).get(name, 0)

    @property
    def key(self) -> str:
        """A stable, readable identifier: `encoder/tokens=197/in_dim=192/out_dim=192/...`."""
        return "/".join([self.kind, *(f"{name}={value}" for name, value in self.values)])

    @classmethod
    def from_key(cls, key: str) -> BlockConfig:
        """The block a table key names (no kind registry needed: the key carries its fields)."""
        kind, *parts = key.split("/")
        try:
            values = tuple((name, int(value)) for name, value in (p.split("=", 1) for p in parts))
        except ValueError:
            raise ValueError(f"{key!r} is not a block key (kind/field=value/...)") from None
        return cls(kind, values)

    def to_dict(self) -> dict[str, int | str]:
        return {"kind": self.kind, **dict(self.values)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BlockConfig:
        fields = {k: v for k, v in data.items() if k != "kind"}
        return cls.of(str(data["kind"]), **fields)

    @property
    def definition(self) -> BlockKind:
        return get_kind(self.kind)

    def params(self) -> int:
        """Trainable parameters of this block (biases and norms included)."""
        return self.definition.params(self)

    def macs(self) -> int:
        """Multiply-accumulates of one forward pass on one image (see `BlockKind.macs`)."""
        return self.definition.macs(self)

    def mac_parts(self) -> dict[str, int]:
        """The MACs of `macs` that run at another cost per MAC than dense products (see `BlockKind.mac_parts`)."""
        return self.definition.mac_parts(self)


MAC_PARTS = ("attention", "depthwise")  # what `BlockKind.mac_parts` may name


class BlockKind(ABC):
    """What one kind of block is. Subclasses set `name` and `fields` and implement the counts,
    the input shape and the module; `module` may import torch (the counts must not)."""

    name: str = ""
    fields: tuple[str, ...] = ()

    @abstractmethod
    def params(self, cfg: BlockConfig) -> int:
        """Trainable parameters."""

    @abstractmethod
    def macs(self, cfg: BlockConfig) -> int:
        """Multiply-accumulates per image in the ViT literature's convention (DeiT-Tiny = 1.25 G):
        attention's two matrix products counted; norms, activations and additions not."""

    def mac_parts(self, cfg: BlockConfig) -> dict[str, int]:
        """The MACs among `macs` that a runtime computes at another cost per MAC than dense matrix
        products with weights, by part (`MAC_PARTS`): `attention`, the two products of activations
        with activations, and `depthwise`, convolutions a channel at a time (on the shipped table's CPU,
        about 15x a dense MAC). A latency fit weighs each part on its own (`hwnas.latency.rowfit`); the rest is dense.
        A kind with neither returns nothing."""
        return {}

    @abstractmethod
    def input_shape(self, cfg: BlockConfig, batch_size: int) -> tuple[int, ...]:
        """The shape of the one input the standalone module takes."""

    @abstractmethod
    def module(self, cfg: BlockConfig) -> nn.Module:
        """A freshly initialised module computing this block alone, built as the family's static
        model builds it (so a table row times the kernels the exported network runs)."""


_KINDS: dict[str, BlockKind] = {}


def register_kind(kind: BlockKind) -> BlockKind:
    """Make a kind known by its name; registering the same class again is a no-op."""
    known = _KINDS.get(kind.name)
    if known is not None and type(known) is not type(kind):
        raise HwnasError(f"block kind {kind.name!r} is already registered by {type(known).__qualname__}")
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> BlockKind:
    """The registered kind `name` (the built-in families register theirs on first use)."""
    if name not in _KINDS:
        from hwnas.families.registry import load_families

        load_families()
    if name not in _KINDS:
        raise HwnasError(
            f"block kind {name!r} is not known to this hwnas (known: {', '.join(sorted(_KINDS))}); "
            f"install the package of the family that defines it"
        )
    return _KINDS[name]
