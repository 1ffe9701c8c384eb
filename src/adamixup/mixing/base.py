"""What every mixer shares: the output type, soft targets, soft cross-entropy, input checks.

Every mixer answers ``out = mixer(model, x, y)``; ``out.loss`` is the whole training loss of the
step. The model follows timm's protocol (:mod:`adamixup.models.base`): features and logits come from
``features_and_logits`` (one backbone pass), pooled features from ``pooled_features``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.base import check_model, features_and_logits  # noqa: F401  (the mixers' view of the protocol)


@dataclass
class MixOutput:
    """The result of one mixer call.

    loss:     scalar, the whole training loss of the step (call ``backward`` on it).
    terms:    detached scalar loss terms for logging: ``clean``, ``mixed``, ``intrusion`` where used.
    lam:      the mixing ratios of the step, flattened step-major: ``(k-1) * M`` values for ``M``
              mixed samples and ``k`` inputs per mix (``M`` values when ``k = 2``); empty for ERM.
    features: pooled pre-logits features of the clean samples, ``(B, D)`` (``None`` when the mixer
              did not pass the clean samples through the backbone).
    targets:  the class ids of those clean samples, ``(B,)``.
    partners: ``(k-1, M)`` batch indices of the sample mixed in at each step (``None`` for ERM);
              mixed sample ``i`` starts from ``x[i]``.
    mixed:    the mixed inputs, detached, ``(M, C, H, W)`` (``None`` for ERM), for pictures and analysis.
    mixed_targets: their soft targets, ``(M, num_classes)``.
    stats:    extra detached scalars a mixer reports (e.g. the intrusion discriminator's accuracy).
    """

    loss: Tensor
    terms: Dict[str, Tensor]
    lam: Tensor
    features: Optional[Tensor]
    targets: Tensor
    partners: Optional[Tensor] = None
    mixed: Optional[Tensor] = None
    mixed_targets: Optional[Tensor] = None
    stats: Dict[str, Tensor] = field(default_factory=dict)


def one_hot(y: Tensor, num_classes: int, smoothing: float = 0.0) -> Tensor:
    """Float one-hot targets ``(B, num_classes)`` for class ids ``y``.

    smoothing: label smoothing ε; the true class gets ``1 - ε + ε / num_classes`` and every other
    class ``ε / num_classes`` (Szegedy et al. 2016), so each row still sums to one.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must lie in [0, 1), got {smoothing}")
    off = smoothing / num_classes
    target = torch.full((y.shape[0], num_classes), off, dtype=torch.float32, device=y.device)
    return target.scatter_(1, y.long().unsqueeze(1), 1.0 - smoothing + off)


def mix_pair(a: Tensor, b: Tensor, lam: Tensor) -> Tensor:
    """``lam * a + (1 - lam) * b`` with one ratio per row of ``a`` (``lam``: ``(M,)``)."""
    lam = lam.to(a.dtype).view(-1, *([1] * (a.dim() - 1)))
    return lam * a + (1 - lam) * b


def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits`` ``(B, C)`` against probability vectors ``target`` ``(B, C)``.

    Computed in float32 whatever the autocast dtype, since log-softmax of bf16 logits loses the
    small probabilities that soft targets weight.
    """
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def check_batch(x: Tensor, y: Tensor, min_batch: int, method: str, num_classes: Optional[int]) -> None:
    if not torch.is_tensor(x) or not torch.is_floating_point(x):
        dtype = x.dtype if torch.is_tensor(x) else type(x).__name__
        raise TypeError(f"{method} needs float images, got {dtype}; convert with x.float() / 255")
    if x.dim() < 2:
        raise ValueError(f"{method} needs a batch of images (B, C, H, W), got shape {tuple(x.shape)}")
    if not torch.is_tensor(y) or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        dtype = y.dtype if torch.is_tensor(y) else type(y).__name__
        raise TypeError(f"{method} needs integer class ids y, got {dtype}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{method} needs one class id per image: x has {x.shape[0]} images, y has shape {tuple(y.shape)}"
        )
    if x.shape[0] < min_batch:
        raise ValueError(f"{method} needs a batch of at least {min_batch} samples, got {x.shape[0]}")
    if num_classes is not None:
        check_labels(y, num_classes)


def model_num_classes(model: nn.Module) -> Optional[int]:
    n = getattr(model, "num_classes", None)
    return int(n) if isinstance(n, int) and n > 0 else None


def check_logits(logits: Tensor, y: Tensor) -> int:
    """Label range check against the head's actual width, for models that do not state num_classes."""
    check_labels(y, logits.shape[1])
    return logits.shape[1]


def check_labels(y: Tensor, num_classes: int) -> None:
    if y.numel():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"label {bad} is out of range for a model with {num_classes} classes (0..{num_classes - 1})")


def recursive_mix(
    x: Tensor, first: int, partners: Sequence[Tensor], sample_lam: Callable[[Tensor, Tensor], Tensor]
) -> Tuple[Tensor, Tensor]:
    """Mix ``x[:first]`` with ``x[partners[0]]``, the result with ``x[partners[1]]``, and so on.

    k inputs are mixed by k-1 applications of the two-input rule ``lam * a + (1 - lam) * b``.
    ``sample_lam(a, b)`` returns one ratio per pair (``(first,)``); it sees the running mixture
    ``a`` and the newcomer ``b``, which is what lets AdaMixUp's policy choose each step's ratio.
    Returns the mixed inputs and the ratios ``(k-1, first)``.
    """
    xm, used = x[:first], []
    for idx in partners:
        lam = sample_lam(xm, x[idx])
        xm = mix_pair(xm, x[idx], lam)
        used.append(lam)
    return xm, torch.stack(used)


def mix_targets(target: Tensor, first: int, partners: Sequence[Tensor], lams: Tensor) -> Tensor:
    """The soft targets of :func:`recursive_mix`'s output: ``target`` ``(B, C)`` mixed with the same
    partners and ratios, so that each row stays a probability vector. The ratios keep their
    gradient; detach ``lams`` for targets that a loss treats as constants."""
    tm = target[:first]
    for idx, lam in zip(partners, lams):
        tm = mix_pair(tm, target[idx], lam)
    return tm


def derangement(n: int, device: Union[str, torch.device, None] = None) -> Tensor:
    """A random permutation of range(n) with no fixed point (n >= 2): a random cycle through all
    indices. A sample paired with itself would give φ a "mixed" example identical to a real one."""
    order = torch.randperm(n, device=device)
    partner = torch.empty_like(order)
    partner[order] = order.roll(-1)
    return partner


PARTNERS = ("derangement", "permutation")


def draw_partners(b: int, m: int, mode: str, device: Union[str, torch.device, None] = None) -> Tensor:
    """The partners ``(m,)`` of the first ``m`` samples of a batch of ``b``: "derangement": a
    derangement of the first half (no self-pairs); "permutation": the first ``m`` entries of a random
    permutation of the whole batch (the authors' code: partners may come from the unseen half, and a
    sample may meet itself)."""
    if mode == "derangement":
        return derangement(m, device)
    if mode == "permutation":
        return torch.randperm(b, device=device)[:m]
    raise ValueError(f"partners must be one of {', '.join(PARTNERS)}, got {mode!r}")


@dataclass
class HalfMix:
    """One backbone pass over AdaMixUp's batch layout: the first ``m = ⌊B/2⌋`` samples mixed with
    partners (:func:`draw_partners`), then the first ``n_pass`` clean samples (all B by default).

    both: the ``m`` mixes then the clean samples of the pass; features/logits: of ``both``; target:
    the B clean samples' (smoothed) one-hot targets ``(B, C)``; mixed_targets: the mixes' soft
    targets; mixed_loss: soft cross-entropy on the mixes; clean_loss: cross-entropy on the first
    ``n_clean`` clean samples.
    """

    m: int
    both: Tensor
    mixed: Tensor
    lam: Tensor
    partners: List[Tensor]
    features: Tensor
    logits: Tensor
    target: Tensor
    mixed_targets: Tensor
    mixed_loss: Tensor
    clean_loss: Tensor


def half_mix(model: nn.Module, x: Tensor, y: Tensor, k: int, sample_lam: Callable[[Tensor, Tensor], Tensor],
             label_smoothing: float = 0.0, n_clean: Optional[int] = None, partners: str = "derangement",
             n_pass: Optional[int] = None, label_gradient: bool = True) -> HalfMix:
    """AdaMixUp's layout with any source of λ (π for AdaMixUp; a fixed distribution for the
    controls that share its layout).

    n_clean:        how many clean samples the clean loss covers (default all B).
    partners:       "derangement" or "permutation" (:func:`draw_partners`), one draw per mixing step.
    n_pass:         how many clean samples the backbone pass reads after the mixes (default all B;
                    at least ``n_clean``). BatchNorm's batch statistics depend on it.
    label_gradient: False treats the mixed targets as constants (the authors' TF1 loss stops the
                    gradient into its labels): λ then reaches the loss only through the mixed images.
    """
    b, m = x.shape[0], x.shape[0] // 2
    n = b if n_clean is None else n_clean
    n_pass = b if n_pass is None else n_pass
    if n_pass < n:
        raise ValueError(f"the backbone pass reads {n_pass} clean samples, fewer than the clean loss's {n}")
    drawn = [draw_partners(b, m, partners, x.device) for _ in range(k - 1)]
    xm, lam = recursive_mix(x, m, drawn, sample_lam)
    both = torch.cat([xm, x[:n_pass]])  # the ⌊B/2⌋ mixes, then the clean samples of the pass
    features, logits = features_and_logits(model, both)
    target = one_hot(y, check_logits(logits, y), label_smoothing)
    tm = mix_targets(target, m, drawn, lam if label_gradient else lam.detach())
    return HalfMix(m=m, both=both, mixed=xm, lam=lam, partners=drawn, features=features, logits=logits,
                   target=target, mixed_targets=tm, mixed_loss=soft_cross_entropy(logits[:m], tm),
                   clean_loss=soft_cross_entropy(logits[m : m + n], target[:n]))
