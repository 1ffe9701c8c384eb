"""Models following timm's protocol (:mod:`.base`), ours, and the registry that builds any of them,
timm's or torchvision's by name (:mod:`.registry`)."""
from __future__ import annotations

from .authors_cnn import AuthorsCNN
from .base import (ProtocolModel, ProtocolWrapper, check_model, feature_dim, features_and_logits, infer_in_channels,
                   pooled_features)
from .preact_resnet import PreActResNet18
from .registry import MODELS, ModelError, build_model, check_model_spec
from .reid_resnet import ReIDResNet50
from .small_cnn import SmallCNN

__all__ = ["MODELS", "ModelError", "build_model", "check_model", "check_model_spec", "feature_dim",
           "features_and_logits", "infer_in_channels", "pooled_features", "ProtocolModel", "ProtocolWrapper",
           "AuthorsCNN", "PreActResNet18", "ReIDResNet50", "SmallCNN"]
