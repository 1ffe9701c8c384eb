"""The re-ID strong baseline's network (Luo et al., CVPR-W 2019): a torchvision ResNet-50 whose
last stage keeps stride 1 (a 16×8 feature map for 256×128 inputs instead of 8×4), global average
pooling, and a BNNeck — a BatchNorm1d between the pooled feature and a bias-free classifier.

The triplet and center losses read the feature before the BNNeck (``forward_features``); the
identity loss reads the classifier's logits (``forward_head``); retrieval uses the feature after
the BNNeck (``embed``), in eval mode.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Union

import torch
from torch import Tensor, nn

from .base import ProtocolModel

NECKS = ("bnneck", "none")


def _new_classifier(num_features: int, num_classes: int, bias: bool) -> nn.Module:
    if num_classes <= 0:
        return nn.Identity()
    head = nn.Linear(num_features, num_classes, bias=bias)
    if not bias:  # behind the BNNeck, as the strong baseline: N(0, 0.001²), small logits at the start
        nn.init.normal_(head.weight, std=0.001)
    # without a neck the strong baseline's released code keeps PyTorch's default initialization of
    # nn.Linear (weight and bias uniform in ±1/sqrt(num_features))
    return head


def load_backbone_weights(net: nn.Module, pretrained: Union[bool, str], arch: str) -> None:
    """Load ImageNet weights into a torchvision ResNet ``net`` of architecture ``arch``.

    pretrained: ``True`` or ``"imagenet"`` downloads torchvision's IMAGENET1K_V1 weights (cached in
    ``$TORCH_HOME``); any other string is a local file holding a state dict (``torch.load`` with
    ``weights_only=True``; a ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper and
    ``module.`` prefixes are accepted). The classifier ``fc.*`` is ignored; every other tensor
    must be present and of the right shape, else ``ValueError`` naming the file.
    """
    if pretrained is True or pretrained == "imagenet":
        from torchvision.models import get_model_weights

        weights = get_model_weights(arch)["IMAGENET1K_V1"]
        state = weights.get_state_dict(progress=True)
        source = f"torchvision's {arch} IMAGENET1K_V1 weights"
    else:
        path = os.fspath(pretrained)
        if not os.path.isfile(path):
            raise ValueError(f"pretrained weights file {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle errors (weights_only refuses code), truncated files, non-tensor payloads
            why = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
            raise ValueError(f"pretrained weights file {path} cannot be loaded as a state dict ({why})") from None
        source = f"pretrained weights file {path}"
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{source} holds a {type(state).__name__}, not a state dict")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(getattr(state[k], "shape", ())))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensors (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} tensors of the wrong shape (e.g. {k}: {tuple(state[k].shape)} instead of {tuple(own[k].shape)})")
        raise ValueError(f"{source} does not fit a torchvision {arch}: {'; '.join(parts)}")
    net.load_state_dict(state, strict=False)


class ReIDNet(ProtocolModel):
    """The strong baseline's neck on any backbone that returns a feature map: global average pooling,
    a BNNeck (BatchNorm1d with a frozen zero bias, then a bias-free classifier) or none (a classifier
    with bias straight on the pooled feature). Subclasses set ``self.backbone`` (``x -> (B, C, H, W)``)
    and call :meth:`_make_neck`.

    ``forward_features(x)`` -> the backbone's map; ``forward_head(f, pre_logits=True)`` -> the pooled
    feature before the BNNeck (triplet and center losses); ``forward_head(f)`` -> identity logits
    through BNNeck and classifier, so that ``get_classifier()`` is the BNNeck followed by the
    classifier; ``embed(x)`` -> the feature after the BNNeck (retrieval; call in eval mode).
    """

    backbone: nn.Module

    def _make_neck(self, num_features: int, neck: str, num_classes: int) -> None:
        if neck not in NECKS:
            raise ValueError(f"neck must be one of {', '.join(NECKS)}, got {neck!r}")
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.neck_type, self.in_channels, self.num_features = neck, 3, num_features
        if neck == "bnneck":
            self.neck = nn.BatchNorm1d(self.num_features)
            nn.init.ones_(self.neck.weight)
            nn.init.zeros_(self.neck.bias)
            self.neck.bias.requires_grad_(False)  # a shift before a bias-free classifier is redundant
        else:
            self.neck = nn.Identity()
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """A new classifier for ``num_classes`` identities (0: none): behind the BNNeck bias-free and
        initialized N(0, 0.001²); without a neck with a bias and PyTorch's default initialization
        (both as the strong baseline's released code)."""
        self.num_classes = int(num_classes)
        self.head = _new_classifier(self.num_features, self.num_classes, bias=self.neck_type == "none")

    def forward_features(self, x: Tensor) -> Tensor:
        """The backbone's last feature map (``(B, num_features, H/16, W/16)`` with last stride 1)."""
        return self.backbone(x)

    def pool(self, features: Tensor) -> Tensor:
        return self.global_pool(features).flatten(1)

    def get_classifier(self) -> nn.Module:
        """What turns the pooled feature into logits: the BNNeck, then the classifier."""
        return nn.Sequential(self.neck, self.head)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        """The pooled feature before the BNNeck (``pre_logits=True``), or identity logits
        ``(B, num_classes)`` through BNNeck and classifier."""
        pooled = self.pool(features)
        return pooled if pre_logits else self.head(self.neck(pooled))

    def embed(self, x: Tensor) -> Tensor:
        """The retrieval feature: after the BNNeck (or the pooled feature with ``neck="none"``).
        Call in eval mode, so that the BNNeck uses its running statistics."""
        return self.neck(self.pool(self.backbone(x)))


class ReIDResNet50(ReIDNet):
    """The strong baseline's ResNet with last stride 1 and a BNNeck, under the model protocol.

    num_classes: training identities (0: no classifier; ``forward`` then returns the BNNeck feature).
    last_stride: stride of the last stage (1 as the strong baseline, 2 as plain ResNet).
    neck:        "bnneck" (BatchNorm1d with a frozen zero bias, then a bias-free classifier) or
                 "none" (a classifier with bias straight on the pooled feature).
    pretrained:  None/False (random init), True (torchvision's ImageNet weights, downloaded) or a
                 path to a local state dict of the torchvision backbone (see
                 :func:`load_backbone_weights`).
    backbone:    a torchvision ResNet-family name ("resnet50" by default; "resnet18" for fast
                 tests, "resnet101", "resnext50_32x4d", ...).
    in_channels: must be 3 (accepted for ``build_model(name, in_channels=..., ...)`` calls).

    ``forward_features(x)`` -> the last stage's map ``(B, num_features, H/16, W/16)`` (last stride 1);
    ``forward_head(f, pre_logits=True)`` -> the pooled feature before the BNNeck (triplet and center
    losses); ``forward_head(f)`` -> logits through BNNeck and classifier (identity loss), so that
    ``get_classifier()`` is the BNNeck followed by the classifier; ``embed(x)`` -> the feature after
    the BNNeck (retrieval; call in eval mode).
    """

    def __init__(
        self,
        num_classes: int = 751,
        last_stride: int = 1,
        neck: str = "bnneck",
        pretrained: Union[bool, str, None] = None,
        backbone: str = "resnet50",
        in_channels: int = 3,
    ):
        super().__init__()
        if neck not in NECKS:
            raise ValueError(f"neck must be one of {', '.join(NECKS)}, got {neck!r}")
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
        if in_channels != 3:
            raise ValueError(f"{type(self).__name__} reads RGB images (in_channels=3), got in_channels={in_channels}")
        from torchvision.models import get_model

        try:
            net = get_model(backbone, weights=None)
        except ValueError:
            raise ValueError(f"unknown torchvision backbone {backbone!r}; choose a ResNet such as resnet50 or resnet18") from None
        if not all(hasattr(net, n) for n in ("layer4", "fc", "conv1")):
            raise ValueError(f"torchvision's {backbone} is not a ResNet (no conv1/layer4/fc); choose e.g. resnet50")
        if pretrained:
            load_backbone_weights(net, pretrained, backbone)
        # The last stage's first block halves the resolution in its strided 3×3 (or 1×1 in a basic
        # block) convolution and in its shortcut; set both to last_stride.
        for module in net.layer4[0].modules():
            if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
                module.stride = (last_stride, last_stride)
        self.backbone = nn.Sequential(
            OrderedDict((n, getattr(net, n)) for n in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"))
        )
        self.arch, self.last_stride = backbone, last_stride
        self._make_neck(net.fc.in_features, neck, num_classes)


class _TimmFeatures(nn.Module):
    """A timm model's ``forward_features`` as a module's ``forward`` (its feature map)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.forward_features(x)


def last_strided_conv(net: nn.Module):
    """(name, module) of the last 2-D convolution with stride 2 in ``net`` (the last stage's
    downsampling), or None."""
    found = None
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d) and tuple(module.stride) == (2, 2):
            found = (name, module)
    return found


class ReIDTimm(ReIDNet):
    """The strong baseline's neck on any timm backbone (``timm/<arch>``), as :class:`ReIDResNet50` on a
    torchvision ResNet.

    last_stride: 1 sets the stride of the backbone's last strided convolution to 1 (its name is kept
                 in ``last_stride_layer``; EfficientNet-Lite: ``blocks.5.0.conv_dw``), so the feature
                 map is twice as large on each side; 2 leaves the network as built.
    pretrained:  None (random init) or "imagenet": the weights an installed package ships
                 (:mod:`adamixup.models.weights`; nothing is downloaded).
    """

    def __init__(self, num_classes: int = 751, last_stride: int = 1, neck: str = "bnneck",
                 pretrained: Union[bool, str, None] = None, backbone: str = "timm/efficientnet_lite0", in_channels: int = 3):
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
        if in_channels != 3:
            raise ValueError(f"{type(self).__name__} reads RGB images (in_channels=3), got in_channels={in_channels}")
        try:
            import timm
        except ImportError:
            raise ValueError(f'backbone {backbone} needs timm: pip install "adamixup[timm]"') from None
        arch = backbone[len("timm/"):] if backbone.startswith("timm/") else backbone
        if not timm.is_model(arch):
            raise ValueError(f"timm has no model {arch!r}")
        net = timm.create_model(arch, num_classes=0)
        if pretrained:
            from .weights import load_imagenet

            if pretrained not in (True, "imagenet"):
                raise ValueError(f"pretrained={pretrained!r}: a timm backbone takes pretrained=imagenet (weights from a package)")
            load_imagenet(net, arch)
        self.last_stride_layer = None
        if last_stride == 1:
            found = last_strided_conv(net)
            if found is None:
                raise ValueError(f"timm's {arch} has no strided convolution whose stride last_stride=1 could undo; use last_stride=2")
            self.last_stride_layer, conv = found
            conv.stride = (1, 1)
        self.backbone = _TimmFeatures(net)
        self.arch, self.last_stride = backbone, last_stride
        self._make_neck(net.num_features, neck, num_classes)
