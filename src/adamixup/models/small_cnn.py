"""A small CNN for gray digits (28×28 MNIST-like and 8×8 scikit-learn digits)."""
from __future__ import annotations

from torch import Tensor, nn

from .base import ProtocolModel


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(ProtocolModel):
    """Three conv stages (width, 2·width, 4·width channels; the first two end in 2×2 max-pooling)
    and global average pooling (in ``forward_head``): 28×28 inputs reach 7×7, 8×8 inputs 2×2.
    ``num_features = 4·width``."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, dropout: float = 0.0):
        super().__init__()
        self.in_channels, self.num_classes, self.num_features = in_channels, num_classes, 4 * width
        self.features = nn.Sequential(
            _conv_bn(in_channels, width), _conv_bn(width, width), nn.MaxPool2d(2),
            _conv_bn(width, 2 * width), _conv_bn(2 * width, 2 * width), nn.MaxPool2d(2),
            _conv_bn(2 * width, 4 * width),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last stage's feature map ``(B, 4·width, H/4, W/4)``."""
        return self.features(x)

    def pre_logits(self, pooled: Tensor) -> Tensor:
        return self.dropout(pooled)
