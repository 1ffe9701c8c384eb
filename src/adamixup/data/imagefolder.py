"""The user's own images: ``root/train/<class>/*`` and ``root/test/<class>/*``, decoded once and cached.

Class order is the sorted class-folder names, and train and test must have the same classes. Files
whose suffix is an image suffix (:data:`IMAGE_SUFFIXES`, any case) count as images; hidden files and
other files (a README, a thumbs database) are ignored, as torchvision's ``ImageFolder`` does. Every
image is decoded with Pillow, converted to RGB and resized to ``image_size × image_size`` (bilinear,
aspect ratio not kept), giving uint8 ``(N, 3, S, S)`` tensors. Decoding runs in the calling process
or, with ``workers > 0``, in DataLoader worker processes.

**The cache.** Decoding is done once: the decoded arrays, labels and class names are written to one
uncompressed ``.npz`` file (read back with ``allow_pickle=False``: nothing in it can run code) in a
cache folder, and later loads of the same folder read that file instead (CIFAR-10's 60,000 JPEGs:
13–18 s of decoding against 2.4–2.9 s of reading, one thread, measured at load 2.5). The cache file is found by the folder's
resolved path and ``image_size``, and it is used only when the *key* stored in it matches the folder
now:

- ``cache="stat"`` (the default, also ``True``): a SHA-256 of the sorted list of every image file's
  (path relative to ``root``, size in bytes, ``mtime_ns``), plus ``image_size``, the decoding
  settings and the Pillow version. Any file changed, added, removed or renamed gives a new key, and
  the folder is decoded again (the old cache file is replaced). Costs one ``stat`` per file (about
  0.3 s for 60,000 files). A file rewritten with the same size within the file system's timestamp
  resolution, or with its mtime set back, is not noticed: use ``"content"`` where that can happen.
- ``cache="content"``: the same, with a hash of each file's bytes in place of its size and mtime
  (reads every file: about 4 s for CIFAR-10's 57 MB).
- ``cache=False`` (or ``"off"``): decode every time, write nothing.

The cache folder is ``cache_dir`` when given, else ``$ADAMIXUP_CACHE``, else
``$XDG_CACHE_HOME/adamixup``, else ``~/.cache/adamixup`` — never the data folder unless asked. The
file is written under a temporary name and renamed, so a reader never sees half a file and two
processes building the same cache at once both end with a whole one. A cache file that cannot be
read or does not hold what it should is ignored with a warning and rebuilt; a cache folder that
cannot be written is warned about once per load and the decoded data are used as they are.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .base import DataError, default_cache_dir

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")
SPLITS = ("train", "test")
CACHE_MODES = ("stat", "content", "off")
CACHE_FORMAT = 1  # bump when the decoding or the file layout changes: old cache files then miss


class CacheWarning(UserWarning):
    """A cache file was unusable (and rebuilt) or could not be written (and the data were used as decoded)."""


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


def list_split(folder: Path, with_stats: bool = False):
    """Class names (sorted), image paths (sorted within each class) and their labels under one split
    folder; with ``with_stats``, also each file's ``(size, mtime_ns)``."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (an image folder dataset needs {' and '.join(SPLITS)}/ folders).")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{folder} holds no class folders (expected one subfolder of images per class).")
    paths, labels, stats = [], [], []
    for label, name in enumerate(classes):
        entries = []
        with os.scandir(folder / name) as it:  # DirEntry: is_file() and stat() without extra lookups
            for e in it:
                if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES and e.is_file():
                    entries.append(e)
        if not entries:
            raise DataError(f"{folder / name} is an empty class folder (no {', '.join(IMAGE_SUFFIXES)} files).")
        entries.sort(key=lambda e: e.name)
        paths += [Path(e.path) for e in entries]
        labels += [label] * len(entries)
        if with_stats:
            for e in entries:
                st = e.stat()
                stats.append((st.st_size, st.st_mtime_ns))
    return (classes, paths, labels, stats) if with_stats else (classes, paths, labels)


def _list_folder(root: Path):
    """Both splits listed and checked: ``{split: (paths, labels, stats)}`` and the class names."""
    if not root.is_dir():
        raise DataError(f"{root}: folder not found (an image folder dataset needs train/<class>/ and test/<class>/).")
    for split in SPLITS:  # both folders first: a missing one is likelier than a bad class in the other
        if not (root / split).is_dir():
            raise DataError(f"{root / split}: folder not found (an image folder dataset needs train/ and test/).")
    listed = {split: list_split(root / split, with_stats=True) for split in SPLITS}
    train_classes, test_classes = listed["train"][0], listed["test"][0]
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise DataError(
            f"{root}: train and test must have the same class folders, but only train has {only_train or 'none'} "
            f"and only test has {only_test or 'none'}."
        )
    return {split: listed[split][1:] for split in SPLITS}, train_classes


# --------------------------------------------------------------------------- cache


def cache_mode(cache: Union[bool, str, None]) -> str:
    """Normalize the ``cache`` argument to one of :data:`CACHE_MODES`."""
    if cache is True or cache is None:
        return "stat"
    if cache is False:
        return "off"
    mode = str(cache).strip().lower()
    if mode in ("on", "true"):
        return "stat"
    if mode in ("false", "none"):
        return "off"
    if mode not in CACHE_MODES:
        raise DataError(f"cache must be True, False or one of {', '.join(CACHE_MODES)}, got {cache!r}.")
    return mode


def cache_key(root: Path, files: dict, image_size: int, mode: str) -> str:
    """The hex key of an image folder's current state (see the module docstring).

    files: ``{split: (paths, labels, stats)}`` as listed by :func:`_list_folder`.
    """
    import PIL

    h = hashlib.sha256()
    h.update(json.dumps({"format": CACHE_FORMAT, "image_size": image_size, "mode": mode, "decode": "RGB bilinear",
                         "pillow": PIL.__version__}, sort_keys=True).encode())
    for split in SPLITS:
        paths, labels, stats = files[split]
        for path, label, (size, mtime_ns) in zip(paths, labels, stats):
            rel = path.relative_to(root).as_posix()
            h.update(f"\0{rel}\0{label}\0".encode())
            if mode == "content":
                try:
                    h.update(hashlib.sha256(path.read_bytes()).digest())
                except OSError as e:
                    raise DataError(f"{path} could not be read ({e}).") from None
            else:
                h.update(f"{size}\0{mtime_ns}".encode())
    return h.hexdigest()


def cache_path(root: Path, image_size: int, mode: str, cache_dir: Optional[Union[str, Path]] = None) -> Path:
    """Where the cache of ``root`` at ``image_size`` lives: one file per (resolved folder, size,
    mode), so a changed folder replaces its cache file instead of adding another."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    resolved = str(Path(root).resolve())
    slot = hashlib.sha256(f"{resolved}\0{image_size}\0{mode}".encode()).hexdigest()[:16]
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(resolved).name)[:40] or "root"
    return folder / f"imagefolder-{name}-{image_size}px-{slot}.npz"


def read_cache(path: Path, key: str, image_size: int) -> Optional[tuple]:
    """The cached ``(train_x, train_y, test_x, test_y, classes)`` if ``path`` holds the cache for
    ``key``; None if there is no file or it is for another key (the folder changed); None with a
    :class:`CacheWarning` if the file is unreadable or malformed."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            arrays = tuple(z[k] for k in ("train_x", "train_y", "test_x", "test_y"))
            classes = [str(c) for c in z["classes"].tolist()]
        train_x, train_y, test_x, test_y = arrays
        for x, y in ((train_x, train_y), (test_x, test_y)):
            if (x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (3, image_size, image_size)
                    or y.dtype != np.int64 or y.shape != (len(x),)
                    or (len(y) and (y.min() < 0 or y.max() >= len(classes)))):
                raise ValueError("arrays of the wrong type or shape")
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        warnings.warn(f"{path}: image-folder cache file is unreadable ({type(e).__name__}: {e}); "
                      f"ignoring it and decoding the images again.", CacheWarning, stacklevel=4)
        return None
    return train_x, train_y, test_x, test_y, classes


def write_cache(path: Path, key: str, train_x, train_y, test_x, test_y, classes: Sequence[str]) -> bool:
    """Write the cache file atomically (temporary name in the same folder, then rename). Returns
    whether it was written; a failure is a :class:`CacheWarning`, not an error."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                     classes=np.array(list(classes), dtype=str))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return True
    except OSError as e:
        warnings.warn(f"{path}: could not write the image-folder cache ({type(e).__name__}: {e}); "
                      f"the images will be decoded again next time.", CacheWarning, stacklevel=4)
        try:
            tmp.unlink()
        except OSError:
            pass
        return False


# --------------------------------------------------------------------------- loading


def load_image_folder(root: Path, image_size: int = 32, workers: int = 0, cache: Union[bool, str] = True,
                      cache_dir: Optional[Union[str, Path]] = None):
    """An image folder under ``root`` as ``(train_x, train_y, test_x, test_y, classes, split)``.

    image_size: side in pixels every image is resized to.
    workers:    DataLoader worker processes for decoding (0 = decode in this process).
    cache:      ``"stat"`` (or True), ``"content"`` or ``"off"`` (or False); see the module docstring.
    cache_dir:  folder of the cache files (default :func:`default_cache_dir`).
    """
    root = Path(root)
    mode = cache_mode(cache)
    files, classes = _list_folder(root)
    split = f"train/ and test/ folders resized to {image_size}x{image_size}"
    path = key = None
    if mode != "off":
        key = cache_key(root, files, image_size, mode)
        path = cache_path(root, image_size, mode, cache_dir)
        hit = read_cache(path, key, image_size)
        if hit is not None and hit[4] == list(classes):
            return (*hit, split)
    train_paths, train_labels, _ = files["train"]
    test_paths, test_labels, _ = files["test"]
    train_x = decode_all(train_paths, image_size, workers, "decoding train")
    test_x = decode_all(test_paths, image_size, workers, "decoding test")
    train_y = np.asarray(train_labels, dtype=np.int64)
    test_y = np.asarray(test_labels, dtype=np.int64)
    if path is not None:
        write_cache(path, key, train_x, train_y, test_x, test_y, classes)
    return train_x, train_y, test_x, test_y, classes, split
