"""MNIST and Fashion-MNIST from their IDX files, parsed with numpy.

The IDX format (http://yann.lecun.com/exdb/mnist/): a big-endian int32 magic number — 2051 for an
image file (unsigned bytes, 3 dimensions), 2049 for a label file (unsigned bytes, 1 dimension) —
then one big-endian int32 per dimension, then the values, one byte each, row-major.

Expected in ``root`` (each raw or gzipped with a ``.gz`` suffix; the raw file wins when both exist):
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``. torchvision's layout (``root/MNIST/raw``, ``root/FashionMNIST/raw``)
and ``root/raw`` are looked in too.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import List, Optional

import numpy as np

from .base import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
_TORCHVISION_FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


def read_idx_bytes(path: Path) -> bytes:
    """The content of an IDX file, un-gzipped when its name ends in ``.gz``."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found.") from None
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path} could not be read ({e}).") from None


def parse_idx(data: bytes, magic: int, ndim: int, name: str) -> np.ndarray:
    """Parse IDX ``data`` whose magic number must be ``magic`` and which has ``ndim`` dimensions.

    name: the file's name, used in error messages.
    Returns a read-only uint8 array of the promised shape. Raises :class:`DataError` for a wrong
    magic number, a short header, fewer bytes than the header promises, or trailing bytes.
    """
    header = 4 * (1 + ndim)
    if len(data) < 4:
        raise DataError(f"{name} is too short ({len(data)} bytes) to be an IDX file.")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        kind = "image" if magic == IMAGES_MAGIC else "label"
        raise DataError(f"{name} has magic number {found}, but an IDX {kind} file starts with {magic}.")
    if len(data) < header:
        raise DataError(f"{name} is truncated: its header needs {header} bytes but the file has {len(data)}.")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    body = len(data) - header
    if body < expected:
        raise DataError(
            f"{name} is truncated: its header promises shape {shape} ({expected} bytes) "
            f"but only {body} bytes follow."
        )
    if body > expected:
        raise DataError(f"{name} has {body - expected} bytes beyond the {expected} its header {shape} promises.")
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(shape)


def _find(folders: List[Path], stem: str) -> Optional[Path]:
    for folder in folders:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    return None


def load_idx_pair(images_path: Path, labels_path: Path, num_classes: int = 10):
    """Images ``(N, 1, H, W)`` uint8 and labels ``(N,)`` int64 from an IDX image and label file."""
    images = parse_idx(read_idx_bytes(images_path), IMAGES_MAGIC, 3, str(images_path))
    labels = parse_idx(read_idx_bytes(labels_path), LABELS_MAGIC, 1, str(labels_path))
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels.")
    if len(labels) and int(labels.max()) >= num_classes:
        raise DataError(f"{labels_path} has label {int(labels.max())}, outside 0..{num_classes - 1}.")
    return images[:, None], labels.astype(np.int64)


def load_idx_dataset(name: str, root: Path):
    """``mnist`` or ``fashion_mnist`` from the IDX files under ``root`` as
    ``(train_x, train_y, test_x, test_y, classes, split)``."""
    root = Path(root)
    folders = [root, root / "raw", root / _TORCHVISION_FOLDER[name] / "raw"]
    paths = {key: _find(folders, stem) for key, stem in IDX_FILES.items()}
    missing = [IDX_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise DataError(
            f"{root} lacks {', '.join(missing)} (raw or .gz) for {name}; the four IDX files "
            f"{', '.join(IDX_FILES.values())} are expected there and nothing is downloaded."
        )
    train_x, train_y = load_idx_pair(paths["train_images"], paths["train_labels"])
    test_x, test_y = load_idx_pair(paths["test_images"], paths["test_labels"])
    classes = FASHION_CLASSES if name == "fashion_mnist" else [str(d) for d in range(10)]
    return train_x, train_y, test_x, test_y, classes, "standard train/t10k files"
