"""The MNIST network of the AdaMixUp authors' released code (``SITE5039/AdaMixUp``, lines ~313–322):
four 3×3 convolutions of 32 channels with biases and ReLU ("same" padding), 2×2 max-pooling after the
first and the third, a fully connected layer of 512 with ReLU, dropout 0.5, the classifier.

The released code scales [0, 1] pixels to [−1, 1] inside the network; here the data pipeline
normalizes the images, so the network reads them as they come. Every layer starts from He's
initialization (tensorpack's default, ``variance_scaling`` with scale 2); the released AdaMixUp graph
starts its classifier at N(0, 1e-3) and its baseline graph at the default: one network serves every
method here, so the default is used throughout.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import ProtocolModel


class AuthorsCNN(ProtocolModel):
    """The released code's MNIST CNN. ``num_features = 512``; 28×28 inputs reach 7×7 before the
    fully connected layer (any size divisible by 4 works: the layer is sized for it)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, hidden: int = 512,
                 dropout: float = 0.5, image_size: int = 28):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"authors_cnn needs an image size divisible by 4 (two 2×2 poolings), got {image_size}")
        self.in_channels, self.num_classes, self.num_features = in_channels, num_classes, hidden
        conv = lambda cin: nn.Conv2d(cin, width, 3, padding=1)  # noqa: E731
        self.features = nn.Sequential(
            conv(in_channels), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            conv(width), nn.ReLU(inplace=True), conv(width), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            conv(width), nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(width * (image_size // 4) ** 2, hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)
        for layer in self.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last convolution's map ``(B, width, H/4, W/4)``."""
        return self.features(x)

    def pool(self, features: Tensor) -> Tensor:
        """Flattened, not averaged: the released network's fully connected layer reads every position."""
        return features.flatten(1) if features.dim() == 4 else features

    def pre_logits(self, pooled: Tensor) -> Tensor:
        return self.dropout(torch.relu(self.fc(pooled)))
