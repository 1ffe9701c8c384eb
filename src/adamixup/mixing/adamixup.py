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
from .base import PARTNERS, MixOutput, check_batch, check_model, half_mix, mix_pair, model_num_classes

INPUT_MODES = ("concat", "noisy_mean", "gate")
CLEAN_LOSS = ("all", "mixed_half")
INTRUSION_BACKBONE = ("shared", "second_pass", "fixed", "own", "light")
MIXED_LOSS = ("ce", "kl")
HEADS = ("linear", "two_linear")
LOSS_MEANS = ("separate", "pooled")
HEAD_INIT_STD = 1e-3  # the released code's heads: weights N(0, 1e-3), biases 0
POLICY_HIDDEN = 100   # the released π head: features -> 100 -> 3
_NO_CHANNELS = ("cannot tell how many channels {} reads (no in_channels attribute, convolution or timm "
                "pretrained_cfg): pass AdaMixUp(model, in_channels=C)")
# The authors' released training step (SITE5039/AdaMixUp, GitHub.AdaMixup.AAAI.MNIST.Cifar.py), where it
# differs from the package defaults; ``AdaMixUp.paper`` applies these (docs/algorithm.md lists each one).
PAPER_SETTINGS = {
    "input_mode": "gate",                 # π reads (m1·x1 + m2·x2)/2, m ~ N(0, 1) truncated at ±2 per element
    "heads": "two_linear",                # π: features -> 100 -> 3; φ: features -> C -> 2; N(0, 1e-3)
    "partners": "permutation",            # partners from a permutation of the whole batch
    "clean_loss": "mixed_half",           # the unseen half is φ's real examples only
    "loss_means": "pooled",               # one mean over the classifier's batch, one over φ's
    "intrusion_backbone": "second_pass",  # φ: a second pass of the shared backbone over its own batch
    "mixed_loss": "ce",
    "min_width": 0.0,
    "label_gradient": False,              # TF1's softmax_cross_entropy_with_logits stops the label gradient
}


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


def gate_noise(like: Tensor) -> Tensor:
    """Per-element noise of π's "gate" input: N(0, 1) truncated at ±2 (TF's ``truncated_normal``)."""
    return nn.init.trunc_normal_(torch.empty_like(like), mean=0.0, std=1.0, a=-2.0, b=2.0)


def uniform_noise(like: Tensor) -> Tensor:
    """u ~ U(0, 1), one per pair: λ = α + Δ·u."""
    return torch.rand_like(like)


def small_gaussian_(module: nn.Module) -> nn.Module:
    """The released code's initialization of its π and φ heads: every linear layer's weights
    N(0, 1e-3), biases 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0.0, HEAD_INIT_STD)
            nn.init.zeros_(layer.bias)
    return module


class PolicyRegionGenerator(nn.Module):
    """π: maps a pair of inputs to a region [α, α + Δ] ⊆ [0, 1] and samples λ in it.

    A softmax over three outputs (p_α, p_Δ, slack) guarantees α + Δ ≤ 1; λ = α + Δ·u with
    u ~ U(0, 1) per pair, a reparameterization through which gradients reach π. With a minimum width
    δ, α = (1 − δ)·p_α and Δ = δ + (1 − δ)·p_Δ: every region is at least δ wide (δ = 0: the paper).

    body:        a module following the model protocol (its pooled pre-logits features are read, see
                 :func:`adamixup.models.pooled_features`), or a plain module whose ``forward``
                 returns ``(N, D)`` features and which has a ``num_features`` attribute D.
    input_mode:  "concat": the pair stacked on the channel axis (the paper's π(X)); "gate":
                 (m1·x1 + m2·x2)/2 with m1, m2 ~ N(0, 1) truncated at ±2, drawn per element (the
                 authors' released code); "noisy_mean": w·x1 + (1−w)·x2 with one w ~ U(0, 1) per
                 pair (ours; neither the paper's nor the released input).
    in_channels: C of one input; with ``adapter=True`` the stacked pair (2C channels) passes a learned
                 1×1 convolution to C channels first, so that a body built for C channels reads it.
    min_width:   δ in [0, 1), the narrowest region π may choose.
    head:        "linear": one linear layer features -> 3 (PyTorch's initialization); "two_linear":
                 features -> 100 -> 3 with no activation between, weights N(0, 1e-3) (the released
                 code), so that π starts at α ≈ Δ ≈ 1/3: λ ~ U(1/3, 2/3).
    """

    def __init__(self, body: nn.Module, input_mode: str = "concat", in_channels: Optional[int] = None, adapter: bool = False,
                 min_width: float = 0.0, head: str = "linear"):
        super().__init__()
        if input_mode not in INPUT_MODES:
            raise ValueError(f"policy input_mode must be one of {', '.join(INPUT_MODES)}, got {input_mode!r}")
        if head not in HEADS:
            raise ValueError(f"heads must be one of {', '.join(HEADS)}, got {head!r}")
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
        if head == "linear":
            self.region_head = nn.Linear(num_features, 3)
        else:
            self.region_head = small_gaussian_(nn.Sequential(nn.Linear(num_features, POLICY_HIDDEN), nn.Linear(POLICY_HIDDEN, 3)))

    def inputs(self, a: Tensor, b: Tensor) -> Tensor:
        """What the body reads for the pairs (a, b)."""
        if self.input_mode == "concat":
            inputs = torch.cat([a, b], dim=1)
            return self.adapter(inputs) if self.adapter is not None else inputs
        if self.input_mode == "gate":
            return (gate_noise(a) * a + gate_noise(b) * b) / 2
        return mix_pair(a, b, torch.rand(a.shape[0], device=a.device))

    def region(self, a: Tensor, b: Tensor) -> "tuple[Tensor, Tensor]":
        """(α, Δ) for each pair, each ``(M,)``, in float32."""
        inputs = self.inputs(a, b)
        features = pooled_features(self.body, inputs) if self.protocol else self.body(inputs)
        p = F.softmax(self.region_head(features).float(), dim=1)
        free = 1.0 - self.min_width
        return free * p[:, 0], self.min_width + free * p[:, 1]

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        alpha, delta = self.region(a, b)
        return alpha + delta * uniform_noise(alpha)


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


def _num_classes(model: nn.Module) -> int:
    n = model_num_classes(model)
    if n is None:
        classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
        n = getattr(classifier, "out_features", None)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"heads='two_linear' sizes φ's hidden layer by the classes, and {type(model).__name__} "
                         "states none (no num_classes, no linear classifier)")
    return n


class AdaMixUp(nn.Module):
    """AdaMixUp as a drop-in mixer: ``out = mixer(model, x, y)``.

    model:            the classifier (timm protocol); used here only to size π and φ, not stored.
    in_channels:      channels of one input image (default: ``model.in_channels``, else the model's
                      first convolution, else timm's ``pretrained_cfg``).
    k:                inputs per mixed sample; k > 2 mixes the first k-1 recursively with the same π.
    policy:           π's body: "same" (the classifier's architecture with its own weights, the
                      paper's choice), "light" (:class:`LightPolicyBody`) or any module with
                      ``num_features``.
    input_mode:       what π reads: "concat" (default, the paper's text), "gate" (the released code),
                      "noisy_mean" (see :class:`PolicyRegionGenerator`).
    intrusion_weight: w in L = L_classifier + w·L_intrusion.
    intrusion_hidden: width of a hidden layer (ReLU) in φ's head (0: φ's head is one linear layer);
                      ignored with ``heads="two_linear"``.
    clean_loss:       "all": the clean cross-entropy covers all B samples (default); "mixed_half":
                      only the half that is mixed, as in the authors' code.
    label_smoothing:  ε of the one-hot targets before they are mixed.
    intrusion_backbone: what φ reads. "light" (default): the images, through its own small body
                      (:class:`LightPolicyBody`), so the intrusion loss trains φ and π but not the
                      classifier; costs a pass of that small body over the 1.5·B images. "own":
                      the same with the classifier's architecture (own weights) as φ's body; costs
                      a second full backbone pass. "second_pass" (the released code): a second
                      pass of the classifier's own backbone over φ's batch (the unseen half and
                      the mixed half's originals as real, the mixes), so the intrusion loss also
                      trains the classifier's backbone. "shared": the classifier's features from
                      the step's one backbone pass (no second pass). "fixed": those features with
                      the backbone's weights held fixed for φ (the clean ones detached, the mixes
                      through a second pass whose gradients reach only π); costs an extra forward
                      and input-gradient pass over the ⌊B/2⌋ mixes.
    mixed_loss:       "kl" (default): the mixed samples' soft cross-entropy minus the mixed label's
                      entropy H(ỹ): identical gradients for the classifier, and with
                      ``label_gradient=True`` π no longer lowers the loss by moving λ towards 0 or 1
                      where H(ỹ) vanishes; "ce": the soft cross-entropy itself (the paper).
    min_width:        δ, the narrowest region [α, α + Δ] π may choose (default 0.4; 0: the paper).
    train_policy:     False freezes π at its initialization (a control: does learning π matter?);
                      its parameters then do not require gradients and an optimizer built from
                      the trainable parameters leaves them alone.
    label_gradient:   True (default) lets π learn through the mixed labels ỹ as well as through the
                      mixed images; False treats ỹ as constants, as the released code does (TF1's
                      ``softmax_cross_entropy_with_logits`` stops the gradient into its labels).
    heads:            "linear" (default): π's head one linear layer, φ's one linear layer (or the
                      MLP of ``intrusion_hidden``), PyTorch's initialization; "two_linear" (the
                      released code): π features -> 100 -> 3, φ features -> C -> 2, no activation
                      between, weights N(0, 1e-3), so that π starts at λ ~ U(1/3, 2/3).
    partners:         "derangement" (default): partners from a derangement of the mixed half;
                      "permutation" (the released code): from a permutation of the whole batch.
    loss_means:       "separate" (default): L_classifier = mean over the mixes + mean over the clean
                      samples, L_intrusion = mean over the mixes + mean over the real ones;
                      "pooled" (the released code): one mean over each loss's pooled batch.

    The defaults differ from the authors' released step in the settings of :data:`PAPER_SETTINGS`
    (the docs say which a validation study chose); ``AdaMixUp.paper(model, ...)`` builds that step.

    Batch split: the first ⌊B/2⌋ samples are mixed; the remaining ⌈B/2⌉ ("unseen") are not mixed
    and are real examples for φ. One backbone pass reads the mixes and the clean samples (all B, or
    only the mixed half's originals when ``clean_loss="mixed_half"`` and φ has its own second pass);
    the classifier head reads those features, and φ its own body's, a second pass's, or the same ones.
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
        label_gradient: bool = True,
        heads: str = "linear",
        partners: str = "derangement",
        loss_means: str = "separate",
    ):
        super().__init__()
        check_model(model)
        if k < 2:
            raise ValueError(f"AdaMixUp mixes k >= 2 inputs, got k={k}")
        for name, value, choices in (("clean_loss", clean_loss, CLEAN_LOSS), ("intrusion_backbone", intrusion_backbone, INTRUSION_BACKBONE),
                                     ("mixed_loss", mixed_loss, MIXED_LOSS), ("heads", heads, HEADS),
                                     ("partners", partners, PARTNERS), ("loss_means", loss_means, LOSS_MEANS)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        if intrusion_weight < 0:
            raise ValueError(f"intrusion_weight must be >= 0, got {intrusion_weight}")
        in_channels = in_channels or infer_in_channels(model)
        if isinstance(policy, nn.Module):
            self.policy = PolicyRegionGenerator(policy, input_mode, min_width=min_width, head=heads)
        elif policy == "same":
            self.policy = PolicyRegionGenerator(_fresh_copy(model), input_mode, in_channels, adapter=True,
                                                min_width=min_width, head=heads)
        elif policy == "light":
            if not in_channels:
                raise ValueError(_NO_CHANNELS.format(type(model).__name__))
            width = in_channels * (2 if input_mode == "concat" else 1)
            self.policy = PolicyRegionGenerator(LightPolicyBody(width), input_mode, min_width=min_width, head=heads)
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
        if heads == "two_linear":
            c = _num_classes(model)
            self.intrusion_head = small_gaussian_(nn.Sequential(nn.Linear(d, c), nn.Linear(c, 2)))
        elif intrusion_hidden:
            self.intrusion_head = nn.Sequential(nn.Linear(d, intrusion_hidden), nn.ReLU(inplace=True), nn.Linear(intrusion_hidden, 2))
        else:
            self.intrusion_head = nn.Linear(d, 2)
        self.k, self.intrusion_weight = int(k), float(intrusion_weight)
        self.clean_loss, self.label_smoothing = clean_loss, float(label_smoothing)
        self.intrusion_backbone, self.mixed_loss = intrusion_backbone, mixed_loss
        self.label_gradient, self.heads, self.partners, self.loss_means = bool(label_gradient), heads, partners, loss_means
        self.train_policy = bool(train_policy)
        if not self.train_policy:  # the "pi-frozen" control: π keeps its initial weights
            self.policy.requires_grad_(False)

    @classmethod
    def paper(cls, model: nn.Module, **kwargs) -> "AdaMixUp":
        """AdaMixUp as the authors' released code trains it (:data:`PAPER_SETTINGS`), with their
        evident intent where that code is defective (docs/algorithm.md). ``kwargs``: the settings
        the released step leaves open (``k``, ``policy``, ``intrusion_weight``, ``label_smoothing``,
        ``in_channels``, ``train_policy``)."""
        clash = sorted(set(kwargs) & set(PAPER_SETTINGS))
        if clash:
            raise TypeError(f"AdaMixUp.paper fixes {', '.join(clash)}; use AdaMixUp(...) to set them")
        return cls(model, **PAPER_SETTINGS, **kwargs)

    def forward(self, model: nn.Module, x: Tensor, y: Tensor) -> MixOutput:
        check_model(model)
        check_batch(x, y, self.min_batch, "AdaMixUp", model_num_classes(model))
        b, m = x.shape[0], x.shape[0] // 2
        n_clean = b if self.clean_loss == "all" else m
        second_pass = self.intrusion_backbone == "second_pass"
        # the unseen half passes the classifier only where something reads it there
        n_pass = n_clean if second_pass else b
        h = half_mix(model, x, y, self.k, self.policy, self.label_smoothing, n_clean=n_clean,
                     partners=self.partners, n_pass=n_pass, label_gradient=self.label_gradient)
        xm, lam, features, tm = h.mixed, h.lam, h.features, h.mixed_targets
        mixed_loss, clean_loss = h.mixed_loss, h.clean_loss
        if self.mixed_loss == "kl":
            mixed_loss = mixed_loss + (tm * tm.clamp_min(1e-12).log()).sum(dim=1).mean()  # − H(ỹ)

        # φ's batch and which of its samples are real
        if second_pass:  # the released code's batch: the unseen half, the mixed half's originals, the mixes
            intr_features = pooled_features(model, torch.cat([x[m:], x[:m], xm]))
            real = torch.arange(m + b, device=x.device) < b
            if n_pass < b:  # the clean samples' features in batch order come from this pass
                features = torch.cat([intr_features[b - m : b], intr_features[: b - m]])
            else:
                features = features[m:]
        else:  # the mixes, then the B clean samples
            if self.intrusion_backbone == "shared":
                intr_features = features
            elif self.intrusion_body is not None:
                intr_features = pooled_features(self.intrusion_body, h.both)
            else:
                intr_features = torch.cat([_fixed_features(model, xm), features[m:].detach()])
            real = torch.arange(m + b, device=x.device) >= m
            features = features[m:]
        intr_logits = self.intrusion_head(intr_features).float()
        # φ's classes: the released code labels real samples 1 and mixes 0; the other modes keep the
        # package's original labels (mixes 1), so that their recorded runs replay exactly
        intr_labels = (real if second_pass else ~real).long()
        if self.loss_means == "pooled":
            classifier_loss = (m * mixed_loss + n_clean * clean_loss) / (m + n_clean)
            intrusion_loss = F.cross_entropy(intr_logits, intr_labels)
        else:
            classifier_loss = mixed_loss + clean_loss
            intrusion_loss = (F.cross_entropy(intr_logits[~real], intr_labels[~real])
                              + F.cross_entropy(intr_logits[real], intr_labels[real]))
        loss = classifier_loss + self.intrusion_weight * intrusion_loss
        with torch.no_grad():
            intr_acc = (intr_logits.argmax(1) == intr_labels).float().mean()
        return MixOutput(
            loss=loss,
            terms={"clean": clean_loss.detach(), "mixed": mixed_loss.detach(), "intrusion": intrusion_loss.detach()},
            lam=lam.detach().reshape(-1),
            features=features,
            targets=y,
            partners=torch.stack(h.partners),
            mixed=xm.detach(),
            mixed_targets=tm.detach(),
            stats={"intrusion_acc": intr_acc},
        )
