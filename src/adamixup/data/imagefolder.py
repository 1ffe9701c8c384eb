"""The user's own images: ``root/train/<class>/*`` and ``root/test/<class>/*``.

Class order is the sorted class-folder names, and train and test must have the same classes. Files
whose suffix is an image suffix (:data:`IMAGE_SUFFIXES`, any case) count as images; hidden files and
other files (a README, a thumbs database) are ignored, as torchvision's ``ImageFolder`` does. Every
image is decoded once, at load time, with Pillow, converted to RGB and resized to ``image_size ×
image_size`` (bilinear, aspect ratio not kept), giving uint8 ``(N, 3, S, S)`` tensors. Decoding runs
in the calling process or, with ``workers > 0``, in DataLoader worker processes.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .base import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")
SPLITS = ("train", "test")


def decode_image(path: Path, image_size: int) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """``(image (3, S, S) uint8, None)``, or ``(None, message)`` when the file cannot be decoded.

    Returns the error rather than raising it so that DataLoader workers hand it back intact (a
    worker's exception would reach the caller wrapped in a multi-line traceback).
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError...
        return None, f"{path} is not a readable image ({type(e).__name__}: {e})."
    return np.ascontiguousarray(array.transpose(2, 0, 1)), None


class _Decode:
    """Map-style dataset of decoded images, for DataLoader workers."""

    def __init__(self, paths: Sequence[Path], image_size: int):
        self.paths, self.image_size = list(paths), image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return decode_image(self.paths[i], self.image_size)


def decode_all(paths: Sequence[Path], image_size: int, workers: int = 0, desc: str = "decoding") -> np.ndarray:
    """Decode ``paths`` into one uint8 array ``(N, 3, S, S)``, in order; raise :class:`DataError`
    naming the first file that cannot be decoded."""
    from tqdm.auto import tqdm

    if workers > 0:
        from torch.utils.data import DataLoader

        loader = DataLoader(_Decode(paths, image_size), batch_size=32, num_workers=workers, collate_fn=list)
        results = (item for batch in loader for item in batch)
    else:
        results = (decode_image(p, image_size) for p in paths)
    out = np.empty((len(paths), 3, image_size, image_size), dtype=np.uint8)
    # disable=None: a progress bar on a terminal only, so logs and tests stay clean
    for i, (image, error) in enumerate(tqdm(results, total=len(paths), desc=desc, disable=None, leave=False)):
        if error is not None:
            raise DataError(error)
        out[i] = image
    return out


def list_split(folder: Path) -> Tuple[List[str], List[Path], List[int]]:
    """Class names (sorted), image paths and their labels under one split folder."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (an image folder dataset needs {' and '.join(SPLITS)}/ folders).")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{folder} holds no class folders (expected one subfolder of images per class).")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(
            p for p in (folder / name).iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise DataError(f"{folder / name} is an empty class folder (no {', '.join(IMAGE_SUFFIXES)} files).")
        paths += files
        labels += [label] * len(files)
    return classes, paths, labels


def load_image_folder(root: Path, image_size: int = 32, workers: int = 0):
    """An image folder under ``root`` as ``(train_x, train_y, test_x, test_y, classes, split)``.

    image_size: side in pixels every image is resized to.
    workers:    DataLoader worker processes for decoding (0 = decode in this process).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found (an image folder dataset needs train/<class>/ and test/<class>/).")
    for split in SPLITS:  # both folders first: a missing one is likelier than a bad class in the other
        if not (root / split).is_dir():
            raise DataError(f"{root / split}: folder not found (an image folder dataset needs train/ and test/).")
    train_classes, train_paths, train_labels = list_split(root / "train")
    test_classes, test_paths, test_labels = list_split(root / "test")
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise DataError(
            f"{root}: train and test must have the same class folders, but only train has {only_train or 'none'} "
            f"and only test has {only_test or 'none'}."
        )
    train_x = decode_all(train_paths, image_size, workers, "decoding train")
    test_x = decode_all(test_paths, image_size, workers, "decoding test")
    return (
        train_x, np.asarray(train_labels, dtype=np.int64), test_x, np.asarray(test_labels, dtype=np.int64),
        train_classes, f"train/ and test/ folders resized to {image_size}x{image_size}",
    )
