"""Families: the one record that says what a family of architectures is made of.

A family (AutoFormer, ViTAS, ...) is one folder under `hwnas/families/` (or a package of its own)
whose `__init__` registers a `Family`: its search-space class, its supernet class, its static
model builder (`build_model(arch)`, after OFA's `build_from_config`), optionally the
`timm.create_model` arguments of its plain ViT/DeiT archs, and the folder of its shipped space
YAML files. It registers its block kinds beside it (`hwnas.spaces.blocks.register_kind`).
Nothing outside a family's folder branches on its name: every stage asks this registry.

A family whose paper released checkpoints under other parameter names may give `foreign_weights`:
`hwnas.load_model` hands it every state dict it is given, and loads what it returns.

The supernet, builder, timm mapping and foreign-weights hook may be given as "module:attribute"
strings, imported on first use, so that listing spaces does not import torch. Every family,
built-in or of another package, is declared under the `hwnas.families` entry-point group (each
entry point names the module that registers it; the built-in ones in hwnas's own pyproject.toml),
so this registry imports no family by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.errors import HwnasError

if TYPE_CHECKING:
    from torch import Tensor, nn

    from hwnas.spaces.arch import Arch
    from hwnas.spaces.space import SearchSpace
    from hwnas.supernet.base import Supernet

ENTRY_POINT_GROUP = "hwnas.families"
Lazy = Any  # an object, or "module:attribute" naming it


def _resolve(target: Lazy) -> Any:
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    return getattr(import_module(module), attribute)


@dataclass(frozen=True)
class TrainingBudget:
    """A training recipe's defaults (`hwnas train` fills from it what the command leaves unset)."""

    epochs: int
    batch_size: int  # per process
    lr: float
    warmup_epochs: int
    drop_path: float


# Up to `hwnas.training.config.SMALL_DATA` train images: a few CPU minutes (the embedded digits).
SMALL_DATA = TrainingBudget(epochs=40, batch_size=32, lr=1e-3, warmup_epochs=3, drop_path=0.0)
# Above it: AutoFormer's ImageNet recipe (per-GPU batch 128 on 8 GPUs).
LARGE_DATA = TrainingBudget(epochs=500, batch_size=128, lr=1e-3, warmup_epochs=20, drop_path=0.1)

INITIAL_SAMPLINGS = ("uniform", "pruned")


@dataclass(frozen=True)
class SearchPreset:
    """A search's settings as one release runs them (`hwnas search --preset NAME`); options given
    to the search override single fields. Counts left None follow the population as the default
    search does, so the `default` preset (every field at its default) is the search hwnas always ran:
    AutoFormer's numbers without its parameter window."""

    strategy: str = "evolution"
    population: int = 50  # archs per generation after the first
    generations: int = 20  # including the first
    initial: int | None = None  # archs of generation 0 (None: the population)
    parents: int | None = None  # the top archs bred from (None: a fifth of the population, at least 2)
    mutations: int | None = None  # children by mutation per generation (None: half); the rest by crossover
    mutation_prob: float = 0.2  # each per-layer value redrawn
    resample_prob: float = 0.4  # each single value (depth, a width) redrawn
    # Prefixes of gene names whose values a mutation flips to another choice instead of redrawing
    # (ViT-ResNAS toggles its skip flags; a redraw of a 0/1 flag changes it only half the time).
    toggled: tuple[str, ...] = ()
    # uniform: every gene drawn uniformly. pruned: single values and toggled flags drawn, per-layer
    # values at their largest choice, then one random per-layer value at a time stepped down to
    # the next smaller choice until within the budget (ViT-ResNAS's initial population).
    initial_sampling: str = "uniform"
    min_fraction: float | None = None  # every evaluated arch within min_fraction..1 x the budget
    retries: int = 10  # draws per child before the last one is repaired into the budget (window)

    def __post_init__(self) -> None:
        if self.initial_sampling not in INITIAL_SAMPLINGS:
            raise HwnasError(f"initial_sampling {self.initial_sampling!r} is not one of {', '.join(INITIAL_SAMPLINGS)}")
        if self.min_fraction is not None and not 0 < self.min_fraction <= 1:
            raise HwnasError(f"min_fraction must be in (0, 1], got {self.min_fraction}")


DEFAULT_PRESET = "default"
DEFAULT_SEARCH = SearchPreset()
# AutoFormer's released evolution (microsoft/Cream `AutoFormer/evolution.py`, `EvolutionSearcher` and
# its argument defaults): 50 archs x 20 generations, the top 10 of all evaluated as parents, 25
# mutations + 25 crossovers, mutation probabilities 0.2 (per layer) and 0.4 (depth, embedding width),
# and only archs within a parameter window evaluated (`is_legal`: 18 to 23 M by default, 0.78 of the
# upper bound).
AUTOFORMER_SEARCH = SearchPreset(parents=10, mutations=25, min_fraction=18 / 23)


@dataclass(frozen=True)
class Family:
    """Everything hwnas needs to know about one family, in one record."""

    name: str
    space: type[SearchSpace]
    supernet: Lazy  # a `Supernet` subclass taking (space, **train options)
    model: Lazy  # build_model(arch) -> nn.Module: the static network, freshly initialised
    timm: Lazy | None = None  # timm_kwargs(arch) -> dict | None: `timm.create_model` arguments of plain archs
    configs: Path | None = None  # the folder of the family's shipped space YAML files
    small_data: TrainingBudget = SMALL_DATA  # the training defaults on small data
    large_data: TrainingBudget = LARGE_DATA  # and on ImageNet-scale data
    # A shipped space whose release trains it otherwise on ImageNet (space name -> its budget).
    large_data_by_space: Mapping[str, TrainingBudget] = field(default_factory=dict)
    # The default share of training draws whose per-block high-level genes are alike in every block
    # (`SearchSpace.sample_alike`), for families where uniform draws leave such chains untrained.
    alike_share: float = 0.0
    # foreign_weights(state_dict, model) -> dict | None: a state dict in another codebase's names (the
    # paper's release) renamed to those of `model` (the static model of its arch), after checking it
    # fits; None where the state dict is not in a layout the family knows.
    foreign_weights: Lazy | None = None
    # Search presets beside `default` (name -> settings), e.g. `paper`: the search as the release runs it.
    search_presets: Mapping[str, SearchPreset] = field(default_factory=dict)

    def search_preset(self, name: str) -> SearchPreset:
        """The preset `name`: `default` is the same for every family, the others are the family's."""
        if name == DEFAULT_PRESET:
            return DEFAULT_SEARCH
        if name not in self.search_presets:
            known = ", ".join([DEFAULT_PRESET, *self.search_presets])
            raise HwnasError(f"family {self.name!r} has no search preset {name!r}; use {known}")
        return self.search_presets[name]

    def training_budget(self, space: SearchSpace, small: bool) -> TrainingBudget:
        """The training defaults for `space` on small or ImageNet-scale data."""
        return self.small_data if small else self.large_data_by_space.get(space.name, self.large_data)

    def supernet_class(self) -> type[Supernet]:
        return _resolve(self.supernet)

    def build_model(self, arch: Arch) -> nn.Module:
        return _resolve(self.model)(arch)

    def timm_kwargs(self, arch: Arch) -> dict[str, Any] | None:
        return None if self.timm is None else _resolve(self.timm)(arch)

    def native_weights(self, state_dict: Mapping[str, Tensor], model: nn.Module) -> Mapping[str, Tensor]:
        """`state_dict` in the names of `model`: converted where it is in a foreign layout the family
        knows, else as given."""
        if self.foreign_weights is None:
            return state_dict
        converted = _resolve(self.foreign_weights)(state_dict, model)
        return state_dict if converted is None else converted

    def shipped_spaces(self) -> dict[str, Path]:
        if self.configs is None or not self.configs.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.configs.glob("*.yaml"))}


_FAMILIES: dict[str, Family] = {}
_LOADED = False


def register_family(family: Family) -> Family:
    """Make `family` known by its name (and its space class by its `family` attribute)."""
    if family.space.family != family.name:
        raise HwnasError(
            f"family {family.name!r}: its space class {family.space.__name__} says family "
            f"{family.space.family!r}; set `family = {family.name!r}` on it"
        )
    if DEFAULT_PRESET in family.search_presets:
        raise HwnasError(
            f"family {family.name!r}: the {DEFAULT_PRESET!r} search preset is hwnas's own; name the family's otherwise"
        )
    known = _FAMILIES.get(family.name)
    if known is not None and known != family:
        raise HwnasError(
            f"family {family.name!r} is already registered (by {known.space.__module__}); pick another name"
        )
    _FAMILIES[family.name] = family
    return family


def load_families() -> None:
    """Import every family declared under the `hwnas.families` entry points (once): hwnas's own
    and those of other packages."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    found = entry_points(group=ENTRY_POINT_GROUP)
    if not found:
        raise HwnasError(
            "no search-space family is declared (entry points `hwnas.families`): hwnas is not installed; "
            "install it with `pip install -e .` (or `make install`) in the checkout"
        )
    for entry in found:
        import_module(entry.value.partition(":")[0])


def families() -> dict[str, Family]:
    load_families()
    return dict(_FAMILIES)


def get_family(name: str) -> Family:
    known = families()
    if name not in known:
        raise HwnasError(
            f"family {name!r} is not known to this hwnas (known: {', '.join(sorted(known))}); "
            f"install or import the package that registers it"
        )
    return known[name]


def build_model(arch: Arch) -> nn.Module:
    """The static network of `arch`, freshly initialised (from the global torch RNG, as
    `timm.create_model` is), without any supernet: what `hwnas.load_model` and extraction fill."""
    return get_family(arch.space.family).build_model(arch)


def timm_kwargs(arch: Arch) -> dict[str, Any] | None:
    """`timm.create_model` arguments that build `arch` (a plain ViT/DeiT arch), else None."""
    return get_family(arch.space.family).timm_kwargs(arch)
