"""The method registry and the controls that isolate π and φ: their batch layouts and what they train."""
import pytest
import torch

from adamixup.mixing import METHODS, AdaMixUp, LayoutMixUp, MixUp, build_mixer, get_method
from adamixup.models import SmallCNN


def _batch(b=10, classes=10):
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, 1, 8, 8, generator=g), torch.arange(b) % classes


def _model():
    torch.manual_seed(0)
    return SmallCNN(in_channels=1, num_classes=10, width=4)


def test_every_method_builds_and_steps_at_its_smallest_batch():
    for name, method in METHODS.items():
        model = _model()
        mixer = build_mixer(name, model, in_channels=1)
        x, y = _batch(method.min_batch)
        out = mixer(model, x, y)
        out.loss.backward()
        assert torch.isfinite(out.loss), name
        if method.min_batch > 1:
            with pytest.raises(ValueError, match=f"at least {method.min_batch}"):
                mixer(model, *_batch(method.min_batch - 1))
    assert METHODS["erm"].min_batch == 1 and METHODS["mixup"].min_batch == 2 and METHODS["adamixup"].min_batch == 4


def test_registry_fixes_options_and_names_unknown_methods():
    paper = build_mixer("adamixup-paper", _model(), in_channels=1)
    assert (paper.mixed_loss, paper.intrusion_backbone, paper.label_gradient) == ("ce", "second_pass", False)
    assert "mixed_loss" not in METHODS["adamixup-paper"].options() and "mixed_loss" in METHODS["adamixup"].options()
    assert build_mixer("mixup-clean").include_clean and "include_clean" not in METHODS["mixup-clean"].options()
    assert build_mixer("fixed-region", low=0.2, high=0.6).lam == "uniform"
    with pytest.raises(ValueError, match="unknown method 'cutmix'; choose one of erm, mixup"):
        get_method("cutmix")


@pytest.mark.parametrize("name", ["mixup-matched", "fixed-region"])
def test_layout_controls_match_adamixup_layout(name):
    """⌊B/2⌋ mixes of the first half with a derangement, plus all B clean samples, in one pass;
    loss = clean (all B) + mixed; no φ, no π."""
    model = _model().eval()  # eval: BatchNorm gives each sample the same output in both passes
    mixer = build_mixer(name)
    assert not list(mixer.parameters())
    x, y = _batch(11)
    seen = []
    model.features.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    torch.manual_seed(3)
    out = mixer(model, x, y)
    m = 11 // 2
    assert seen == [m + 11]  # one backbone pass over the mixes and all clean samples
    assert out.partners.shape == (1, m) and (out.partners[0] != torch.arange(m)).all()  # a derangement of the first half
    assert set(out.partners[0].tolist()) == set(range(m))
    lam = out.lam
    expected = lam.view(-1, 1, 1, 1) * x[:m] + (1 - lam.view(-1, 1, 1, 1)) * x[out.partners[0]]
    torch.testing.assert_close(out.mixed, expected)
    assert out.features.shape == (11, model.num_features)
    torch.testing.assert_close(out.loss, out.terms["clean"] + out.terms["mixed"])
    logits = model(x)
    clean = torch.nn.functional.cross_entropy(logits, y)
    torch.testing.assert_close(out.terms["clean"], clean, atol=1e-5, rtol=1e-5)  # all B clean samples
    if name == "fixed-region":
        assert ((lam >= 0.3) & (lam <= 0.7)).all()


def test_fixed_region_and_matched_lambda_distributions():
    torch.manual_seed(0)
    a = torch.zeros(20000, 1)
    u = LayoutMixUp("uniform", low=0.3, high=0.7).sample_lam(a, a)
    assert 0.3 <= u.min() and u.max() <= 0.7 and abs(u.mean().item() - 0.5) < 0.01
    beta = LayoutMixUp("beta", alpha=0.4).sample_lam(a, a)
    # Beta(0.4, 0.4): mean 1/2, variance 1/(4(2α+1)) = 0.1389
    assert abs(beta.mean().item() - 0.5) < 0.01 and abs(beta.var().item() - 1 / 7.2) < 0.01
    with pytest.raises(ValueError, match="low < high"):
        LayoutMixUp("uniform", low=0.7, high=0.3)
    with pytest.raises(ValueError, match="lam must be one of"):
        LayoutMixUp("gamma")


def test_pi_frozen_trains_phi_and_classifier_not_pi():
    model = _model()
    mixer = build_mixer("pi-frozen", model, in_channels=1)
    assert isinstance(mixer, AdaMixUp) and not any(p.requires_grad for p in mixer.policy.parameters())
    before = {k: v.clone() for k, v in mixer.policy.state_dict().items() if "running" not in k and "num_batches" not in k}
    params = [p for p in (*model.parameters(), *mixer.parameters()) if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.5)
    x, y = _batch(10)
    phi_before = mixer.intrusion_head.weight.clone()
    for _ in range(3):
        out = mixer(model, x, y)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    after = mixer.policy.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert not torch.equal(phi_before, mixer.intrusion_head.weight)


def test_mixup_clean_is_mixup_plus_the_clean_loss():
    model = _model().eval()
    x, y = _batch(8)
    torch.manual_seed(5)
    plain = MixUp()(model, x, y)
    torch.manual_seed(5)
    clean = build_mixer("mixup-clean")(model, x, y)
    torch.testing.assert_close(clean.terms["mixed"], plain.terms["mixed"])
    torch.testing.assert_close(clean.loss, plain.loss + torch.nn.functional.cross_entropy(model(x), y), atol=1e-5, rtol=1e-5)
