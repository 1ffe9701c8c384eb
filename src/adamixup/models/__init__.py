"""Models following timm's protocol, and a name -> builder table."""
from __future__ import annotations

from typing import Callable, Dict

from torch import nn

from .base import ProtocolModel, ProtocolWrapper
from .preact_resnet import PreActResNet18
from .reid_resnet import ReIDResNet50
from .small_cnn import SmallCNN

MODELS: Dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "preact_resnet18": PreActResNet18,
    "reid_resnet50": ReIDResNet50,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name, e.g. ``build_model("small_cnn", in_channels=1, num_classes=10)``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)


__all__ = ["MODELS", "build_model", "ProtocolModel", "ProtocolWrapper", "PreActResNet18", "ReIDResNet50", "SmallCNN"]
