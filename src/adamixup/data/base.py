"""What every classification dataset shares: the error type, the ``Dataset`` record, its checks,
per-channel statistics and the stratified training fraction.

Images live in uint8 tensors ``(N, C, H, W)`` (square, 0..255) and labels in int64 tensors ``(N,)``;
turning pixels into normalized floats is :class:`adamixup.data.augment.BatchAugment`'s job, batched
on the training device.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

CACHE_ENV = "ADAMIXUP_CACHE"


def default_cache_dir() -> Path:
    """``$ADAMIXUP_CACHE``, else ``$XDG_CACHE_HOME/adamixup``, else ``~/.cache/adamixup``: where decoded
    image folders and parsed embedded sets are kept."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "adamixup"


EVAL_SPLITS = ("test", "validation")


class DataError(ValueError):
    """Bad data or a bad data argument. The message is one sentence naming the file (or the field or
    value) and the problem, fit to be shown to a user as it is."""


@dataclass
class Dataset:
    """A classification dataset held in memory.

    name:     the registered name it was loaded under (e.g. ``"mnist5k"``).
    train_x:  uint8 ``(N, C, H, W)`` training images, H = W.
    train_y:  int64 ``(N,)`` training labels in ``0 .. num_classes-1``.
    test_x:   uint8 ``(M, C, H, W)`` images of the evaluation split, same C, H, W as the training
              images: the test split, or the validation split when ``eval_split == "validation"``.
    test_y:   int64 ``(M,)`` their labels.
    classes:  class names; label ``i`` is ``classes[i]``.
    flip:     whether random horizontal flips are a sensible augmentation (not for digits, whose
              mirror images are not digits).
    pad:      padding in pixels of the random pad-and-crop augmentation (0 = no crop).
    mean:     per-channel mean of the training images in [0, 1] pixel scale; computed from
              ``train_x`` when not given.
    std:      per-channel (population) standard deviation, likewise.
    split:    a short human-readable description of how train and test were formed, for logs.
    eval_split: which split ``test_x``/``test_y`` are: ``"test"`` (the data set's test split), or
              ``"validation"`` (a stratified share held out of the training split by
              ``load_dataset(..., validation_fraction=...)``; the test split is then not loaded into
              the record at all, so nothing chosen on it can have seen the test split).
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    classes: List[str]
    flip: bool
    pad: int
    mean: Optional[List[float]] = None
    std: Optional[List[float]] = None
    split: str = "standard"
    eval_split: str = "test"

    def __post_init__(self):
        if self.eval_split not in EVAL_SPLITS:
            raise DataError(f"{self.name}: eval_split must be one of {', '.join(EVAL_SPLITS)}, got {self.eval_split!r}.")
        self.classes = [str(c) for c in self.classes]
        for part in ("train", "test"):
            check_images_labels(
                getattr(self, f"{part}_x"), getattr(self, f"{part}_y"), len(self.classes), f"{self.name} {part}"
            )
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise DataError(
                f"{self.name}: training images are {tuple(self.train_x.shape[1:])} (C, H, W) "
                f"but test images are {tuple(self.test_x.shape[1:])}."
            )
        if self.pad < 0:
            raise DataError(f"{self.name}: pad must be >= 0, got {self.pad}.")
        if self.mean is None or self.std is None:
            mean, std = channel_stats(self.train_x)
            self.mean = mean if self.mean is None else self.mean
            self.std = std if self.std is None else self.std

    @property
    def eval_x(self) -> Tensor:
        """The evaluation images (``test_x``), under a name that does not say "test"."""
        return self.test_x

    @property
    def eval_y(self) -> Tensor:
        return self.test_y

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        """Height (= width) of the images in pixels."""
        return int(self.train_x.shape[-1])

    def __repr__(self) -> str:  # the default would print whole tensors
        return (
            f"Dataset(name={self.name!r}, train={len(self.train_y)}, {self.eval_split}={len(self.test_y)}, "
            f"classes={self.num_classes}, shape={tuple(self.train_x.shape[1:])}, flip={self.flip}, "
            f"pad={self.pad}, split={self.split!r}, eval_split={self.eval_split!r})"
        )


def check_images_labels(x: Tensor, y: Tensor, num_classes: int, what: str) -> None:
    """Raise :class:`DataError` unless ``x`` is uint8 ``(N, C, H, H)`` and ``y`` int64 ``(N,)``
    with values in ``0 .. num_classes-1``. ``what`` names the data in the message."""
    if not isinstance(x, Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
        raise DataError(f"{what}: images must be a uint8 tensor (N, C, H, W), got {_describe(x)}.")
    if x.shape[-1] != x.shape[-2]:
        raise DataError(f"{what}: images must be square, got {x.shape[-2]}x{x.shape[-1]}.")
    if not isinstance(y, Tensor) or y.dtype != torch.int64 or y.dim() != 1:
        raise DataError(f"{what}: labels must be an int64 tensor (N,), got {_describe(y)}.")
    if len(x) != len(y):
        raise DataError(f"{what}: {len(x)} images but {len(y)} labels.")
    if len(y) == 0:
        raise DataError(f"{what}: the split is empty.")
    if num_classes < 1:
        raise DataError(f"{what}: no class names given.")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise DataError(f"{what}: labels span {lo}..{hi}, outside 0..{num_classes - 1}.")


def _describe(t) -> str:
    if isinstance(t, Tensor):
        return f"{t.dtype} of shape {tuple(t.shape)}"
    return type(t).__name__


def channel_stats(x: Tensor) -> tuple:
    """Per-channel mean and population standard deviation of uint8 images ``(N, C, H, W)``, in
    [0, 1] pixel scale, as two lists of floats.

    Computed exactly from a 256-bin histogram per channel, so a 50,000-image set needs no float copy.
    """
    means, stds = [], []
    values = torch.arange(256, dtype=torch.float64)
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1).to(torch.int64), minlength=256).to(torch.float64)
        n = counts.sum()
        mean = (counts * values).sum() / n
        var = (counts * (values - mean) ** 2).sum() / n
        means.append(float(mean) / 255.0)
        stds.append(float(var.sqrt()) / 255.0)
    return means, stds


def _check_fraction(fraction, what: str, allow_one: bool) -> None:
    ok = not isinstance(fraction, bool) and isinstance(fraction, numbers.Real) and (
        0.0 < fraction <= 1.0 if allow_one else 0.0 < fraction < 1.0)
    if not ok:
        raise DataError(f"{what} must be a number in (0, {'1]' if allow_one else '1)'}, got {fraction!r}.")


def stratified_fraction(labels: np.ndarray, fraction: float, seed, classes: Sequence[str],
                        what: str = "train_fraction") -> np.ndarray:
    """Indices (sorted) of a stratified random ``fraction`` of ``labels``.

    Each class keeps ``round(fraction * n_c)`` of its ``n_c`` samples (halves round up), chosen by
    ``numpy.random.default_rng(seed)``, so the same seed always keeps the same samples. ``fraction =
    1`` keeps everything. Raises :class:`DataError` for a fraction outside (0, 1] or one that would
    leave a class without samples. ``what`` names the fraction in messages.
    """
    _check_fraction(fraction, what, allow_one=True)
    labels = np.asarray(labels)
    if fraction == 1.0:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(len(classes)):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            continue  # a class absent from the split was absent before: nothing is lost here
        k = int(math.floor(fraction * len(members) + 0.5))
        if k == 0:
            raise DataError(
                f"{what}={fraction} would leave class {classes[c]!r} without training samples "
                f"(it has {len(members)})."
            )
        keep.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(keep))


VALIDATION_STREAM = 0x76616C  # "val": the hold-out's random stream, apart from train_fraction's


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int, classes: Sequence[str]) -> tuple:
    """Split ``labels``' indices into ``(kept, held_out)``, each sorted: a stratified random
    ``fraction`` of every class held out (``round(fraction * n_c)``, halves up), the rest kept.

    Drawn by ``numpy.random.default_rng([VALIDATION_STREAM, seed])``, a stream of its own, so the
    hold-out depends on ``seed`` alone and does not share draws with :func:`stratified_fraction`.
    Raises :class:`DataError` for a fraction outside (0, 1) or one that would leave a class with no
    held-out sample or no kept one.
    """
    _check_fraction(fraction, "validation_fraction", allow_one=False)
    labels = np.asarray(labels)
    rng = np.random.default_rng([VALIDATION_STREAM, int(seed)])
    held = []
    for c in range(len(classes)):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            continue
        k = int(math.floor(fraction * len(members) + 0.5))
        if k == 0 or k == len(members):
            raise DataError(
                f"validation_fraction={fraction} would leave class {classes[c]!r} with "
                f"{'no validation' if k == 0 else 'no training'} samples (it has {len(members)})."
            )
        held.append(rng.choice(members, size=k, replace=False))
    held = np.sort(np.concatenate(held))
    kept = np.setdiff1d(np.arange(len(labels)), held, assume_unique=True)
    return kept, held


def to_tensors(x: np.ndarray, y: np.ndarray) -> tuple:
    """uint8 images and int64 labels as contiguous torch tensors that own writable memory."""
    x = np.ascontiguousarray(x, dtype=np.uint8)
    if not x.flags.writeable:  # e.g. np.frombuffer over bytes; torch warns on read-only memory
        x = x.copy()
    return torch.from_numpy(x), torch.from_numpy(np.array(y, dtype=np.int64))
