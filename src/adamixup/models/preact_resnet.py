"""PreAct-ResNet-18 (He et al., ECCV 2016), the paper's model for CIFAR and SVHN (32×32 colour)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import ProtocolModel


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class PreActResNet18(ProtocolModel):
    """Four stages of two pre-activation blocks (64, 128, 256, 512 channels), a 3×3 stem without
    pooling (32×32 inputs), final BN-ReLU and global average pooling (in ``forward_head``). ``num_features = 512``."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 64):
        super().__init__()
        self.in_channels, self.num_classes, self.num_features = in_channels, num_classes, 8 * width
        layers, cin = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**i
            layers += [PreActBlock(cin, cout, stride), PreActBlock(cout, cout, 1)]
            cin = cout
        layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last stage's feature map after the final BN-ReLU, ``(B, 512, H/8, W/8)``."""
        return self.features(x)
