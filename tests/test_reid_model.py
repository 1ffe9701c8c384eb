"""Re-ID network (last stride, BNNeck, protocol, weight loading) and losses (label smoothing,
batch-hard triplet, center loss)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet18, resnet34

from adamixup.mixing import MixUp
from adamixup.models import MODELS, build_model, features_and_logits, pooled_features
from adamixup.models.reid_resnet import ReIDResNet50
from adamixup.reid.losses import CenterLoss, CrossEntropyLabelSmooth, TripletLoss, euclidean_dist, hard_example_mining


def test_resnet50_last_stride_one_gives_16x8_map():
    torch.manual_seed(0)
    model = ReIDResNet50(num_classes=751).eval()
    x = torch.randn(1, 3, 256, 128)
    with torch.no_grad():
        assert model.forward_features(x).shape == (1, 2048, 16, 8)
        f = pooled_features(model, x)
    assert f.shape == (1, 2048) and model.num_features == 2048 and model.in_channels == 3
    block = model.backbone.layer4[0]
    assert block.conv2.stride == (1, 1) and block.downsample[0].stride == (1, 1)
    plain = ReIDResNet50(num_classes=751, last_stride=2, backbone="resnet18").eval()
    with torch.no_grad():
        assert plain.forward_features(x).shape == (1, 512, 8, 4)


def test_bnneck_protocol_and_frozen_bias():
    torch.manual_seed(0)
    model = ReIDResNet50(num_classes=7, backbone="resnet18")
    assert not model.neck.bias.requires_grad and model.neck.weight.requires_grad
    assert model.head.bias is None and abs(model.head.weight.std().item() - 0.001) < 3e-4
    x, y = torch.randn(8, 3, 64, 32), torch.randint(0, 7, (8,))
    fmap = model.forward_features(x)
    f = model.forward_head(fmap, pre_logits=True)  # pooled, before the BNNeck
    assert f.shape == (8, 512) and model.forward_head(fmap).shape == (8, 7) and model(x).shape == (8, 7)
    # the head reads the BNNeck's output, and embed() is the feature after the BNNeck
    model.eval()
    with torch.no_grad():
        fmap = model.forward_features(x)
        f = pooled_features(model, x)
        assert torch.allclose(model.embed(x), model.neck(f), atol=1e-6)
        assert torch.allclose(model.forward_head(fmap), model.head(model.neck(f)), atol=1e-6)
        feats, logits = features_and_logits(model, x)  # the classifier is BNNeck + linear
        assert torch.allclose(feats, f, atol=1e-6) and torch.allclose(logits, model(x), atol=1e-6)
    model.train()
    # a training step moves the BNNeck's weight but never its bias
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    assert torch.count_nonzero(model.neck.bias) == 0 and model.neck.bias.grad is None
    model.reset_classifier(3)
    assert model.num_classes == 3 and model(x).shape == (8, 3)
    model.reset_classifier(0)
    assert model(x).shape == (8, 512)


def test_no_neck_and_registry():
    model = ReIDResNet50(num_classes=5, neck="none", backbone="resnet18").eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(model.embed(x), pooled_features(model, x))
    # without a neck, the released code's nn.Linear default: weight and bias uniform in ±1/sqrt(512)
    bound = 512 ** -0.5
    assert model.head.bias is not None and model.head.weight.abs().max() <= bound
    assert model.head.weight.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.05)
    assert 0 < model.head.bias.abs().max() <= bound
    built = build_model("reid_resnet50", in_channels=3, num_classes=4, backbone="resnet18")
    assert isinstance(built, ReIDResNet50) and built.num_classes == 4 and "reid_resnet50" in MODELS
    with pytest.raises(ValueError, match="in_channels=3"):
        ReIDResNet50(4, in_channels=1, backbone="resnet18")
    with pytest.raises(ValueError, match="neck must be one of"):
        ReIDResNet50(4, neck="bn", backbone="resnet18")
    with pytest.raises(ValueError, match="unknown torchvision backbone"):
        ReIDResNet50(4, backbone="resnet7")


def test_mixers_drive_the_reid_model():
    torch.manual_seed(0)
    model = ReIDResNet50(num_classes=4, backbone="resnet18")
    out = MixUp(include_clean=True, label_smoothing=0.1)(model, torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 2, 3]))
    assert out.features.shape == (4, 512) and torch.isfinite(out.loss)


def test_pretrained_from_a_local_state_dict(tmp_path):
    torch.manual_seed(1)
    source = resnet18()
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in source.state_dict().items()}}, path)
    model = ReIDResNet50(num_classes=3, backbone="resnet18", pretrained=str(path))
    assert torch.equal(model.backbone.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert torch.equal(model.backbone.bn1.running_mean, source.bn1.running_mean)

    with pytest.raises(ValueError, match="pretrained weights file .*missing.pth does not exist"):
        ReIDResNet50(3, backbone="resnet18", pretrained=str(tmp_path / "missing.pth"))
    wrong = tmp_path / "r34.pth"
    torch.save(resnet34().state_dict(), wrong)
    with pytest.raises(ValueError, match="r34.pth does not fit a torchvision resnet18: .*unexpected tensors"):
        ReIDResNet50(3, backbone="resnet18", pretrained=str(wrong))
    shape = tmp_path / "shape.pth"
    state = source.state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(state, shape)
    with pytest.raises(ValueError, match=r"wrong shape \(e.g. conv1.weight"):
        ReIDResNet50(3, backbone="resnet18", pretrained=str(shape))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth cannot be loaded"):
        ReIDResNet50(3, backbone="resnet18", pretrained=str(junk))


def test_label_smoothing_cross_entropy():
    logits, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    eps = 0.1
    logp = F.log_softmax(logits, 1)
    expected = ((1 - eps) * F.nll_loss(logp, y) - eps * logp.mean(1).mean())
    assert torch.allclose(CrossEntropyLabelSmooth(5, eps)(logits, y), expected, atol=1e-6)
    assert torch.allclose(CrossEntropyLabelSmooth(5, 0.0)(logits, y), F.cross_entropy(logits, y), atol=1e-6)
    with pytest.raises(ValueError, match="logits have 5 classes"):
        CrossEntropyLabelSmooth(4)(logits, y)


def test_triplet_loss_batch_hard():
    labels = torch.tensor([0, 0, 1, 1])
    far = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.1, 0.0]], requires_grad=True)
    assert TripletLoss(0.3)(far, labels).item() == 0.0  # well separated: zero
    # hand-computed batch-hard values: anchor 0: d(a,p)=1, d(a,n)=min(1.5, 2)=1.5 -> relu(1-1.5+.3)=0 ...
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.5, 0.0], [2.0, 0.0]])
    dist = euclidean_dist(x, x)
    ap, an, valid = hard_example_mining(dist, labels)
    assert torch.allclose(ap, torch.tensor([1.0, 1.0, 0.5, 0.5]), atol=1e-5)
    assert torch.allclose(an, torch.tensor([1.5, 0.5, 0.5, 1.0]), atol=1e-5)
    expected = torch.relu(ap - an + 0.3).mean()
    assert torch.allclose(TripletLoss(0.3)(x, labels), expected, atol=1e-5)
    soft = TripletLoss(soft_margin=True)(x, labels)
    assert torch.allclose(soft, F.softplus(ap - an).mean(), atol=1e-5)
    # gradients flow and are finite even with identical features (zero distances)
    same = torch.zeros(4, 8, requires_grad=True)
    TripletLoss(0.3)(same, labels).backward()
    assert torch.isfinite(same.grad).all()
    # a batch of one identity has no negatives: zero loss, not NaN
    assert TripletLoss()(torch.randn(3, 4), torch.zeros(3, dtype=torch.long)).item() == 0.0


def test_center_loss_and_its_training_recipe():
    torch.manual_seed(0)
    loss_fn = CenterLoss(num_classes=3, feat_dim=4)
    f, y = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    expected = ((f - loss_fn.centers[y]) ** 2).sum(1).mean()
    assert torch.allclose(loss_fn(f, y), expected)
    # the recipe: weight beta in the loss, the centres' own SGD at lr alpha / beta (the strong baseline's
    # lr alpha = 0.5 on the gradient divided by beta)
    beta, alpha = 5e-4, 0.5
    opt = torch.optim.SGD(loss_fn.parameters(), lr=alpha / beta)
    means = torch.stack([f[y == c].mean(0) for c in range(3)])
    for _ in range(30):
        opt.zero_grad()
        (beta * loss_fn(f, y)).backward()
        opt.step()
    # at lr alpha the weight beta would freeze the centres; at alpha / beta they reach the class means
    assert torch.allclose(loss_fn.centers.detach(), means, atol=1e-3)
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        loss_fn(f, torch.tensor([0, 0, 1, 1, 2, 3]))
    with pytest.raises(ValueError, match="4-dimensional"):
        loss_fn(torch.randn(2, 5), torch.tensor([0, 1]))


def test_a_full_baseline_step_on_resnet18():
    torch.manual_seed(0)
    model = ReIDResNet50(num_classes=4, backbone="resnet18")
    center = CenterLoss(4, model.num_features)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3.5e-4)
    opt_center = torch.optim.SGD(center.parameters(), lr=0.5 / 5e-4)
    x, y = torch.randn(8, 3, 64, 32), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    f, logits = features_and_logits(model, x)
    loss = CrossEntropyLabelSmooth(4)(logits, y) + TripletLoss(0.3)(f, y) + 5e-4 * center(f, y)
    assert math.isfinite(loss.item())
    opt.zero_grad(); opt_center.zero_grad()
    loss.backward()
    opt.step()
    opt_center.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
