"""The methods, by name: the only list of them. Config validation, the CLI, the trainers
and the studies all read :data:`METHODS`.

A method is a mixer class and the options it fixes (``adamixup-paper`` is AdaMixUp with the authors'
released settings, :data:`PAPER_SETTINGS`; the controls are mixers with one part taken away). Each
mixer class states its smallest batch (``min_batch``) and its options (its constructor's keyword arguments); one that takes the
classifier (``model``) to size its own networks gets it when built (and reads the input channels from it).
Adding a mixer: one file, and one line here.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Mapping, Optional, Type

from torch import nn

from .adamixup import PAPER_SETTINGS, AdaMixUp
from .controls import LayoutMixUp
from .erm import ERM
from .mixup import MixUp

BUILD_ARGS = frozenset({"self", "model", "in_channels"})


@dataclass(frozen=True)
class Method:
    """A mixer class with the options this method fixes. ``summary``: one line for help and reports."""

    cls: Type[nn.Module]
    summary: str
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def min_batch(self) -> int:
        return int(self.cls.min_batch)

    @property
    def takes_model(self) -> bool:
        return "model" in inspect.signature(self.cls.__init__).parameters

    def options(self, reserved: FrozenSet[str] = frozenset()) -> FrozenSet[str]:
        """The keyword options a config may set (``reserved``: those a task sets itself)."""
        params = set(inspect.signature(self.cls.__init__).parameters)
        return frozenset(params - BUILD_ARGS - set(self.fixed) - set(reserved))

    def build(self, model: Optional[nn.Module] = None, **options) -> nn.Module:
        """The mixer; ``model`` (the classifier) reaches mixers that take it, which read the input
        channels from it (``in_channels=C`` among ``options`` for a model that does not tell)."""
        kwargs: Dict[str, Any] = {**self.fixed, **options}
        if self.takes_model:
            return self.cls(model, **kwargs)
        kwargs.pop("in_channels", None)
        return self.cls(**kwargs)


METHODS: Dict[str, Method] = {
    "erm": Method(ERM, "plain training: cross-entropy on the batch"),
    "mixup": Method(MixUp, "MixUp: every sample mixed with a random partner, λ ~ Beta(α, α)"),
    "adamixup": Method(AdaMixUp, "AdaMixUp with the package defaults (λ from a learned policy π, φ on its own body)"),
    "adamixup-paper": Method(AdaMixUp, "AdaMixUp as the authors' released code trains it (AdaMixUp.paper)",
                              fixed=dict(PAPER_SETTINGS)),
    # controls (README, Results): what π and φ add over the same batch layout and clean loss
    "mixup-clean": Method(MixUp, "control: MixUp plus the clean loss on all B samples",
                          fixed={"include_clean": True}),
    "mixup-matched": Method(LayoutMixUp, "control: AdaMixUp's batch layout, λ ~ Beta(α, α)", fixed={"lam": "beta"}),
    "fixed-region": Method(LayoutMixUp, "control: AdaMixUp's batch layout, λ ~ U(low, high) without π",
                           fixed={"lam": "uniform"}),
    "pi-frozen": Method(AdaMixUp, "control: AdaMixUp with π frozen at its initialization",
                        fixed={"train_policy": False}),
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None


def build_mixer(name: str, model: Optional[nn.Module] = None, **options) -> nn.Module:
    """The one way to build a mixer by name: ``build_mixer("adamixup", model, min_width=0.3)``; the
    classifier ``model`` sizes π and φ and tells the input channels."""
    return get_method(name).build(model, **options)
