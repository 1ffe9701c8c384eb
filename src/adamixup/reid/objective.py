"""The re-ID step's whole loss, top to bottom: the ID loss (the mixer's: plain, MixUp or AdaMixUp,
label-smoothed), plus the triplet and center losses on the clean samples' pooled features, which the
mixer returns (no extra forward pass)::

    out = mixer(model, x, y)                               # ID loss; out.features: (B, D) before the BNNeck
    loss = out.loss + w_t · triplet(out.features, y) + β · center(out.features, y)

The center loss's centers are parameters of this module, so that DistributedDataParallel, which
wraps the objective, averages their gradients like any other; their own optimizer (SGD at lr α/β)
lives in the task (:mod:`adamixup.reid.task`).
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from ..train.engine import StepOutput
from .losses import CenterLoss, TripletLoss


class ReIDObjective(nn.Module):
    """model, mixer: the network and the ID-loss mixer; triplet, center: the metric losses (None:
    off) with their weights ``triplet_weight`` and ``center_weight`` (β)."""

    def __init__(self, model: nn.Module, mixer: nn.Module, triplet: Optional[TripletLoss] = None,
                 center: Optional[CenterLoss] = None, triplet_weight: float = 1.0, center_weight: float = 0.0):
        super().__init__()
        self.model, self.mixer, self.triplet, self.center = model, mixer, triplet, center
        self.triplet_weight, self.center_weight = float(triplet_weight), float(center_weight)

    def forward(self, x: Tensor, y: Tensor) -> StepOutput:
        out = self.mixer(self.model, x, y)
        loss, terms = out.loss, {"id": out.loss.detach()}
        terms.update({f"id_{k}": v for k, v in out.terms.items() if k != "clean" or len(out.terms) > 1})
        f = out.features
        if f is None and (self.triplet is not None or self.center is not None):
            raise ValueError(f"{type(self.mixer).__name__} returned no clean features for the triplet and center "
                             "losses; build it with include_clean=True")
        if self.triplet is not None:
            t = self.triplet(f.float(), y)
            loss = loss + self.triplet_weight * t
            terms["triplet"] = t.detach()
        if self.center is not None:
            c = self.center(f, y)
            loss = loss + self.center_weight * c
            terms["center"] = c.detach()
        return StepOutput(loss, terms, out.lam, out.stats, out)
