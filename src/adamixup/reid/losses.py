"""Losses of the re-ID strong baseline (Luo et al., CVPR-W 2019).

The total loss of a training step is

    L = L_id(logits, y) + L_triplet(f, y) + β · L_center(f, y)      (β = 5e-4 in the recipe)

where ``f, logits = adamixup.models.features_and_logits(model, x)``: ``f`` is the pooled feature
before the BNNeck, and the logits come through the BNNeck and the classifier. ``L_id`` is cross-entropy with label smoothing ε (0.1 in the recipe)
(:class:`CrossEntropyLabelSmooth`, or any mixer's soft cross-entropy when MixUp / AdaMixUp run on
the identity loss).

How a trainer uses :class:`CenterLoss`: its centers are parameters trained by their own plain SGD,
not by the model's optimizer (Adam in the baseline), and β scales the loss only for the model — the
centers should move at their own rate. The strong baseline's code divides the centers' gradient by β
before an SGD step at lr α (0.5 in its recipe); an SGD at lr α/β on the undivided gradient takes the
same step, so the centers need no gradient surgery::

    center_loss = CenterLoss(num_classes, model.num_features)
    opt_center = torch.optim.SGD(center_loss.parameters(), lr=alpha / beta)
    ...
    loss = id_loss + triplet(f, y) + beta * center_loss(f, y)
    opt.zero_grad(); opt_center.zero_grad()
    loss.backward()
    opt.step(); opt_center.step()

The centers must not also be in the model optimizer's parameter groups, and they belong in the
checkpoint (``center_loss.state_dict()`` and ``opt_center.state_dict()``).
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..mixing.base import one_hot, soft_cross_entropy


class CrossEntropyLabelSmooth(nn.Module):
    """Cross-entropy against label-smoothed targets (Szegedy et al., 2016): the true identity gets
    ``1 - ε + ε/C``, every other identity ``ε/C`` (ε = 0.1 in the strong baseline). Built on
    :func:`adamixup.mixing.one_hot` and :func:`adamixup.mixing.soft_cross_entropy`, so it agrees
    with the mixers' identity loss."""

    def __init__(self, num_classes: int, epsilon: float = 0.1):
        super().__init__()
        self.num_classes, self.epsilon = int(num_classes), float(epsilon)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """logits: ``(B, C)``; targets: ``(B,)`` identity ids in ``0..C-1``. Returns the batch mean."""
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"logits have {logits.shape[1]} classes, the loss was built for {self.num_classes}")
        return soft_cross_entropy(logits, one_hot(targets, self.num_classes, self.epsilon))


def euclidean_dist(x: Tensor, y: Tensor) -> Tensor:
    """Euclidean (not squared) distances ``(M, N)`` between the rows of ``x`` ``(M, D)`` and ``y``
    ``(N, D)``. Clamped at 1e-12 under the square root, so that zero distances (an anchor with
    itself) neither produce NaN gradients nor pass gradient."""
    x, y = x.float(), y.float()
    d2 = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1).unsqueeze(0) - 2.0 * x @ y.t()
    return d2.clamp(min=1e-12).sqrt()


def hard_example_mining(dist: Tensor, labels: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """For each anchor (row of the square ``dist``): the distance to its farthest positive and to
    its nearest negative, and a mask of anchors that have at least one negative.

    The anchor counts as its own positive (distance ~0), so an identity seen once in the batch
    still has a hardest positive.
    """
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    dist_ap = dist.masked_fill(~same, float("-inf")).max(dim=1).values
    dist_an = dist.masked_fill(same, float("inf")).min(dim=1).values
    return dist_ap, dist_an, (~same).any(dim=1)


class TripletLoss(nn.Module):
    """Batch-hard triplet loss (Hermans et al., 2017): for each anchor, its hardest positive and
    hardest negative in the batch under Euclidean distance, and

        margin:       mean(max(0, d(a, p) - d(a, n) + margin))     (MarginRankingLoss)
        soft_margin:  mean(log(1 + exp(d(a, p) - d(a, n))))        (SoftMarginLoss)

    margin:            0.3 in the strong baseline.
    soft_margin:       use the soft-margin form instead (``margin`` is then ignored).
    normalize_feature: L2-normalize the features first.

    Anchors without a negative in the batch (a batch of a single identity) are left out; a batch
    with none gives a zero loss. Use PK batches (:class:`adamixup.reid.sampler.PKBatchSampler`).
    """

    def __init__(self, margin: float = 0.3, soft_margin: bool = False, normalize_feature: bool = False):
        super().__init__()
        if not soft_margin and margin < 0:
            raise ValueError(f"triplet margin must be >= 0, got {margin}")
        self.margin, self.soft_margin, self.normalize_feature = float(margin), bool(soft_margin), bool(normalize_feature)

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """features: ``(B, D)`` (before the BNNeck); labels: ``(B,)`` identity ids."""
        if features.dim() != 2 or labels.shape != features.shape[:1]:
            raise ValueError(f"triplet loss needs features (B, D) and labels (B,), got {tuple(features.shape)} and {tuple(labels.shape)}")
        if self.normalize_feature:
            features = F.normalize(features.float(), dim=1)
        dist_ap, dist_an, valid = hard_example_mining(euclidean_dist(features, features), labels)
        if not bool(valid.any()):
            return features.sum() * 0.0
        gap = dist_ap[valid] - dist_an[valid]
        if self.soft_margin:
            return F.softplus(gap).mean()
        return F.relu(gap + self.margin).mean()


class CenterLoss(nn.Module):
    """Center loss (Wen et al., ECCV 2016): the mean over the batch of the squared Euclidean
    distance between each feature and its identity's center,

        L = 1/B · Σ_i ||f_i - c_{y_i}||²,

    with one learned center per identity, initialized N(0, 1). The centers are this module's
    parameters; see the module docstring for their separate SGD (at lr α/β) and the weight β in the
    total loss.
    """

    def __init__(self, num_classes: int, feat_dim: int):
        super().__init__()
        self.num_classes, self.feat_dim = int(num_classes), int(feat_dim)
        self.centers = nn.Parameter(torch.randn(self.num_classes, self.feat_dim))

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """features: ``(B, feat_dim)`` (before the BNNeck); labels: ``(B,)`` ids in ``0..num_classes-1``."""
        if features.dim() != 2 or features.shape[1] != self.feat_dim:
            raise ValueError(f"center loss was built for {self.feat_dim}-dimensional features, got shape {tuple(features.shape)}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"center loss labels must lie in 0..{self.num_classes - 1}, got {int(labels.min())}..{int(labels.max())}")
        diff = features.float() - self.centers[labels.long()]
        return diff.pow(2).sum(dim=1).clamp(min=1e-12, max=1e12).mean()
