"""Retrieval features: extraction with a model, and export to / import from ``.npz`` files, so that
evaluation, re-ranking and pictures can run again without the network."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..models.base import pooled_features
from .distance import ArrayLike, _np

FEATURE_FIELDS = ("features", "pids", "camids", "paths")


@dataclass
class FeatureSet:
    """Features of one split and what identifies them.

    features: ``(n, D)`` float32; pids, camids: ``(n,)`` int64; paths: ``(n,)`` str (image files).
    Duck-types as a split (``paths``, ``pids``, ``camids``) for :mod:`adamixup.reid.plots`.
    """

    features: np.ndarray
    pids: np.ndarray
    camids: np.ndarray
    paths: np.ndarray

    def __len__(self) -> int:
        return len(self.pids)


def _checked(features: ArrayLike, pids: ArrayLike, camids: ArrayLike, paths: Optional[Sequence[str]], where: str) -> FeatureSet:
    f = _np(features).astype(np.float32, copy=False)
    p, c = _np(pids).astype(np.int64).reshape(-1), _np(camids).astype(np.int64).reshape(-1)
    names = np.asarray([str(x) for x in paths] if paths is not None else [""] * len(p), dtype=np.str_)
    if f.ndim != 2:
        raise ValueError(f"{where}: features must be (n, D), got shape {f.shape}")
    if not (f.shape[0] == len(p) == len(c) == len(names)):
        raise ValueError(f"{where}: {f.shape[0]} features, {len(p)} pids, {len(c)} camids and {len(names)} paths do not match")
    return FeatureSet(f, p, c, names)


def export_features(
    path: Union[str, os.PathLike], features: ArrayLike, pids: ArrayLike, camids: ArrayLike, paths: Optional[Sequence[str]] = None
) -> None:
    """Write features ``(n, D)``, pids, camids and image paths (optional) to ``path`` (``.npz``,
    uncompressed; read back with :func:`load_features`, no pickling involved). The file is
    written under a temporary name, then renamed."""
    fs = _checked(features, pids, camids, paths, str(path))
    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ValueError(f"feature file {path} must end in .npz")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path[:-4] + ".tmp.npz"
    np.savez(tmp, features=fs.features, pids=fs.pids, camids=fs.camids, paths=fs.paths)
    os.replace(tmp, path)


def load_features(path: Union[str, os.PathLike]) -> FeatureSet:
    """Read a file written by :func:`export_features`; ``ValueError`` naming the file when it is
    missing, unreadable or lacks a field."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"feature file {path} does not exist")
    not_ours = (f"feature file {path} is not one that `adamixup reid export` writes (an .npz holding "
                f"{', '.join(FEATURE_FIELDS)})")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception:  # not a zip, a pickle (refused), a truncated file
        raise ValueError(not_ours) from None
    if not isinstance(data, np.lib.npyio.NpzFile):  # a bare .npy array
        raise ValueError(not_ours)
    try:
        with data:
            missing = [k for k in FEATURE_FIELDS if k not in data.files]
            if missing:
                raise ValueError(f"feature file {path} lacks {', '.join(missing)}; `adamixup reid export` writes all of them")
            arrays = {k: data[k] for k in FEATURE_FIELDS}
    except ValueError as err:
        raise ValueError(str(err) if str(err).startswith("feature file") else not_ours) from None
    except Exception:  # a damaged member
        raise ValueError(f"feature file {path} is damaged (a member cannot be read); export it again") from None
    return _checked(arrays["features"], arrays["pids"], arrays["camids"], arrays["paths"], path)


@torch.no_grad()
def extract_features(
    model: nn.Module, loader: Iterable, device: Union[str, torch.device] = "cpu", flip: bool = False
) -> FeatureSet:
    """Retrieval features of every batch of ``loader`` (batches ``(images, pids, camids)``, as
    :class:`adamixup.reid.data.ReIDImageDataset` gives), with the model in eval mode: ``model.embed``
    when it has one (after the BNNeck), else the pooled features (:func:`adamixup.models.pooled_features`). ``flip``: average with the
    features of the horizontally flipped images. Paths are taken from ``loader.dataset.split`` when
    present (the loader must then keep the split's order: no shuffling). The model's training mode is restored afterwards."""
    was_training = model.training
    model.eval()
    embed = model.embed if hasattr(model, "embed") else partial(pooled_features, model)
    feats, pids, cams = [], [], []
    try:
        for images, pid, cam in loader:
            images = images.to(device, non_blocking=True)
            f = embed(images).float()
            if flip:
                f = (f + embed(images.flip(3)).float()) / 2
            feats.append(f.cpu())
            pids.append(torch.as_tensor(pid))
            cams.append(torch.as_tensor(cam))
    finally:
        model.train(was_training)
    split = getattr(getattr(loader, "dataset", None), "split", None)
    paths = list(split.paths) if split is not None and len(split.paths) == sum(len(p) for p in pids) else None
    return _checked(torch.cat(feats), torch.cat(pids), torch.cat(cams), paths, "extract_features")
