"""Model protocol, registry, wrapper; and the acceptance check: each mixer overfits a tiny batch."""
import pytest
import torch
from torch import nn

from adamixup import ERM, AdaMixUp, MixUp
from adamixup.models import (MODELS, PreActResNet18, ProtocolWrapper, SmallCNN, build_model, features_and_logits,
                             pooled_features)


@pytest.mark.parametrize("hw", [28, 8])
def test_small_cnn_protocol_on_both_digit_sizes(hw):
    model = SmallCNN(in_channels=1, num_classes=10)
    x = torch.rand(3, 1, hw, hw)
    f = model.forward_features(x)  # timm's protocol: the unpooled map
    assert f.shape == (3, 128, hw // 4, hw // 4)
    pooled = pooled_features(model, x)
    assert pooled.shape == (3, model.num_features) == (3, 128)
    assert torch.allclose(pooled, f.mean(dim=(2, 3)), atol=1e-6)
    assert torch.equal(model(x), model.forward_head(f))
    feats, logits = features_and_logits(model, x)
    assert torch.equal(feats, pooled) and torch.allclose(logits, model(x), atol=1e-6)


def test_preact_resnet18_shapes_and_size():
    model = PreActResNet18(num_classes=100).eval()
    x = torch.rand(2, 3, 32, 32)
    assert model.forward_features(x).shape == (2, 512, 4, 4)
    assert pooled_features(model, x).shape == (2, 512)
    assert model(x).shape == (2, 100)
    n = sum(p.numel() for p in model.parameters())
    assert 11.0e6 < n < 11.5e6  # PreAct-ResNet-18 for 100 classes: about 11.2 M parameters


def test_registry_and_unknown_name():
    assert set(MODELS) >= {"small_cnn", "preact_resnet18"}
    assert isinstance(build_model("small_cnn", num_classes=3), SmallCNN)
    with pytest.raises(ValueError, match="unknown model 'resnet9'"):
        build_model("resnet9")
    with pytest.raises(ValueError, match="model_args.depth is not an option of small_cnn"):
        build_model("small_cnn", depth=3)


def test_reset_classifier_follows_timm():
    model = SmallCNN(num_classes=10)
    model.reset_classifier(0)
    assert isinstance(model.head, nn.Identity) and model(torch.rand(2, 1, 8, 8)).shape == (2, 128)
    model.reset_classifier(4)
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 4) and model.num_classes == 4


def test_wrapper_matches_the_wrapped_network():
    from torchvision.models import mobilenet_v3_small, resnet18

    net = resnet18(num_classes=7).eval()
    x = torch.rand(2, 3, 64, 64)
    expected = net(x)
    wrapped = ProtocolWrapper(net).eval()
    assert torch.allclose(wrapped(x), expected, atol=1e-6)
    assert pooled_features(wrapped, x).shape == (2, 512)
    mobile = ProtocolWrapper(mobilenet_v3_small(num_classes=3)).eval()  # "classifier": Linear, Hardswish, Dropout, Linear
    assert mobile.num_classes == 3 and mobile.num_features == 1024  # its pre-logits: the hidden layer
    assert pooled_features(mobile, x).shape == (2, 1024)
    feats, logits = features_and_logits(mobile, x)
    assert torch.allclose(logits, mobile(x), atol=1e-6) and feats.shape == (2, 1024)
    with pytest.raises(TypeError, match="no classifier head"):
        ProtocolWrapper(nn.Sequential(nn.Linear(2, 2)))


@pytest.mark.slow  # 100 training steps per mixer
@pytest.mark.parametrize("name", ["erm", "mixup", "adamixup"])
def test_each_mixer_overfits_a_tiny_batch(name):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = SmallCNN(in_channels=1, num_classes=4, width=8)
    mixer = {"erm": ERM(), "mixup": MixUp(), "adamixup": AdaMixUp(model, policy="light")}[name]
    g = torch.Generator().manual_seed(0)
    y = torch.arange(8) % 4
    x = torch.rand(8, 1, 8, 8, generator=g) * 0.3 + y.view(-1, 1, 1, 1) * 0.2  # learnable classes
    opt = torch.optim.Adam(list(model.parameters()) + list(mixer.parameters()), lr=3e-3)
    losses = []
    for _ in range(100):
        out = mixer(model, x, y)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.6 * first, (name, first, last)
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() == 1.0
