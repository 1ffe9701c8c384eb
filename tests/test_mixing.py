"""Behaviour of the three mixers: ratios, targets, gradient paths, errors, determinism."""
import pytest
import torch
from torch import nn

from adamixup import ERM, AdaMixUp, MixUp
from adamixup.mixing import derangement, mix_pair, mix_targets, one_hot, soft_cross_entropy
from adamixup.mixing.adamixup import LightPolicyBody
from adamixup.models import ProtocolWrapper, SmallCNN


def batch(b=8, c=1, hw=8, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, hw, hw, generator=g), torch.randint(0, classes, (b,), generator=g)


class Counting(SmallCNN):
    """SmallCNN that counts backbone passes and records what the head read."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls, self.head_input = 0, None
        self.head.register_forward_hook(lambda mod, inp, out: setattr(self, "head_input", inp[0]))

    def forward_features(self, x):
        self.calls += 1
        return super().forward_features(x)


def test_one_hot_and_smoothing_are_probability_vectors():
    y = torch.tensor([0, 3, 9])
    t = one_hot(y, 10)
    assert torch.equal(t.argmax(1), y) and torch.allclose(t.sum(1), torch.ones(3))
    s = one_hot(y, 10, smoothing=0.1)
    assert torch.allclose(s.sum(1), torch.ones(3))
    assert s[0, 0].item() == pytest.approx(0.9 + 0.01) and s[0, 1].item() == pytest.approx(0.01)
    with pytest.raises(ValueError, match="smoothing"):
        one_hot(y, 10, smoothing=1.0)


def test_soft_cross_entropy_equals_hard_cross_entropy_on_one_hot():
    logits = torch.randn(5, 4)
    y = torch.tensor([0, 1, 2, 3, 1])
    assert soft_cross_entropy(logits, one_hot(y, 4)).item() == pytest.approx(
        nn.functional.cross_entropy(logits, y).item(), rel=1e-6
    )


def test_derangement_has_no_fixed_point():
    for n in (2, 3, 7, 64):
        for _ in range(20):
            p = derangement(n)
            assert sorted(p.tolist()) == list(range(n))
            assert not (p == torch.arange(n)).any()


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("policy", ["same", "light"])
def test_adamixup_lambda_inside_learned_region(k, policy):
    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    mixer = AdaMixUp(model, k=k, policy=policy)
    x, y = batch(10)
    alpha, delta = mixer.policy.region(x[:5], x[5:])
    assert (alpha >= 0).all() and (delta >= 0).all() and (alpha + delta <= 1 + 1e-6).all()
    lam = mixer.policy(x[:5], x[5:])
    assert ((lam >= alpha - 1e-6) & (lam <= alpha + delta + 1e-6)).all()
    out = mixer(model, x, y)
    assert out.lam.shape == ((k - 1) * 5,)
    assert ((out.lam >= 0) & (out.lam <= 1)).all()
    assert torch.allclose(out.mixed_targets.sum(1), torch.ones(5))


def test_lambda_one_returns_first_input_and_its_one_hot_exactly():
    x, y = batch(6)
    target = one_hot(y, 10)
    partners = [torch.tensor([1, 2, 0])]
    lam = torch.ones(1, 3)
    xm = mix_pair(x[:3], x[partners[0]], lam[0])
    assert torch.equal(xm, x[:3])
    assert torch.equal(mix_targets(target, 3, partners, lam), target[:3])


def test_adamixup_with_policy_pinned_at_one_mixes_nothing():
    """Drive π's region head to output α = 1: the mixed samples are the first inputs themselves.
    (The paper's settings: the package default's minimum region width keeps λ off 1.)"""
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    mixer = AdaMixUp.paper(model)
    last = mixer.policy.region_head[-1]  # the released head: features -> 100 -> 3
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([1e4, 0.0, 0.0]))
    x, y = batch(8)
    out = mixer(model, x, y)
    assert torch.equal(out.lam, torch.ones(4))
    assert torch.equal(out.mixed, x[:4])
    assert torch.equal(out.mixed_targets, one_hot(y[:4], 10))


@pytest.mark.parametrize("mixer_name", ["mixup", "adamixup"])
def test_recursive_k3_equals_mixing_by_hand(mixer_name):
    torch.manual_seed(1)
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    mixer = MixUp(k=3) if mixer_name == "mixup" else AdaMixUp(model, k=3)
    x, y = batch(8)
    out = mixer(model, x, y)
    m = out.mixed.shape[0]
    lam = out.lam.view(2, m)
    p1, p2 = out.partners
    l1, l2 = lam[0].view(-1, 1, 1, 1), lam[1].view(-1, 1, 1, 1)
    by_hand = l2 * (l1 * x[:m] + (1 - l1) * x[p1]) + (1 - l2) * x[p2]
    assert torch.allclose(out.mixed, by_hand, atol=1e-6)
    t = one_hot(y, 10)
    t_hand = lam[1, :, None] * (lam[0, :, None] * t[:m] + (1 - lam[0, :, None]) * t[p1]) + (1 - lam[1, :, None]) * t[p2]
    assert torch.allclose(out.mixed_targets, t_hand, atol=1e-6)
    assert torch.allclose(out.mixed_targets.sum(1), torch.ones(m))
    assert (out.mixed_targets >= 0).all()


def test_mixup_lambda_in_unit_interval_and_per_batch_option():
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    x, y = batch(16)
    out = MixUp(alpha=0.4)(model, x, y)
    assert out.lam.shape == (16,) and ((out.lam >= 0) & (out.lam <= 1)).all()
    assert out.lam.unique().numel() > 1
    out = MixUp(per_batch=True)(model, x, y)
    assert out.lam.unique().numel() == 1
    assert out.features is None and set(out.terms) == {"mixed"}
    out = MixUp(include_clean=True)(model, x, y)
    assert out.features.shape == (16, model.num_features) and set(out.terms) == {"mixed", "clean"}


def _grads(loss, params):
    grads = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    return sum(g.abs().sum().item() for g in grads if g is not None)


def _loss_at_weight(mixer, model, x, y, w, rng_state):
    """The mixer's loss with intrusion weight w, replaying the same random draws."""
    torch.set_rng_state(rng_state)
    mixer.intrusion_weight = w
    return mixer(model, x, y)


@pytest.mark.parametrize("input_mode", ["concat", "noisy_mean"])
def test_gradients_reach_policy_from_each_loss_and_intrusion_reaches_backbone(input_mode):
    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    mixer = AdaMixUp(model, input_mode=input_mode, intrusion_backbone="shared")  # the paper's φ
    x, y = batch(8)
    state = torch.get_rng_state()
    full = _loss_at_weight(mixer, model, x, y, 1.0, state)
    classifier_only = _loss_at_weight(mixer, model, x, y, 0.0, state).loss
    intrusion = full.loss - classifier_only  # exactly L_intrusion, with its graph
    assert intrusion.item() == pytest.approx(full.terms["intrusion"].item(), rel=1e-4)
    assert _grads(classifier_only, mixer.policy.parameters()) > 0
    assert _grads(intrusion, mixer.policy.parameters()) > 0
    assert _grads(intrusion, model.features.parameters()) > 0
    assert _grads(intrusion, mixer.intrusion_head.parameters()) > 0
    assert _grads(classifier_only, mixer.intrusion_head.parameters()) == 0


def test_one_backbone_pass_shared_by_classifier_and_discriminator():
    model = Counting(in_channels=1, num_classes=10, width=8)
    mixer = AdaMixUp(model, policy="light", intrusion_backbone="shared")
    seen = {}
    mixer.intrusion_head.register_forward_hook(lambda mod, inp, out: seen.setdefault("phi", inp[0]))
    x, y = batch(9)
    out = mixer(model, x, y)
    assert model.calls == 1
    assert seen["phi"] is model.head_input  # φ reads the very tensor the classifier head reads
    m = 9 // 2
    assert seen["phi"].shape[0] == m + 9 and out.features.shape == (9, model.num_features)
    assert torch.equal(out.targets, y)


def test_odd_batch_split_and_clean_loss_options():
    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    x, y = batch(7)
    out = AdaMixUp(model)(model, x, y)
    assert out.mixed.shape[0] == 3 and out.lam.shape == (3,)
    assert (out.partners < 3).all()  # partners come from the mixed half only
    half = AdaMixUp(model, clean_loss="mixed_half")
    seen = {}
    half.intrusion_head.register_forward_hook(lambda mod, inp, out: seen.setdefault("logits", out.detach()))
    torch.manual_seed(0)
    out_half = half(model, x, y)
    assert set(out_half.terms) == {"clean", "mixed", "intrusion"}
    # φ's accuracy: its argmax against "mixed" (1) for the 3 mixes and "real" (0) for the 7 clean samples
    labels = torch.tensor([1] * 3 + [0] * 7)
    expected = (seen["logits"].argmax(1) == labels).float().mean().item()
    assert out_half.stats["intrusion_acc"].item() == pytest.approx(expected)


def test_same_seed_same_losses():
    def run(mixer_fn):
        torch.manual_seed(3)
        model = SmallCNN(in_channels=1, num_classes=10, width=8)
        mixer = mixer_fn(model)
        x, y = batch(8)
        return mixer(model, x, y).loss.item()

    for fn in (lambda m: ERM(), lambda m: MixUp(), lambda m: AdaMixUp(m)):
        assert run(fn) == run(fn)


def test_autocast_bfloat16_on_cpu_runs():
    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    x, y = batch(8)
    for mixer in (ERM(), MixUp(), AdaMixUp(model)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = mixer(model, x, y)
        assert torch.isfinite(out.loss)
        out.loss.backward()


@pytest.mark.parametrize(
    "mixer_fn, b, msg",
    [
        (lambda m: MixUp(), 1, "at least 2"),
        (lambda m: AdaMixUp(m), 3, "at least 4"),
    ],
)
def test_too_small_batches_are_refused(mixer_fn, b, msg):
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    x, y = batch(b)
    with pytest.raises(ValueError, match=msg):
        mixer_fn(model)(model, x, y)


def test_bad_inputs_get_one_clear_error():
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    x, y = batch(8)
    for mixer in (ERM(), MixUp(), AdaMixUp(model)):
        with pytest.raises(ValueError, match="label 12 is out of range .* 10 classes"):
            mixer(model, x, torch.full((8,), 12))
        with pytest.raises(ValueError, match="label -1 is out of range"):
            mixer(model, x, torch.full((8,), -1))
        with pytest.raises(TypeError, match="float images"):
            mixer(model, (x * 255).to(torch.uint8), y)
        with pytest.raises(TypeError, match="integer class ids"):
            mixer(model, x, y.float())
        with pytest.raises(ValueError, match="one class id per image"):
            mixer(model, x, y[:5])
        with pytest.raises(TypeError, match="forward_features"):
            mixer(nn.Linear(3, 3), x, y)
    with pytest.raises(TypeError, match="model protocol"):
        AdaMixUp(nn.Conv2d(1, 1, 3))
    with pytest.raises(ValueError, match="policy"):
        AdaMixUp(model, policy="heavy")
    with pytest.raises(ValueError, match="input_mode"):
        AdaMixUp(model, input_mode="sum")
    with pytest.raises(ValueError, match="alpha"):
        MixUp(alpha=0)


def test_label_range_checked_from_head_when_model_states_no_classes():
    class Bare(nn.Module):  # protocol without num_classes
        num_features = 4

        def __init__(self):
            super().__init__()
            self.body, self.fc = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)), nn.Linear(4, 3)

        def forward_features(self, x):
            return self.body(x)

        def forward_head(self, f, pre_logits=False):
            return f if pre_logits else self.fc(f)

    x, y = batch(8, classes=3)
    model = Bare()
    assert torch.isfinite(MixUp()(model, x, y).loss)
    with pytest.raises(ValueError, match="label 5 is out of range for a model with 3 classes"):
        MixUp()(model, x, torch.full((8,), 5))


def test_wrapped_torchvision_model_and_custom_policy_body():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = ProtocolWrapper(resnet18(num_classes=5))
    assert model.num_features == 512 and model.num_classes == 5 and model.in_channels == 3
    body = SmallCNN(in_channels=6, num_classes=3, width=4)
    mixer = AdaMixUp(model, policy=body)
    x = torch.rand(8, 3, 32, 32)
    y = torch.randint(0, 5, (8,))
    out = mixer(model, x, y)
    out.loss.backward()
    assert body.head.weight.grad is None  # only forward_features of a given body is used
    assert body.features[0][0].weight.grad is not None


def test_policy_copy_has_own_weights_and_no_head():
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    mixer = AdaMixUp(model)
    body = mixer.policy.body
    assert isinstance(body.head, nn.Identity)
    w_model = model.features[0][0].weight
    w_policy = body.features[0][0].weight
    assert w_model.data_ptr() != w_policy.data_ptr() and not torch.equal(w_model, w_policy)
    ids = {id(p) for p in model.parameters()}
    assert not any(id(p) in ids for p in mixer.parameters())


def test_fixed_intrusion_backbone_trains_policy_but_not_backbone():
    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    mixer = AdaMixUp(model, intrusion_backbone="fixed")
    x, y = batch(8)
    bn = model.features[0][1]
    real_buffer = bn.running_mean.data_ptr()
    seen = []
    bn.register_forward_pre_hook(lambda mod, inp: seen.append(mod.running_mean.data_ptr()))
    state = torch.get_rng_state()
    full = _loss_at_weight(mixer, model, x, y, 1.0, state)
    assert len(seen) == 2 and seen.count(real_buffer) == 1  # two passes, one BatchNorm update
    classifier_only = _loss_at_weight(mixer, model, x, y, 0.0, state).loss
    intrusion = full.loss - classifier_only
    assert _grads(intrusion, model.parameters()) == 0  # the backbone is not trained to spot mixing
    assert _grads(intrusion, mixer.policy.parameters()) > 0  # π still hears φ, through the mixes
    assert _grads(intrusion, mixer.intrusion_head.parameters()) > 0
    with pytest.raises(ValueError, match="intrusion_backbone"):
        AdaMixUp(model, intrusion_backbone="frozen")


@pytest.mark.parametrize("body", ["own", "light"])
def test_own_intrusion_backbone_reads_pixels_and_leaves_the_classifier_alone(body):
    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    mixer = AdaMixUp(model, intrusion_backbone=body)
    ids = {id(p) for p in model.parameters()}
    assert not any(id(p) in ids for p in mixer.intrusion_body.parameters())  # φ's body is its own
    x, y = batch(8)
    state = torch.get_rng_state()
    full = _loss_at_weight(mixer, model, x, y, 1.0, state)
    intrusion = full.loss - _loss_at_weight(mixer, model, x, y, 0.0, state).loss
    assert _grads(intrusion, model.parameters()) == 0  # the classifier is not trained to spot mixing
    assert _grads(intrusion, mixer.intrusion_body.parameters()) > 0  # φ's body is
    assert _grads(intrusion, mixer.policy.parameters()) > 0  # and π hears φ through the mixes
    assert full.features.shape == (8, model.num_features)  # the clean features are still the classifier's


def test_min_width_keeps_every_region_at_least_that_wide():
    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    mixer = AdaMixUp(model, min_width=0.3)
    with torch.no_grad():  # push π's softmax to a degenerate region: all mass on the slack output
        mixer.policy.region_head.weight.zero_()
        mixer.policy.region_head.bias.copy_(torch.tensor([0.0, -50.0, 50.0]))
    x, _ = batch(10)
    alpha, delta = mixer.policy.region(x[:5], x[5:])
    assert torch.allclose(delta, torch.full((5,), 0.3)) and (alpha + delta <= 1 + 1e-6).all()
    with pytest.raises(ValueError, match="min_width"):
        AdaMixUp(model, min_width=1.0)


def test_kl_mixed_loss_is_cross_entropy_minus_label_entropy_with_same_classifier_gradients():
    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    x, y = batch(8)
    outs, grads = {}, {}
    for form in ("ce", "kl"):
        torch.manual_seed(0)
        mixer = AdaMixUp(model, mixed_loss=form)
        torch.manual_seed(1)
        out = mixer(model, x, y)
        outs[form] = out
        grads[form] = torch.autograd.grad(out.loss, [model.head.weight, mixer.policy.region_head.weight])
    tm = outs["ce"].mixed_targets
    entropy = -(tm * tm.clamp_min(1e-12).log()).sum(1).mean()
    assert entropy > 0.1  # the pairs really are mixed
    assert torch.equal(outs["ce"].lam, outs["kl"].lam)
    assert (outs["ce"].terms["mixed"] - outs["kl"].terms["mixed"]).item() == pytest.approx(entropy.item(), rel=1e-5)
    assert torch.allclose(grads["ce"][0], grads["kl"][0], atol=1e-6)  # H(ỹ) does not depend on the classifier
    assert not torch.allclose(grads["ce"][1], grads["kl"][1], atol=1e-6)  # but it does on λ, hence π
    with pytest.raises(ValueError, match="mixed_loss"):
        AdaMixUp(model, mixed_loss="mse")


def test_paper_constructor_sets_the_paper_settings_and_defaults_differ_only_there():
    import inspect

    from adamixup.mixing import PAPER_SETTINGS

    model = SmallCNN(in_channels=1, num_classes=10, width=8)
    paper, default = AdaMixUp.paper(model, intrusion_weight=2.0), AdaMixUp(model)
    assert (paper.mixed_loss, paper.policy.min_width, paper.intrusion_weight) == ("ce", 0.0, 2.0)
    assert (paper.intrusion_backbone, paper.intrusion_body, paper.label_gradient) == ("second_pass", None, False)
    assert (paper.policy.input_mode, paper.heads, paper.partners, paper.loss_means, paper.clean_loss) == (
        "gate", "two_linear", "permutation", "pooled", "mixed_half")
    assert (default.mixed_loss, default.policy.min_width, default.intrusion_backbone) == ("kl", 0.4, "light")
    assert isinstance(default.intrusion_body, LightPolicyBody)
    defaults = {k: p.default for k, p in inspect.signature(AdaMixUp.__init__).parameters.items()}
    # every setting the released step fixes differs from a package default (else it would not be listed)
    assert {k for k, v in PAPER_SETTINGS.items() if defaults[k] != v} == set(PAPER_SETTINGS)
    with pytest.raises(TypeError, match="fixes min_width"):
        AdaMixUp.paper(model, min_width=0.2)
