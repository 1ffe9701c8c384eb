"""AdaMixUp (Guo, Mao, Zhang, "MixUp as Locally Linear Out-of-Manifold Regularization", AAAI 2019).

MixUp whose mixing ratio is chosen per pair by a learned policy region generator π and kept off
the data manifold by an intrusion discriminator φ. The classifier, π and φ minimize one loss
together: L = L_clean + L_mixed + w * L_intrusion (cooperative, one optimizer, no alternation).
"""
from __future__ import annotations

import copy
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.base import ProtocolModel, feature_dim, infer_in_channels, pooled_features
from .base import MixOutput, check_batch, check_model, derangement, half_mix, mix_pair, model_num_classes  # noqa: F401

INPUT_MODES = ("concat", "noisy_mean")
CLEAN_LOSS = ("all", "mixed_half")
INTRUSION_BACKBONE = ("shared", "fixed", "own", "light")
MIXED_LOSS = ("ce", "kl")
_NO_CHANNELS = ("cannot tell how many channels {} reads (no in_channels attribute, convolution or timm "
                "pretrained_cfg): pass AdaMixUp(model, in_channels=C)")
# where the package defaults leave the paper (Guo, Mao, Zhang, AAAI 2019): ``AdaMixUp.paper`` applies these
PAPER_SETTINGS = {"mixed_loss": "ce", "min_width": 0.0, "intrusion_backbone": "shared"}


class LightPolicyBody(ProtocolModel):
    """A small convolutional body for π or φ (two strided convolutions; global pooling in
    ``forward_head``), for when a copy of the classifier is too expensive. No classifier:
    ``forward_head`` returns the pooled ``(N, width)`` features."""

    def __init__(self, in_channels: int, width: int = 32):
        super().__init__()
        self.in_channels, self.num_features, self.num_classes = in_channels, width, 0
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        return self.net(x)


def _fresh_copy(model: nn.Module) -> nn.Module:
    """The model's architecture with newly initialized weights and no classifier head: every
    submodule's ``reset_parameters``, and the model's own ``init_weights()`` where it has one (timm's
    vision transformers: position embeddings and class tokens). Parameters that neither resets start
    as copies of the model's (independent tensors)."""
    body = copy.deepcopy(model)
    for module in body.modules():
        if hasattr(module, "reset_parameters") and module is not body:
            module.reset_parameters()
    init = getattr(body, "init_weights", None)
    if callable(init):
        init()
    if hasattr(body, "reset_classifier"):
        body.reset_classifier(0)
    return body


class PolicyRegionGenerator(nn.Module):
    """π: maps a pair of inputs to a region [α, α + Δ] ⊆ [0, 1] and samples λ in it.

    A softmax over three outputs (p_α, p_Δ, slack) guarantees α + Δ ≤ 1; λ = α + Δ·u with
    u ~ U(0, 1) per pair, a reparameterization through which gradients reach π. With a minimum width
    δ, α = (1 − δ)·p_α and Δ = δ + (1 − δ)·p_Δ: every region is at least δ wide (δ = 0: the paper).

    body:        a module following the model protocol (its pooled pre-logits features are read, see
                 :func:`adamixup.models.pooled_features`), or a plain module whose ``forward``
                 returns ``(N, D)`` features and which has a ``num_features`` attribute D.
    input_mode:  "concat": the pair stacked on the channel axis (the paper's π(X)); "noisy_mean":
                 w·x1 + (1−w)·x2 with w ~ U(0, 1) per pair (the authors' code).
    in_channels: C of one input; with ``adapter=True`` the stacked pair (2C channels) passes a learned
                 1×1 convolution to C channels first, so that a body built for C channels reads it.
    min_width:   δ in [0, 1), the narrowest region π may choose.
    """

    def __init__(self, body: nn.Module, input_mode: str = "concat", in_channels: Optional[int] = None, adapter: bool = False,
                 min_width: float = 0.0):
        super().__init__()
        if input_mode not in INPUT_MODES:
            raise ValueError(f"policy input_mode must be one of {', '.join(INPUT_MODES)}, got {input_mode!r}")
        if not 0.0 <= min_width < 1.0:
            raise ValueError(f"min_width must be in [0, 1), got {min_width}")
        self.min_width = float(min_width)
        num_features = getattr(body, "num_features", None)
        if not isinstance(num_features, int):
            raise TypeError(f"the policy body {type(body).__name__} needs an integer num_features attribute")
        self.protocol = hasattr(body, "forward_head")
        if self.protocol:
            num_features = feature_dim(body)
        self.input_mode = input_mode
        self.adapter = None
        if adapter and input_mode == "concat":
            if not in_channels:
                raise ValueError("the model does not state its input channels: pass AdaMixUp(model, in_channels=C)")
            self.adapter = nn.Conv2d(2 * in_channels, in_channels, kernel_size=1)
        self.body = body
        self.region_head = nn.Linear(num_features, 3)

    def region(self, a: Tensor, b: Tensor) -> "tuple[Tensor, Tensor]":
        """(α, Δ) for each pair, each ``(M,)``, in float32."""
        if self.input_mode == "concat":
            inputs = torch.cat([a, b], dim=1)
            if self.adapter is not None:
                inputs = self.adapter(inputs)
        else:
            inputs = mix_pair(a, b, torch.rand(a.shape[0], device=a.device))
        features = pooled_features(self.body, inputs) if self.protocol else self.body(inputs)
        p = F.softmax(self.region_head(features).float(), dim=1)
        free = 1.0 - self.min_width
        return free * p[:, 0], self.min_width + free * p[:, 1]

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        alpha, delta = self.region(a, b)
        return alpha + delta * torch.rand_like(alpha)


class _FeaturesOnly(nn.Module):
    """``forward`` = the wrapped model's pooled features, for ``torch.func.functional_call``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return pooled_features(self.model, x)


def _fixed_features(model: nn.Module, x: Tensor) -> Tensor:
    """The model's pooled features of ``x`` with its parameters detached (gradients reach ``x``
    only) and its buffers copied (BatchNorm's running statistics are not updated a second time)."""
    from torch.func import functional_call

    state = {f"model.{k}": v.detach() for k, v in model.named_parameters()}
    state.update({f"model.{k}": v.clone() for k, v in model.named_buffers()})
    return functional_call(_FeaturesOnly(model), state, (x,))


class AdaMixUp(nn.Module):
    """AdaMixUp as a drop-in mixer: ``out = mixer(model, x, y)``.

    model:            the classifier (timm protocol); used here only to size π and φ, not stored.
    in_channels:      channels of one input image (default: ``model.in_channels``, else the model's
                      first convolution, else timm's ``pretrained_cfg``).
    k:                inputs per mixed sample; k > 2 mixes the first k-1 recursively with the same π.
    policy:           π's body: "same" (the classifier's architecture with its own weights, the
                      paper's choice), "light" (:class:`LightPolicyBody`) or any module with
                      ``num_features``.
    input_mode:       "concat" (default, the paper) or "noisy_mean" (the authors' code).
    intrusion_weight: w in L = L_clean + L_mixed + w·L_intrusion.
    intrusion_hidden: width of a hidden layer in φ (0: φ is one linear layer on the features).
    clean_loss:       "all": the clean cross-entropy covers all B samples (default); "mixed_half":
                      only the half that is mixed, as in the authors' code.
    intrusion_backbone: what φ reads. "light" (default): the images, through its own small body
                      (:class:`LightPolicyBody`), so the intrusion loss trains φ and π but not the
                      classifier; costs a pass of that small body over the 1.5·B images. "own":
                      the same with the classifier's architecture (own weights) as φ's body; costs
                      a second full backbone pass. "shared" (the paper): the classifier's features
                      from the step's one backbone pass, so the intrusion loss also trains the
                      classifier's backbone to tell mixes from real samples. "fixed": those
                      features with the backbone's weights held fixed for φ (the clean ones
                      detached, the mixes through a second pass whose gradients reach only π);
                      costs an extra forward and input-gradient pass over the ⌊B/2⌋ mixes.
    label_smoothing:  ε of the one-hot targets before they are mixed.
    mixed_loss:       "kl" (default): the mixed samples' soft cross-entropy minus the mixed label's
                      entropy H(ỹ) — identical gradients for the classifier, but π no longer lowers
                      the loss by moving λ towards 0 or 1 where H(ỹ) vanishes; "ce": the soft
                      cross-entropy itself (the paper).
    min_width:        δ, the narrowest region [α, α + Δ] π may choose (default 0.4; 0: the paper).
    train_policy:     False freezes π at its initialization (a control: does learning π matter?);
                      its parameters then do not require gradients and an optimizer built from
                      the trainable parameters leaves them alone.

    The defaults differ from the paper in ``mixed_loss``, ``min_width`` and ``intrusion_backbone``
    only: with the paper's settings π collapsed to λ ≈ 0 or 1 on our MNIST runs and the shared
    backbone cost the classifier accuracy (README, Results). ``AdaMixUp.paper(model, ...)`` builds
    the paper's settings (:data:`PAPER_SETTINGS`).

    Batch split: the first ⌊B/2⌋ samples are mixed, each with partners from a random derangement of
    that half; the remaining ⌈B/2⌉ ("unseen") are not mixed. One backbone pass reads the mixed and
    all B clean samples; the classifier head reads those features, and φ its own body's (or, with
    ``intrusion_backbone="shared"``, the same ones).
    """

    min_batch = 4

    def __init__(
        self,
        model: nn.Module,
        in_channels: Optional[int] = None,
        k: int = 2,
        policy: Union[str, nn.Module] = "same",
        input_mode: str = "concat",
        intrusion_weight: float = 1.0,
        intrusion_hidden: int = 0,
        clean_loss: str = "all",
        label_smoothing: float = 0.0,
        intrusion_backbone: str = "light",
        mixed_loss: str = "kl",
        min_width: float = 0.4,
        train_policy: bool = True,
    ):
        super().__init__()
        check_model(model)
        if k < 2:
            raise ValueError(f"AdaMixUp mixes k >= 2 inputs, got k={k}")
        if clean_loss not in CLEAN_LOSS:
            raise ValueError(f"clean_loss must be one of {', '.join(CLEAN_LOSS)}, got {clean_loss!r}")
        if intrusion_backbone not in INTRUSION_BACKBONE:
            raise ValueError(f"intrusion_backbone must be one of {', '.join(INTRUSION_BACKBONE)}, got {intrusion_backbone!r}")
        if mixed_loss not in MIXED_LOSS:
            raise ValueError(f"mixed_loss must be one of {', '.join(MIXED_LOSS)}, got {mixed_loss!r}")
        if intrusion_weight < 0:
            raise ValueError(f"intrusion_weight must be >= 0, got {intrusion_weight}")
        in_channels = in_channels or infer_in_channels(model)
        if isinstance(policy, nn.Module):
            self.policy = PolicyRegionGenerator(policy, input_mode, min_width=min_width)
        elif policy == "same":
            self.policy = PolicyRegionGenerator(_fresh_copy(model), input_mode, in_channels, adapter=True, min_width=min_width)
        elif policy == "light":
            if not in_channels:
                raise ValueError(_NO_CHANNELS.format(type(model).__name__))
            width = in_channels * (2 if input_mode == "concat" else 1)
            self.policy = PolicyRegionGenerator(LightPolicyBody(width), input_mode, min_width=min_width)
        else:
            raise ValueError(f"policy must be 'same', 'light' or a module, got {policy!r}")
        d = feature_dim(model)
        # φ's own body ("own", "light"): φ sees pixels, not the classifier's features
        self.intrusion_body = None
        if intrusion_backbone == "own":
            self.intrusion_body = _fresh_copy(model)
            d = feature_dim(self.intrusion_body)
        elif intrusion_backbone == "light":
            if not in_channels:
                raise ValueError(_NO_CHANNELS.format(type(model).__name__))
            self.intrusion_body = LightPolicyBody(in_channels)
            d = self.intrusion_body.num_features
        if intrusion_hidden:
            self.intrusion_head = nn.Sequential(nn.Linear(d, intrusion_hidden), nn.ReLU(inplace=True), nn.Linear(intrusion_hidden, 2))
        else:
            self.intrusion_head = nn.Linear(d, 2)
        self.k, self.intrusion_weight = int(k), float(intrusion_weight)
        self.clean_loss, self.label_smoothing = clean_loss, float(label_smoothing)
        self.intrusion_backbone, self.mixed_loss = intrusion_backbone, mixed_loss
        self.train_policy = bool(train_policy)
        if not self.train_policy:  # the "pi-frozen" control: π keeps its initial weights
            self.policy.requires_grad_(False)

    @classmethod
    def paper(cls, model: nn.Module, **kwargs) -> "AdaMixUp":
        """AdaMixUp as the paper states it: soft cross-entropy on the mixes, no minimum region width,
        φ on the classifier's features."""
        clash = sorted(set(kwargs) & set(PAPER_SETTINGS))
        if clash:
            raise TypeError(f"AdaMixUp.paper fixes {', '.join(clash)}; use AdaMixUp(...) to set them")
        return cls(model, **PAPER_SETTINGS, **kwargs)

    def forward(self, model: nn.Module, x: Tensor, y: Tensor) -> MixOutput:
        check_model(model)
        check_batch(x, y, self.min_batch, "AdaMixUp", model_num_classes(model))
        b = x.shape[0]
        h = half_mix(model, x, y, self.k, self.policy, self.label_smoothing,
                     n_clean=b if self.clean_loss == "all" else b // 2)
        m, xm, lam, features, tm = h.m, h.mixed, h.lam, h.features, h.mixed_targets
        mixed_loss, clean_loss = h.mixed_loss, h.clean_loss
        if self.mixed_loss == "kl":
            mixed_loss = mixed_loss + (tm * tm.clamp_min(1e-12).log()).sum(dim=1).mean()  # − H(ỹ)

        # φ: mixed samples are "off the manifold" (1), real ones are not (0); each side averaged.
        if self.intrusion_backbone == "shared":
            intr_features = features
        elif self.intrusion_body is not None:
            intr_features = pooled_features(self.intrusion_body, h.both)
        else:
            intr_features = torch.cat([_fixed_features(model, xm), features[m:].detach()])
        intr_logits = self.intrusion_head(intr_features).float()
        intr_labels = torch.cat([x.new_ones(m, dtype=torch.long), x.new_zeros(b, dtype=torch.long)])
        intrusion_loss = F.cross_entropy(intr_logits[:m], intr_labels[:m]) + F.cross_entropy(intr_logits[m:], intr_labels[m:])
        loss = clean_loss + mixed_loss + self.intrusion_weight * intrusion_loss
        with torch.no_grad():
            intr_acc = (intr_logits.argmax(1) == intr_labels).float().mean()
        return MixOutput(
            loss=loss,
            terms={"clean": clean_loss.detach(), "mixed": mixed_loss.detach(), "intrusion": intrusion_loss.detach()},
            lam=lam.detach().reshape(-1),
            features=features[m:],
            targets=y,
            partners=torch.stack(h.partners),
            mixed=xm.detach(),
            mixed_targets=tm.detach(),
            stats={"intrusion_acc": intr_acc},
        )
