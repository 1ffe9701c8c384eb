"""Empirical risk minimization: plain cross-entropy, behind the same interface as the mixers."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import (MixOutput, check_batch, check_logits, check_model, features_and_logits, model_num_classes, one_hot,
                   soft_cross_entropy)


class ERM(nn.Module):
    """Cross-entropy on the clean batch, so that a comparison runs every method in the same loop.

    label_smoothing: ε of the one-hot targets (0 = plain cross-entropy).
    """

    min_batch = 1

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = float(label_smoothing)

    def forward(self, model: nn.Module, x: Tensor, y: Tensor) -> MixOutput:
        check_model(model)
        check_batch(x, y, self.min_batch, "ERM", model_num_classes(model))
        features, logits = features_and_logits(model, x)
        c = check_logits(logits, y)
        loss = soft_cross_entropy(logits, one_hot(y, c, self.label_smoothing))
        return MixOutput(
            loss=loss,
            terms={"clean": loss.detach()},
            lam=torch.empty(0, device=x.device),
            features=features,
            targets=y,
        )
