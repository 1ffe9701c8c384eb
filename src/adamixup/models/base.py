"""The model protocol (timm's convention) and an adapter for torchvision-style classifiers."""
from __future__ import annotations

from torch import Tensor, nn


class ProtocolModel(nn.Module):
    """Base of our models: ``forward_features(x) -> (B, D)``, ``forward_head(f) -> logits``,
    ``num_features = D``, ``forward = forward_head ∘ forward_features``, and timm's
    ``reset_classifier(num_classes)`` (0 removes the head)."""

    num_features: int
    num_classes: int
    head: nn.Module

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()


HEAD_NAMES = ("fc", "classifier", "head")


class ProtocolWrapper(ProtocolModel):
    """Adapts a torchvision-style classifier, whose last module (``fc``, ``classifier`` or ``head``)
    maps pooled features to logits, to the protocol: the head is lifted out, the rest of the network
    becomes ``forward_features``. Works for torchvision's ResNets, RegNets, VGGs, MobileNets, ...

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
        head = getattr(net, found)
        linears = [m for m in head.modules() if isinstance(m, nn.Linear)] if not isinstance(head, nn.Linear) else [head]
        if not linears:
            raise TypeError(f"{type(net).__name__}.{found} contains no nn.Linear to read the feature width from")
        self.num_features = linears[0].in_features
        self.num_classes = linears[-1].out_features
        first_conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
        self.in_channels = first_conv.in_channels if first_conv is not None else None
        setattr(net, found, nn.Identity())
        self.net, self.head = net, head

    def forward_features(self, x: Tensor) -> Tensor:
        return self.net(x)
