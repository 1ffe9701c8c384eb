"""The models by name: ours (:data:`MODELS`), ``timm/<name>`` and ``torchvision/<name>``.

``build_model("small_cnn", in_channels=1, num_classes=10)`` builds one of ours;
``build_model("timm/convnext_atto", in_channels=3, num_classes=10, **model_args)`` hands the
arguments to ``timm.create_model`` (timm is an optional extra: ``pip install "adamixup[timm]"``);
``build_model("torchvision/resnet18", ...)`` builds torchvision's model inside :class:`ProtocolWrapper`.
Nothing is downloaded: pretrained weights come from a local file (``pretrained_file``).
"""
from __future__ import annotations

import inspect
import os
from typing import Any, Callable, Dict, Optional

from torch import nn

from .authors_cnn import AuthorsCNN
from .base import ProtocolWrapper
from .preact_resnet import PreActResNet18
from .reid_resnet import ReIDResNet50
from .small_cnn import SmallCNN
from .weights import PACKAGES, WeightsError, load_imagenet, weight_package

MODELS: Dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "authors_cnn": AuthorsCNN,
    "preact_resnet18": PreActResNet18,
    "reid_resnet50": ReIDResNet50,
}
TIMM_PREFIX, TORCHVISION_PREFIX = "timm/", "torchvision/"


class ModelError(ValueError):
    """A model name or model argument that cannot be built; the message says what to change."""


def _timm():
    try:
        import timm
    except ImportError:
        raise ModelError('timm models need the timm package: pip install "adamixup[timm]"') from None
    return timm


def check_model_spec(name: str, model_args: Optional[Dict[str, Any]] = None) -> None:
    """Check a model name and its keyword arguments without building the model (cheap: used to
    validate a config before a run folder exists). Raises :class:`ModelError` with one sentence."""
    args = dict(model_args or {})
    if name.startswith(TIMM_PREFIX):
        timm = _timm()
        arch = name[len(TIMM_PREFIX):]
        if not timm.is_model(arch):
            close = timm.list_models(f"*{arch[:6]}*")[:5]
            hint = f"; similar: {', '.join(close)}" if close else ""
            raise ModelError(f"timm has no model {arch!r}{hint}")
        _check_pretrained_file(args.get("pretrained_file"))
        _check_imagenet(arch, args.get("pretrained"))
        return
    if name.startswith(TORCHVISION_PREFIX):
        from torchvision.models import list_models

        arch = name[len(TORCHVISION_PREFIX):]
        if arch not in list_models():
            raise ModelError(f"torchvision has no model {arch!r}; see torchvision.models.list_models()")
        _check_pretrained_file(args.get("pretrained_file"))
        return
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}, "
                         "or timm/<name> or torchvision/<name>")
    accepted = set(inspect.signature(MODELS[name].__init__).parameters) - {"self", "in_channels", "num_classes"}
    unknown = sorted(set(args) - accepted)
    if unknown:
        raise ModelError(f"model_args.{unknown[0]} is not an option of {name}; its options are "
                         f"{', '.join(sorted(accepted)) or 'none'}")


def _check_imagenet(arch: str, pretrained: Any) -> None:
    """``model_args.pretrained``: "imagenet" (weights from an installed package, :mod:`.weights`) or off."""
    if pretrained in (None, False, "none"):
        return
    if pretrained is True or pretrained != "imagenet":
        raise ModelError(f"model_args.pretrained={pretrained!r}: nothing is downloaded; use pretrained=imagenet (for "
                         f"{', '.join(PACKAGES)}: weights from a package) or pretrained_file=PATH")
    if weight_package(arch) is None:
        raise ModelError(f"no package ships ImageNet weights for timm/{arch}; ones that do: {', '.join(PACKAGES)} "
                         "(or give model_args.pretrained_file=PATH)")


def _check_pretrained_file(path: Optional[str]) -> None:
    if path is not None and not (isinstance(path, str) and os.path.isfile(path)):
        raise ModelError(f"model_args.pretrained_file {path!r} is not a file")


def build_model(name: str, in_channels: int = 3, num_classes: int = 10, **kwargs) -> nn.Module:
    """Build a model by name: one of :data:`MODELS`, ``timm/<name>`` or ``torchvision/<name>``.

    For timm and torchvision models, ``kwargs`` go to ``timm.create_model`` / torchvision's builder;
    ``pretrained_file=PATH`` starts from a local weights file (for timm, through its
    ``pretrained_cfg_overlay``: the classifier is re-initialized for ``num_classes`` and the stem
    adapted to ``in_channels`` as timm does; for torchvision, a state dict of the same
    architecture, the classifier left out).
    """
    check_model_spec(name, kwargs)
    if name.startswith(TIMM_PREFIX):
        timm = _timm()
        path = kwargs.pop("pretrained_file", None)
        imagenet = kwargs.pop("pretrained", None) == "imagenet"
        if path is not None:
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=path))
        try:
            model = timm.create_model(name[len(TIMM_PREFIX):], num_classes=num_classes, in_chans=in_channels, **kwargs)
            if imagenet:
                try:
                    load_imagenet(model, name[len(TIMM_PREFIX):])
                except WeightsError as err:
                    raise ModelError(str(err)) from None
            return model
        except TypeError as err:  # an argument the architecture does not take
            raise ModelError(f"timm cannot build {name} with {kwargs}: {err}") from None
        except (OSError, RuntimeError) as err:  # a download refused offline, a weights file that does not fit
            raise ModelError(f"timm cannot build {name}: {str(err).splitlines()[0]}; nothing is downloaded: "
                             "pass model_args.pretrained_file=PATH to a local weights file") from None
    if name.startswith(TORCHVISION_PREFIX):
        return _torchvision_model(name[len(TORCHVISION_PREFIX):], in_channels, num_classes, kwargs)
    return MODELS[name](in_channels=in_channels, num_classes=num_classes, **kwargs)


def _torchvision_model(arch: str, in_channels: int, num_classes: int, kwargs: Dict[str, Any]) -> nn.Module:
    import torch
    from torchvision.models import get_model

    path = kwargs.pop("pretrained_file", None)
    try:
        net = get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    except TypeError as err:
        raise ModelError(f"torchvision cannot build {arch} with {kwargs}: {err}") from None
    model = ProtocolWrapper(net)
    if model.in_channels is not None and model.in_channels != in_channels:
        raise ModelError(f"torchvision's {arch} reads {model.in_channels}-channel images, the data has {in_channels}")
    if path is not None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a torn, foreign or crafted file: weights_only refuses to run code
            raise ModelError(f"pretrained_file {path} cannot be read as a state dict ({type(err).__name__})") from None
        if not isinstance(state, dict):
            raise ModelError(f"pretrained_file {path} holds a {type(state).__name__}, not a state dict")
        own = model.net.state_dict()  # the backbone: the lifted classifier is left out, and so is the file's
        fitting = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
        if len(fitting) < len(own) or not fitting:
            missing = sorted(set(own) - set(fitting))
            raise ModelError(f"pretrained_file {path} does not fit torchvision's {arch}: {len(missing)} of its "
                             f"backbone tensors are missing or of another shape (e.g. {missing[0]})")
        model.net.load_state_dict(fitting)
    return model
