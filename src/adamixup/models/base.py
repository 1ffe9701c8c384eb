"""The model protocol (timm's convention, exactly) and the helpers that every consumer of features uses.

A model has ``forward_features(x)`` (the backbone's output: a feature map ``(B, C, H, W)``, tokens
``(B, N, D)`` or already pooled ``(B, D)``), ``forward_head(f, pre_logits=False)`` (pooling and any
neck, then the classifier; with ``pre_logits=True`` it stops before the classifier and returns pooled
``(B, D)`` features), ``num_features`` and ``forward = forward_head ∘ forward_features``. Any timm
model follows it; torchvision classifiers get it from :class:`ProtocolWrapper`.

Nobody pools by hand: pooled features come from :func:`pooled_features`, features and logits of one
backbone pass from :func:`features_and_logits`, their width from :func:`feature_dim`.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MODEL_PROTOCOL = ("forward_features", "forward_head", "num_features")


def pooled_features(model: nn.Module, x: Tensor) -> Tensor:
    """``(B, D)`` pooled pre-logits features: ``forward_head(forward_features(x), pre_logits=True)``."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def features_and_logits(model: nn.Module, x: Tensor) -> Tuple[Tensor, Tensor]:
    """Pooled pre-logits features ``(B, D)`` and logits ``(B, num_classes)`` from one backbone pass.

    The logits are the model's classifier (``get_classifier()``, timm's accessor) applied to the
    pooled features, so that pooling and any neck run once (a BatchNorm neck must not see the batch
    twice); a model without a usable ``get_classifier`` gets ``forward_head`` a second time.
    """
    f = model.forward_features(x)
    pooled = model.forward_head(f, pre_logits=True)
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    logits = classifier(pooled) if isinstance(classifier, nn.Module) else model.forward_head(f)
    return pooled, logits


def feature_dim(model: nn.Module) -> int:
    """D of :func:`pooled_features`: timm's ``head_hidden_size`` where a head has a hidden layer
    (MobileNetV3), else ``num_features``."""
    d = getattr(model, "head_hidden_size", None) or getattr(model, "num_features", None)
    if not isinstance(d, int) or d < 1:
        raise TypeError(f"{type(model).__name__} states no feature width (num_features)")
    return d


def infer_in_channels(model: nn.Module) -> Optional[int]:
    """Input channels of ``model``: its ``in_channels`` attribute, else its first convolution's, else
    timm's ``pretrained_cfg``/``default_cfg`` ``input_size``; ``None`` when none of them tells."""
    n = getattr(model, "in_channels", None)
    if isinstance(n, int) and n > 0:
        return n
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is not None:
        return conv.in_channels
    for attr in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, attr, None)
        size = cfg.get("input_size") if isinstance(cfg, dict) else None
        if size and len(size) == 3:
            return int(size[0])
    return None


def check_model(model: nn.Module) -> None:
    missing = [name for name in MODEL_PROTOCOL if not hasattr(model, name)]
    if missing:
        raise TypeError(
            f"{type(model).__name__} lacks {', '.join(missing)} of the model protocol "
            "(forward_features, forward_head, num_features); wrap a torchvision-style classifier "
            "with adamixup.models.ProtocolWrapper"
        )


class ProtocolModel(nn.Module):
    """Base of our models. A subclass sets ``num_features``, ``num_classes``, ``in_channels``,
    ``head`` (the classifier) and implements ``forward_features(x)`` (a feature map); ``pool``
    (global average pooling by default) and ``pre_logits`` (identity by default: a dropout, a neck)
    turn the map into pooled features. timm's ``get_classifier`` and ``reset_classifier(num_classes)``
    (0 removes the head) come with it."""

    num_features: int
    num_classes: int
    head: nn.Module

    def pool(self, features: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(features, 1).flatten(1) if features.dim() == 4 else features

    def pre_logits(self, pooled: Tensor) -> Tensor:
        return pooled

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        pooled = self.pre_logits(self.pool(features))
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()


# where torchvision puts a classifier's head: fc (ResNet, RegNet, GoogLeNet, ShuffleNet), classifier
# (MobileNet, EfficientNet, ConvNeXt, DenseNet, VGG), head (Swin), heads (ViT)
HEAD_NAMES = ("fc", "classifier", "head", "heads")


def _split_head(head: nn.Module) -> Optional[Tuple[nn.Module, nn.Linear]]:
    """(the layers before the last linear layer, that linear layer), or None."""
    if isinstance(head, nn.Linear):
        return nn.Identity(), head
    if isinstance(head, nn.Sequential) and len(head):
        last = head[-1]
        if isinstance(last, nn.Linear):
            return nn.Sequential(*list(head)[:-1]), last
        inner = _split_head(last)
        if inner is not None:
            return nn.Sequential(*list(head)[:-1], inner[0]), inner[1]
    return None


class ProtocolWrapper(ProtocolModel):
    """Adapts a torchvision-style classifier to the protocol. Its head (``fc``, ``classifier``,
    ``head`` or ``heads``: a linear layer, or a sequence ending in one) is lifted out: the rest of the
    network is ``forward_features`` (pooled by torchvision's own code), the head's layers before its
    last linear layer (dropout, ConvNeXt's LayerNorm, MobileNetV3's hidden layer) are
    ``pre_logits``, and that linear layer is the classifier. ResNet, RegNet, MobileNet, EfficientNet,
    ConvNeXt, DenseNet, VGG, ViT, Swin, ...

    >>> from torchvision.models import resnet18
    >>> model = ProtocolWrapper(resnet18(num_classes=10))
    """

    def __init__(self, net: nn.Module, head_name: str = ""):
        super().__init__()
        names = (head_name,) if head_name else HEAD_NAMES
        found = next((n for n in names if isinstance(getattr(net, n, None), nn.Module)), None)
        if found is None:
            raise TypeError(
                f"{type(net).__name__} has no classifier head named {' / '.join(names)}; "
                "pass head_name= the attribute that maps features to logits"
            )
        split = _split_head(getattr(net, found))
        if split is None:
            raise TypeError(f"{type(net).__name__}.{found} does not end in an nn.Linear classifier; "
                            "pass head_name= the attribute that does, or give the model the protocol yourself")
        self.neck, self.head = split
        self.num_features = self.head.in_features
        self.num_classes = self.head.out_features
        first_conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
        self.in_channels = first_conv.in_channels if first_conv is not None else None
        setattr(net, found, nn.Identity())
        self.net = net

    def forward_features(self, x: Tensor) -> Tensor:
        return self.net(x)

    def pool(self, features: Tensor) -> Tensor:
        return features  # torchvision's forward pooled already (ConvNeXt's flatten is in the neck)

    def pre_logits(self, pooled: Tensor) -> Tensor:
        return torch.flatten(self.neck(pooled), 1)
