"""``AdaMixUp.paper`` against the authors' released training step, transcribed line by line.

The reference is ``GitHub.AdaMixup.AAAI.MNIST.Cifar.py`` in the public repository SITE5039/AdaMixUp
(TF1 / tensorpack, commit 9e47ba0); the line numbers below are that file's. The transcription is
plain PyTorch written from the TF graph, not from our code: it is fed the same weights, the same
permutation, gate noise and u as ``paper()`` (injected through the step's draw functions), and the
loss and every parameter's gradient must agree.

Where a line of the TF file has no counterpart (the random shuffles of lines 280 and 362), the
transcription keeps it, with its own random order: a mean over a shuffled batch is the same mean,
and BatchNorm's batch statistics do not depend on order, which is why ``paper()`` leaves them out.
Dropout is set to 0 so that both sides see the same network (its masks are random draws that the
two sides could not share). Weight decay (line 408) is the optimizer's, not the step's.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adamixup import AdaMixUp
from adamixup.mixing import adamixup as adamixup_module
from adamixup.mixing import base as mixing_base
from adamixup.models import AuthorsCNN, SmallCNN, pooled_features
from adamixup.models.base import ProtocolModel


class ReleasedMNISTInput(AuthorsCNN):
    """The released MNIST network reads [0, 1] pixels and scales them to [−1, 1] itself (lines 223,
    313); ours leaves scaling to the data pipeline. For the comparison, the scaling goes inside."""

    def forward_features(self, x):
        return super().forward_features(x * 2 - 1)


def released_mnist_net(net: AuthorsCNN, image: torch.Tensor) -> torch.Tensor:
    """Lines 313–322 (and 223–232, the same layers in π's scope), with ``net``'s weights."""
    conv = [layer for layer in net.features if isinstance(layer, nn.Conv2d)]
    image = image * 2 - 1                                                   # 313 (channels already on axis 1)
    c0 = F.relu(F.conv2d(image, conv[0].weight, conv[0].bias, padding=1))   # 315: 3×3, 32, ReLU, "same"
    p0 = F.max_pool2d(c0, 2)                                                # 316
    c1 = F.relu(F.conv2d(p0, conv[1].weight, conv[1].bias, padding=1))     # 317
    c2 = F.relu(F.conv2d(c1, conv[2].weight, conv[2].bias, padding=1))     # 318
    p1 = F.max_pool2d(c2, 2)                                                # 319
    c3 = F.relu(F.conv2d(p1, conv[3].weight, conv[3].bias, padding=1))     # 320
    fc1 = F.relu(F.linear(c3.flatten(1), net.fc.weight, net.fc.bias))       # 321 (flattened in the weights' C, H, W order)
    return F.dropout(fc1, net.dropout.p, training=True)                     # 322 (p = 0 in these tests)


def softmax_cross_entropy_with_logits(labels, logits):
    """TF1's ``tf.nn.softmax_cross_entropy_with_logits``: per-row cross-entropy; backpropagation
    happens only into ``logits`` (TF1's documented behaviour, which its v2 changed)."""
    return -(labels.detach() * F.log_softmax(logits, dim=1)).sum(1)


def released_step(share_net, gate_net, classifier, gate_linear, gate_linear2, linear001, linear2,
                  images, labels, index, m1, m2, uni):
    """The loss of ``ResNet_Cifar_AdaMixup.build_graph`` in training, weight decay left out.

    share_net / gate_net: the classifier's and π's networks (pooled features); classifier, gate_*,
    linear*: the named fully connected layers of lines 235, 237, 370, 378, 380. images, labels: a
    batch and its one-hot labels; index: the data pipeline's permutation (line 453); m1, m2: the
    truncated normals of lines 205–206; uni: line 254's uniforms.
    """
    image_1, label_1 = images, labels                                         # 455-456
    image_2, label_2 = images[index], labels[index]
    half = images.shape[0] // 2
    image_1_f, image_1_s = image_1[:half], image_1[half:]                     # 183
    image_2_f = image_2[:half]                                                # 184
    label_1_f, label_2_f = label_1[:half], label_2[:half]                     # 185-186
    image_1, image_2, label_1, label_2 = image_1_f, image_2_f, label_1_f, label_2_f  # 188-191
    image_unseen = image_1_s                                                  # 193

    image_gate = (m1 * image_1 + m2 * image_2) / 2.0                          # 207
    gate = gate_net(image_gate)                                               # 223-233
    gate_2 = gate_linear(gate)                                                # 235
    gate_3 = gate_linear2(gate_2)                                             # 237
    cc = torch.softmax(gate_3, 1)                                             # 241
    a, b, _ = cc.split(1, 1)                                                  # 242
    alpha, alpha2 = a, b                                                      # 246, 248
    ran = alpha + uni * alpha2                                                # 255
    weight = ran                                                              # 258

    x_weight = weight.reshape(half, 1, 1, 1)                                  # 267 (images carry a channel axis here)
    y_weight = weight.reshape(half, 1)                                        # 271
    image_mix = image_1 * x_weight + image_2 * (1 - x_weight)                 # 273
    label_mix = label_1 * y_weight + label_2 * (1 - y_weight)                 # 274
    allimage = torch.cat([image_mix, image_1], 0)                             # 277
    alllabel = torch.cat([label_mix, label_1], 0)                             # 278
    idx = torch.randperm(allimage.shape[0])                                   # 280
    image, label_mix = allimage[idx], alllabel[idx]                           # 281-282

    net_mixup = share_net(image)                                              # 326
    binary_images_pos = torch.cat([image_unseen, image_1], 0)                 # 341
    binary_images_neg = image_mix                                             # 342
    labels_pos = F.one_hot(torch.ones(binary_images_pos.shape[0], dtype=torch.long), 2).to(images.dtype)   # 345-348
    labels_neg = F.one_hot(torch.zeros(binary_images_neg.shape[0], dtype=torch.long), 2).to(images.dtype)  # 350-353
    binary_images = torch.cat([binary_images_pos, binary_images_neg], 0)      # 356
    binary_labels = torch.cat([labels_pos, labels_neg], 0)                    # 357
    idx = torch.randperm(binary_images.shape[0])                              # 362
    binary_images, binary_labels = binary_images[idx], binary_labels[idx]     # 363-364
    net_discrimintor = share_net(binary_images)                               # 367

    logits = classifier(net_mixup)                                            # 370
    ce_cost1 = softmax_cross_entropy_with_logits(label_mix, logits).mean()    # 372-373
    extra = linear001(net_discrimintor)                                       # 378
    logits_2 = linear2(extra)                                                 # 380
    ce_cost2 = softmax_cross_entropy_with_logits(binary_labels, logits_2).mean()  # 383-384
    return (ce_cost1 + ce_cost2) / 1.0                                        # 388


def _inject(monkeypatch, index, m1, m2, uni):
    """Make ``paper()``'s draws the given ones: the partners are the permutation's first half."""
    noise = iter([m1, m2])
    monkeypatch.setattr(mixing_base, "draw_partners", lambda b, m, mode, device=None: index[:m])
    monkeypatch.setattr(adamixup_module, "gate_noise", lambda like: next(noise))
    monkeypatch.setattr(adamixup_module, "uniform_noise", lambda like: uni.view(-1))


def _compare(model, mixer, share_net, gate_net, monkeypatch, batch=8, size=12, classes=10, seed=0):
    torch.manual_seed(seed)
    model.double().train(), mixer.double().train()
    x = torch.rand(batch, 1, size, size, dtype=torch.float64)
    y = torch.arange(batch) % classes
    half = batch // 2
    index = torch.randperm(batch)
    m1 = nn.init.trunc_normal_(torch.empty(half, 1, size, size, dtype=torch.float64), 0, 1, -2, 2)
    m2 = nn.init.trunc_normal_(torch.empty(half, 1, size, size, dtype=torch.float64), 0, 1, -2, 2)
    uni = torch.rand(half, 1, dtype=torch.float64)
    params = [p for p in [*model.parameters(), *mixer.parameters()] if p.requires_grad]

    _inject(monkeypatch, index, m1, m2, uni)
    ours = mixer(model, x, y).loss
    ours_grads = torch.autograd.grad(ours, params, allow_unused=True)

    head = mixer.policy.region_head
    theirs = released_step(share_net, gate_net, model.head, head[0], head[1], mixer.intrusion_head[0],
                           mixer.intrusion_head[1], x, F.one_hot(y, classes).double(), index, m1, m2, uni)
    their_grads = torch.autograd.grad(theirs, params, allow_unused=True)

    # to 1e-5 of each tensor's scale: our losses run in float32 (soft_cross_entropy), the network here in float64
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    names = [n for n, p in [*model.named_parameters(), *(("mixer." + n, p) for n, p in mixer.named_parameters())] if p.requires_grad]
    for name, g_ours, g_theirs in zip(names, ours_grads, their_grads):
        g_ours = torch.zeros_like(g_theirs) if g_ours is None else g_ours
        g_theirs = torch.zeros_like(g_ours) if g_theirs is None else g_theirs
        scale = g_theirs.abs().max().item()
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-5 * scale, msg=lambda m: f"gradient of {name}: {m}")
    return ours_grads


def test_paper_equals_the_released_step_on_the_released_mnist_network(monkeypatch):
    """The authors' MNIST CNN (dropout 0): the classifier and π each with their own weights."""
    torch.manual_seed(0)
    model = ReleasedMNISTInput(num_classes=10, image_size=12, dropout=0.0)
    mixer = AdaMixUp.paper(model)
    grads = _compare(model, mixer, lambda img: released_mnist_net(model, img),
                     lambda img: released_mnist_net(mixer.policy.body, img), monkeypatch)
    # the comparison has teeth: every group of weights gets a gradient
    named = dict(zip([n for n, _ in [*model.named_parameters(), *(("mixer." + n, p) for n, p in mixer.named_parameters())]], grads))
    for prefix in ("features.0.", "head.", "mixer.policy.body.features.0.", "mixer.policy.region_head.", "mixer.intrusion_head."):
        assert any(g is not None and g.abs().sum() > 0 for n, g in named.items() if n.startswith(prefix)), prefix


def test_paper_equals_the_released_step_with_batchnorm(monkeypatch):
    """A network with BatchNorm: the classifier's pass must read the mixes and the mixed half's
    originals only, and φ's pass the unseen half, those originals and the mixes, as lines 277 and
    341–356 form them (batch statistics depend on which samples a pass holds)."""
    torch.manual_seed(1)
    model = SmallCNN(in_channels=1, num_classes=10, width=4)
    mixer = AdaMixUp.paper(model)
    _compare(model, mixer, lambda img: pooled_features(model, img),
             lambda img: pooled_features(mixer.policy.body, img), monkeypatch, batch=10)


def test_the_label_path_changes_the_gradient_so_the_reference_would_notice(monkeypatch):
    """With the label gradient on, π's gradient departs from the released step's: the transcription
    test can fail on exactly the difference the issue found."""
    torch.manual_seed(0)
    model = ReleasedMNISTInput(num_classes=10, image_size=12, dropout=0.0)
    settings = {**adamixup_module.PAPER_SETTINGS, "label_gradient": True}
    mixer = AdaMixUp(model, **settings)
    with pytest.raises(AssertionError, match="gradient of mixer.policy"):
        _compare(model, mixer, lambda img: released_mnist_net(model, img),
                 lambda img: released_mnist_net(mixer.policy.body, img), monkeypatch)


class BlindModel(ProtocolModel):
    """A classifier whose features ignore its input (multiplied by 0, so that the input stays in the
    graph and a gradient reaching it is exactly zero rather than absent)."""

    def __init__(self, in_channels=1, num_classes=10, dim=6):
        super().__init__()
        self.in_channels, self.num_classes, self.num_features = in_channels, num_classes, dim
        self.const = nn.Parameter(torch.randn(dim))
        self.scale = nn.Parameter(torch.ones(1))
        self.head = nn.Linear(dim, num_classes)

    def forward_features(self, x):
        return self.const.expand(x.shape[0], -1) * self.scale + 0 * x.flatten(1).sum(1, keepdim=True)


@pytest.mark.parametrize("label_gradient", [False, True])
def test_policy_learns_only_through_the_mixed_images(label_gradient):
    """The released step: with features that ignore the images, π's gradients are exactly zero.
    With the label path on, π learns through ỹ alone, and its gradients are not zero."""
    torch.manual_seed(0)
    model = BlindModel()
    mixer = AdaMixUp(model, **{**adamixup_module.PAPER_SETTINGS, "label_gradient": label_gradient})
    x, y = torch.randn(8, 1, 6, 6), torch.arange(8) % 10
    out = mixer(model, x, y)
    grads = torch.autograd.grad(out.loss, list(mixer.policy.region_head.parameters()), allow_unused=True, retain_graph=True)
    total = sum(g.abs().sum().item() for g in grads if g is not None)
    if label_gradient:
        assert total > 0
    else:
        assert total == 0.0
    # the classifier still learns from the step either way
    assert torch.autograd.grad(out.loss, model.head.weight)[0].abs().sum() > 0


def test_paper_starts_with_the_region_one_third_to_two_thirds():
    """Heads at N(0, 1e-3): the softmax starts at (1/3, 1/3, 1/3), so α ≈ Δ ≈ 1/3 and λ ~ U(1/3, 2/3)."""
    torch.manual_seed(0)
    model = AuthorsCNN(num_classes=10)
    mixer = AdaMixUp.paper(model).train()
    x = torch.randn(64, 1, 28, 28)
    alpha, delta = mixer.policy.region(x[:32], x[32:])
    assert torch.allclose(alpha, torch.full_like(alpha, 1 / 3), atol=2e-3)
    assert torch.allclose(delta, torch.full_like(delta, 1 / 3), atol=2e-3)
    lam = mixer(model, x, torch.arange(64) % 10).lam
    assert lam.min() > 1 / 3 - 5e-3 and lam.max() < 2 / 3 + 5e-3
    assert lam.std() > 0.05  # spread over the region, not one value
