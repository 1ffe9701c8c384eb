"""Controls that share AdaMixUp's batch layout but not its learned parts, so that a comparison can
say what π (and φ) add: the same ⌊B/2⌋ mixes of the first half with a derangement, the same clean
loss on all B samples, the same single backbone pass — only the source of λ differs.

- ``LayoutMixUp(lam="beta", alpha=α)``: λ ~ Beta(α, α) per pair ("mixup-matched");
- ``LayoutMixUp(lam="uniform", low=a, high=b)``: λ ~ U(a, b) per pair, a fixed region without π
  ("fixed-region"; U(0.3, 0.7) is the narrowest region the defaults' π may pick, min_width 0.4).

(AdaMixUp with ``train_policy=False`` is the "pi-frozen" control; with ``intrusion_weight=0`` it
has no φ; :class:`~adamixup.mixing.MixUp` with ``include_clean=True`` is MixUp plus the clean loss.)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import MixOutput, check_batch, check_model, half_mix, model_num_classes

LAM_SOURCES = ("beta", "uniform")


class LayoutMixUp(nn.Module):
    """AdaMixUp's batch layout and loss (clean + mixed, no φ) with λ from a fixed distribution.

    lam:             "beta" (λ ~ Beta(alpha, alpha)) or "uniform" (λ ~ U(low, high)), per pair.
    alpha:           the Beta distribution's parameter.
    low, high:       the uniform region, 0 <= low < high <= 1.
    k:               inputs per mix; k > 2 mixes recursively, a new λ per step.
    label_smoothing: ε of the one-hot targets before they are mixed.
    """

    min_batch = 4

    def __init__(self, lam: str = "beta", alpha: float = 1.0, low: float = 0.3, high: float = 0.7, k: int = 2,
                 label_smoothing: float = 0.0):
        super().__init__()
        if lam not in LAM_SOURCES:
            raise ValueError(f"lam must be one of {', '.join(LAM_SOURCES)}, got {lam!r}")
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"the uniform region needs 0 <= low < high <= 1, got low={low}, high={high}")
        if k < 2:
            raise ValueError(f"k must be at least 2, got {k}")
        self.lam, self.alpha, self.low, self.high = lam, float(alpha), float(low), float(high)
        self.k, self.label_smoothing = int(k), float(label_smoothing)
        self._beta = torch.distributions.Beta(torch.tensor(self.alpha), torch.tensor(self.alpha))

    def sample_lam(self, a: Tensor, b: Tensor) -> Tensor:
        if self.lam == "beta":
            return self._beta.sample((a.shape[0],)).to(a.device)
        return self.low + (self.high - self.low) * torch.rand(a.shape[0], device=a.device)

    def forward(self, model: nn.Module, x: Tensor, y: Tensor) -> MixOutput:
        check_model(model)
        check_batch(x, y, self.min_batch, type(self).__name__, model_num_classes(model))
        h = half_mix(model, x, y, self.k, self.sample_lam, self.label_smoothing)
        return MixOutput(
            loss=h.clean_loss + h.mixed_loss,
            terms={"clean": h.clean_loss.detach(), "mixed": h.mixed_loss.detach()},
            lam=h.lam.detach().reshape(-1),
            features=h.features[h.m:],
            targets=y,
            partners=torch.stack(h.partners),
            mixed=h.mixed.detach(),
            mixed_targets=h.mixed_targets.detach(),
        )
