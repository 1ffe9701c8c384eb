"""MixUp (Zhang et al., ICLR 2018): train on convex combinations of pairs of samples and labels."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .base import (
    MixOutput,
    check_batch,
    check_logits,
    check_model,
    features_and_logits,
    mix_targets,
    model_num_classes,
    one_hot,
    recursive_mix,
    soft_cross_entropy,
)


class MixUp(nn.Module):
    """MixUp with λ ~ Beta(α, α).

    alpha:           the Beta distribution's parameter (1.0 = uniform λ).
    k:               inputs per mixed sample; k > 2 mixes recursively with the two-input rule.
    per_batch:       one λ for the whole batch (the original paper's code) instead of one per pair.
    include_clean:   also pass the clean batch through the backbone and add its cross-entropy
                     (``terms["clean"]``); needed where the clean features are used (re-ID's triplet
                     and center losses). Off by default: plain MixUp trains on mixed samples only.
    label_smoothing: ε of the one-hot targets before they are mixed.

    Every sample of the batch starts a mixed sample; partners come from a random permutation of
    the batch, drawn anew at each of the k-1 steps. Randomness comes from torch's global generator.
    """

    min_batch = 2

    def __init__(
        self,
        alpha: float = 1.0,
        k: int = 2,
        per_batch: bool = False,
        include_clean: bool = False,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"MixUp alpha must be positive, got {alpha}")
        if k < 2:
            raise ValueError(f"MixUp mixes k >= 2 inputs, got k={k}")
        self.alpha, self.k, self.per_batch = float(alpha), int(k), bool(per_batch)
        self.include_clean, self.label_smoothing = bool(include_clean), float(label_smoothing)
        self._beta = torch.distributions.Beta(torch.tensor(self.alpha), torch.tensor(self.alpha))

    def sample_lam(self, a: Tensor, b: Tensor) -> Tensor:
        n = 1 if self.per_batch else a.shape[0]
        return self._beta.sample((n,)).to(a.device).expand(a.shape[0])

    def mix(self, x: Tensor, y: Tensor, num_classes: int, lam: Optional[Tensor] = None,
            partners: Optional[Sequence[Tensor]] = None) -> Tuple[Tensor, Tensor, Tensor, List[Tensor]]:
        """The mixed batch and its soft targets: ``(x̃, ỹ, λ (k-1, B), partners)``.

        lam:      the ratios to use, a scalar or ``(k-1, B)`` (default: drawn from Beta(α, α)).
        partners: ``k-1`` index tensors of the sample mixed in at each step (default: random
                  permutations of the batch). With ``lam`` a scalar and ``partners=[x.flip(0)'s
                  order]`` this is timm's ``Mixup`` in its per-batch mode.
        """
        b = x.shape[0]
        if partners is None:
            partners = [torch.randperm(b, device=x.device) for _ in range(self.k - 1)]
        if lam is None:
            sample = self.sample_lam
        else:
            given = torch.as_tensor(lam, dtype=torch.float32, device=x.device).expand(len(partners), b)
            steps = iter(given)
            sample = lambda a, b_: next(steps)  # noqa: E731
        xm, lams = recursive_mix(x, b, partners, sample)
        tm = mix_targets(one_hot(y, num_classes, self.label_smoothing), b, partners, lams)
        return xm, tm, lams, list(partners)

    def forward(self, model: nn.Module, x: Tensor, y: Tensor) -> MixOutput:
        check_model(model)
        check_batch(x, y, self.min_batch, "MixUp", model_num_classes(model))
        b = x.shape[0]
        partners = [torch.randperm(b, device=x.device) for _ in range(self.k - 1)]
        xm, lam = recursive_mix(x, b, partners, self.sample_lam)
        inputs = torch.cat([xm, x]) if self.include_clean else xm
        features, logits = features_and_logits(model, inputs)
        target = one_hot(y, check_logits(logits, y), self.label_smoothing)
        tm = mix_targets(target, b, partners, lam)
        mixed_loss = soft_cross_entropy(logits[:b], tm)
        terms = {"mixed": mixed_loss.detach()}
        loss, clean_features = mixed_loss, None
        if self.include_clean:
            clean_loss = soft_cross_entropy(logits[b:], target)
            terms["clean"] = clean_loss.detach()
            loss = loss + clean_loss
            clean_features = features[b:]
        return MixOutput(
            loss=loss,
            terms=terms,
            lam=lam.reshape(-1),
            features=clean_features,
            targets=y,
            partners=torch.stack(partners),
            mixed=xm.detach(),
            mixed_targets=tm.detach(),
        )
