"""The supernet contract every family implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from hwnas.errors import ArchError, HwnasError
from hwnas.families.registry import build_model
from hwnas.layers.elastic import ElasticLayer, State, prefixed, take
from hwnas.rng import isolated_rng
from hwnas.spaces import Arch, SearchSpace


class LayerChoice(NamedTuple):
    """What one layer of a supernet is in a subnet: its `choice` (the arguments its `forward` takes
    after the input; for a loose parameter, `take`'s dimension and selection; none: all of it) and
    its `name` in the static model (None: the same path as in the supernet)."""

    choice: tuple[Any, ...] = ()
    name: str | None = None


class Supernet(nn.Module, ABC):
    """One weight-sharing network holding every arch of `space`.

    `supernet(x, arch)` runs the subnet `arch` on the shared weights (the arch is an explicit
    argument: nothing is remembered between calls); `extract(arch)` returns it as a static module:
    the family's static model (`hwnas.build_model`) with `active_state_dict(arch)` loaded into it.

    A family writes one walk over the subnet, `layer_choices(arch)`: what each layer is in it.
    `forward` runs the layers with those choices and `active_state_dict` gathers each layer's
    `active_state` for the same choices, so the two cannot disagree.
    """

    # Whether `forward_multi` runs a different subnet per example (multi-architectural sampling).
    per_example_archs: bool = False
    # Whether it has BatchNorm layers whose statistics depend on the subnet (trained across subnets,
    # they fit none): scoring and extraction then recalibrate them per subnet (`batchnorm.py`).
    arch_dependent_batchnorm: bool = False
    # Whether `on_epoch` warms up the choices (the largest first, the others added over the first
    # epochs): the default of `TrainConfig.warmup_choices`, which families without it refuse.
    warms_up_choices: bool = False

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space

    def require_prefix_sharing(self, weight_sharing: str, how: str) -> None:
        """Refuse a `--weight-sharing` other than `prefix` for a family whose channels are shared as
        `how` says (one line naming the fix)."""
        if weight_sharing != "prefix":
            raise HwnasError(
                f"--weight-sharing {weight_sharing} is not available for {self.space.key}: {how}; "
                f"use --weight-sharing prefix"
            )

    def check_arch(self, arch: Arch) -> None:
        if not isinstance(arch, Arch):
            raise ArchError(
                f"expected an Arch, got {type(arch).__name__}; build one with space.arch(...) or Arch.from_dict"
            )
        if arch.space != self.space:
            raise ArchError(f"arch is from space {arch.space.key} but this supernet is {self.space.key}")

    @abstractmethod
    def layer_choices(self, arch: Arch) -> dict[str, LayerChoice]:
        """Every layer and loose parameter subnet `arch` uses, by its path in this supernet, in the
        order `forward` runs them (call `self.check_arch(arch)` first)."""

    @abstractmethod
    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        """Logits of subnet `arch` on images `x` (B, C, H, W), its layers run as `layer_choices` says."""

    def active_state_dict(self, arch: Arch) -> State:
        """The subnet's weights, named as the parameters of `hwnas.build_model(arch)`: each layer's
        `active_state` for its choice (a layer without choices: all its weights and buffers)."""
        state: State = {}
        for path, layer in self.layer_choices(arch).items():
            name = layer.name or path
            try:
                module = self.get_submodule(path)
            except AttributeError:  # a loose parameter
                param = self.get_parameter(path)
                state[name] = take(param, *layer.choice) if layer.choice else param
                continue
            if isinstance(module, ElasticLayer):
                state.update(prefixed(name, module.active_state(*layer.choice)))
            elif layer.choice:
                raise TypeError(f"{type(module).__name__} at {path} is not elastic and takes no choice")
            else:
                state.update(prefixed(name, dict(module.state_dict(keep_vars=True))))
        return state

    def forward_multi(self, x: Tensor, archs: list[Arch]) -> Tensor:
        """Logits of every example under its own subnet: example i runs `archs[i // (B / M)]`. Every
        parameter takes part, whatever the archs (data-parallel training relies on it)."""
        raise ArchError(
            f"the {self.space.family} supernet has no per-example channel masks; use --sampling uniform or sandwich"
        )

    def on_epoch(self, epoch: int, epochs: int, optimizer: torch.optim.Optimizer | None = None) -> SearchSpace:
        """Under warm-up of choices, called on every process before training epoch `epoch` (0-based)
        of `epochs`, also the first one after a resume; returns the space that epoch's subnets are
        drawn from (its archs are archs of `self.space`). Whatever it changes must follow from the
        weights and the epoch alone, so that a resumed run and every process agree; a family that
        reorders its weights here reorders `optimizer`'s state with them. By default: nothing, all
        of the space."""
        return self.space

    @torch.no_grad()
    def extract(self, arch: Arch) -> nn.Module:
        """A static module with the subnet's weights copied out: no slicing, same outputs, on this
        supernet's device and in its train/eval mode. The caller's RNG is left as it was."""
        self.check_arch(arch)
        device = next(self.parameters()).device
        with isolated_rng(0, device), device:  # the builder's initialisation is overwritten below
            model = build_model(arch)
        model.load_state_dict({k: v.detach().clone() for k, v in self.active_state_dict(arch).items()}, strict=True)
        return model.train(self.training)
