"""Any timm or torchvision model, drop-in: one MixUp and one AdaMixUp step (defaults and the paper's
settings) with gradients reaching the classifier, π and φ; timm's Mixup reproduced; models by name."""
import pytest
import torch
from torch import nn

from adamixup import AdaMixUp, MixUp
from adamixup.models import ModelError, ProtocolWrapper, build_model, feature_dim, infer_in_channels, pooled_features

timm = pytest.importorskip("timm")

# tiny members of each family, at 32×32: the matrix must stay well under a minute on a CPU
TIMM_MODELS = {
    "resnet": ("test_resnet", {}),
    "convnext": ("test_convnext", {}),
    "efficientnet": ("test_efficientnet", {}),
    "regnet": ("regnetx_002", {}),  # (built small below)
    "mobilenetv3": ("mobilenetv3_small_050", {}),
    "vit": ("test_vit", {"img_size": 32, "patch_size": 4}),
}


def _tiny_torchvision(name: str) -> nn.Module:
    import torchvision.models as tvm
    from torchvision.models.convnext import CNBlockConfig

    if name == "resnet":
        from torchvision.models.resnet import BasicBlock

        return tvm.ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)
    if name == "mobilenet_v3_small":
        return tvm.mobilenet_v3_small(num_classes=10, width_mult=0.25)
    if name == "efficientnet":
        from torchvision.models.efficientnet import MBConvConfig

        blocks = [MBConvConfig(1, 3, 1, 8, 8, 1), MBConvConfig(4, 3, 2, 8, 16, 1)]
        return tvm.EfficientNet(blocks, dropout=0.2, num_classes=10)
    if name == "convnext":
        return tvm.ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=10)
    if name == "regnet":
        from torchvision.models.regnet import BlockParams

        params = BlockParams.from_init_params(depth=3, w_0=8, w_a=8.0, w_m=2.0, group_width=8)
        return tvm.RegNet(params, stem_width=8, num_classes=10)
    if name == "densenet":
        return tvm.DenseNet(growth_rate=8, block_config=(1, 1), num_init_features=8, num_classes=10)
    if name == "vit":
        return tvm.VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16,
                                     mlp_dim=32, num_classes=10)
    if name == "swin":
        return tvm.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                   window_size=[2, 2], num_classes=10)
    raise KeyError(name)


def _batch(n=8, classes=10):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 32, 32, generator=g), torch.arange(n) % classes


def _has_grad(params) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def _check_steps(model: nn.Module, classifier: nn.Module):
    x, y = _batch()
    model.zero_grad(set_to_none=True)
    out = MixUp()(model, x, y)
    out.loss.backward()
    assert torch.isfinite(out.loss) and _has_grad(classifier.parameters())
    for make in (AdaMixUp, AdaMixUp.paper):  # the defaults (light φ) and the paper's (φ on shared features)
        torch.manual_seed(0)
        mixer = make(model)
        model.zero_grad(set_to_none=True)
        out = mixer(model, x, y)
        out.loss.backward()
        assert torch.isfinite(out.loss)
        assert out.features.shape == (8, feature_dim(model))
        assert _has_grad(classifier.parameters()), "no gradient reached the classifier"
        assert _has_grad(mixer.policy.parameters()), "no gradient reached π"
        assert _has_grad(mixer.policy.body.parameters()), "no gradient reached π's body"
        assert _has_grad(mixer.intrusion_head.parameters()), "no gradient reached φ"


@pytest.mark.parametrize("family", sorted(TIMM_MODELS))
def test_timm_model_drops_in(family):
    name, kwargs = TIMM_MODELS[family]
    torch.manual_seed(0)
    if family == "regnet":  # timm's RegNet class with a small configuration (regnetx_002 is 2.3 M parameters)
        from timm.models.regnet import RegNet, RegNetCfg

        model = RegNet(RegNetCfg(depth=8, w0=8, wa=24.0, wm=2.0, group_size=8, stem_width=8), num_classes=10)
    else:
        model = timm.create_model(name, num_classes=10, **kwargs)
    assert infer_in_channels(model) == 3  # AdaMixUp(model) needs no in_channels
    _check_steps(model, model.get_classifier())


@pytest.mark.parametrize("name", ["resnet", "mobilenet_v3_small", "efficientnet", "convnext", "regnet",
                                  "densenet", "vit", "swin"])
def test_torchvision_model_drops_in(name):
    torch.manual_seed(0)
    net = _tiny_torchvision(name).eval()
    x, _ = _batch(2)
    with torch.no_grad():
        expected = net(x)
    model = ProtocolWrapper(net).eval()
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-5)  # the wrapper computes what the network did
        assert pooled_features(model, x).shape == (2, model.num_features)
    model.train()
    _check_steps(model, model.head)


def test_same_policy_copies_architecture_with_fresh_weights():
    torch.manual_seed(0)
    model = timm.create_model("test_vit", num_classes=10, img_size=32, patch_size=4)
    mixer = AdaMixUp(model, intrusion_backbone="own")
    for body in (mixer.policy.body, mixer.intrusion_body):
        assert type(body) is type(model) and isinstance(body.get_classifier(), nn.Identity)
        assert body.blocks[0].attn.qkv.weight is not model.blocks[0].attn.qkv.weight
        assert not torch.equal(body.blocks[0].attn.qkv.weight, model.blocks[0].attn.qkv.weight)
        assert not torch.equal(body.pos_embed, model.pos_embed)  # timm's init_weights re-drew it


def test_in_channels_read_from_the_model_or_asked_for():
    gray = timm.create_model("test_resnet", num_classes=10, in_chans=1)
    assert infer_in_channels(gray) == 1
    mixer = AdaMixUp(gray)
    x, y = torch.rand(8, 1, 32, 32), torch.arange(8)
    assert torch.isfinite(mixer(gray, x, y).loss)

    class NoConv(nn.Module):  # the protocol, but nothing tells the input channels
        num_features = 4

        def __init__(self):
            super().__init__()
            self.body, self.fc = nn.Sequential(nn.Flatten(), nn.LazyLinear(4)), nn.Linear(4, 3)

        def forward_features(self, x):
            return self.body(x)

        def forward_head(self, f, pre_logits=False):
            return f if pre_logits else self.fc(f)

    with pytest.raises(ValueError, match=r"pass AdaMixUp\(model, in_channels=C\)"):
        AdaMixUp(NoConv())


def test_mixup_reproduces_timm_mixup_per_batch():
    """The same λ and partner order (timm mixes each sample with the batch reversed) give the same
    mixed batch and soft targets as timm.data.Mixup(mode="batch")."""
    from timm.data import Mixup

    x, y = _batch(8)
    for lam in (0.3, 0.75):
        for smoothing in (0.0, 0.1):
            timm_mix = Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, mode="batch", label_smoothing=smoothing,
                             num_classes=10)
            timm_mix._params_per_batch = lambda: (lam, False)  # feed timm the same λ
            xt, yt = timm_mix(x.clone(), y.clone())
            xm, tm, lams, partners = MixUp(per_batch=True, label_smoothing=smoothing).mix(
                x, y, 10, lam=lam, partners=[torch.arange(8).flip(0)])
            torch.testing.assert_close(xm, xt, atol=1e-6, rtol=1e-6)
            torch.testing.assert_close(tm, yt, atol=1e-6, rtol=1e-6)
            assert torch.allclose(lams, torch.full((1, 8), lam))


def test_timm_training_step_replaced_by_one_call():
    """A timm script's step, ``loss = SoftTargetCrossEntropy()(model(mixup_fn(x, y)...))``, is MixUp's
    mixed loss on the same λ and partners."""
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=10).eval()  # eval: the two passes see the same BN
    x, y = _batch(8)
    mixup_fn = Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, mode="batch", label_smoothing=0.0, num_classes=10)
    mixup_fn._params_per_batch = lambda: (0.6, False)
    xt, yt = mixup_fn(x.clone(), y.clone())
    timm_loss = SoftTargetCrossEntropy()(model(xt), yt)
    mixer = MixUp(per_batch=True)
    mixer.sample_lam = lambda a, b: torch.full((a.shape[0],), 0.6)
    torch.manual_seed(1)
    expected_partners = torch.randperm(8)
    torch.manual_seed(1)
    out = mixer(model, x, y)  # partners from the same seeded permutation
    assert torch.equal(out.partners[0], expected_partners)
    xm2, tm2, _, _ = mixer.mix(x, y, 10, lam=0.6, partners=[expected_partners])
    ours = -(tm2 * torch.log_softmax(model(xm2), 1)).sum(1).mean()
    torch.testing.assert_close(out.loss, ours, atol=1e-5, rtol=1e-5)
    flip = [torch.arange(8).flip(0)]
    xm3, tm3, _, _ = mixer.mix(x, y, 10, lam=0.6, partners=flip)
    same_as_timm = -(tm3 * torch.log_softmax(model(xm3), 1)).sum(1).mean()
    torch.testing.assert_close(same_as_timm, timm_loss, atol=1e-5, rtol=1e-5)


def test_models_by_name():
    model = build_model("timm/test_resnet", in_channels=1, num_classes=4)
    assert infer_in_channels(model) == 1 and model(torch.rand(2, 1, 32, 32)).shape == (2, 4)
    tv = build_model("torchvision/resnet18", in_channels=3, num_classes=4)
    assert isinstance(tv, ProtocolWrapper) and tv(torch.rand(2, 3, 32, 32)).shape == (2, 4)
    with pytest.raises(ModelError, match="timm has no model 'resnet9000'"):
        build_model("timm/resnet9000")
    with pytest.raises(ModelError, match="torchvision has no model"):
        build_model("torchvision/resnet9000")
    with pytest.raises(ModelError, match="pretrained_file .* is not a file"):
        build_model("timm/test_resnet", pretrained_file="/nonexistent/weights.pth")


def test_local_pretrained_weights_nothing_downloaded(tmp_path, monkeypatch):
    """``pretrained_file`` loads a local file through timm (the head re-made for the new classes);
    a crafted pickle is refused without running."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    source = timm.create_model("test_resnet", num_classes=1000)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    model = build_model("timm/test_resnet", in_channels=3, num_classes=7, pretrained_file=str(path))
    assert torch.equal(model.conv1[0].weight if isinstance(model.conv1, nn.Sequential) else model.conv1.weight,
                       source.conv1[0].weight if isinstance(source.conv1, nn.Sequential) else source.conv1.weight)
    assert model.get_classifier().out_features == 7

    tv_source = build_model("torchvision/resnet18", in_channels=3, num_classes=1000)
    tv_path = tmp_path / "resnet18.pth"
    torch.save({**tv_source.net.state_dict(), "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}, tv_path)
    tv = build_model("torchvision/resnet18", in_channels=3, num_classes=5, pretrained_file=str(tv_path))
    assert torch.equal(tv.net.conv1.weight, tv_source.net.conv1.weight) and tv.num_classes == 5

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    import pickle

    crafted = tmp_path / "crafted.pth"
    crafted.write_bytes(pickle.dumps({"conv1.weight": Evil()}, protocol=2))
    with pytest.raises(ModelError, match="cannot be read as a state dict"):
        build_model("torchvision/resnet18", in_channels=3, num_classes=5, pretrained_file=str(crafted))
    assert not marker.exists()
