"""SVHN (cropped digits, format 2) from ``train_32x32.mat`` and ``test_32x32.mat`` in ``root``.

Each file is a MATLAB file (http://ufldl.stanford.edu/housenumbers/) with ``X``, uint8 of shape
``(32, 32, 3, N)`` (height, width, channel, sample), and ``y``, ``(N, 1)`` labels 1..10 where 10
stands for the digit 0. Labels become 0..9 (10 -> 0; a 0 already present is kept as 0). The
optional ``extra_32x32.mat`` is not used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DataError

SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")


def load_svhn_mat(path: Path):
    """Images ``(N, 3, H, W)`` uint8 and labels ``(N,)`` int64 in 0..9 from one SVHN ``.mat`` file."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (SVHN needs {' and '.join(SVHN_FILES)}; nothing is downloaded).")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises ValueError, MatReadError, TypeError, OSError... for bad files
        raise DataError(f"{path} is not a readable MATLAB file ({type(e).__name__}: {e}).") from None
    for key in ("X", "y"):
        if key not in mat:
            raise DataError(f"{path} lacks the variable {key!r} of an SVHN file.")
    x, y = mat["X"], mat["y"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[2] != 3:
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{path}: 'X' must be uint8 of shape (H, W, 3, N), got {got}.")
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iuf" or y.ndim > 2:
        got = f"{y.dtype} {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
        raise DataError(f"{path}: 'y' must be a numeric (N, 1) array of labels, got {got}.")
    if y.size != x.shape[3]:
        raise DataError(f"{path} holds {x.shape[3]} images in 'X' but {y.size} labels in 'y'.")
    y = y.reshape(-1)
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise DataError(f"{path}: 'y' holds non-integer labels.")
    y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() > 10):
        raise DataError(f"{path}: 'y' spans {y.min()}..{y.max()}, outside 1..10.")
    y[y == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y


def load_svhn(root: Path):
    """SVHN from ``root`` as ``(train_x, train_y, test_x, test_y, classes, split)``."""
    root = Path(root)
    missing = [f for f in SVHN_FILES if not (root / f).is_file()]
    if missing:
        raise DataError(
            f"{root} lacks {', '.join(missing)}; SVHN needs {' and '.join(SVHN_FILES)} there and nothing is downloaded."
        )
    train_x, train_y = load_svhn_mat(root / SVHN_FILES[0])
    test_x, test_y = load_svhn_mat(root / SVHN_FILES[1])
    return train_x, train_y, test_x, test_y, [str(d) for d in range(10)], "standard train/test files"
