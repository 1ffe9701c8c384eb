"""CIFAR-10 and CIFAR-100 from the official "python version" pickles, read safely.

Accepted layouts for ``root`` (https://www.cs.toronto.edu/~kriz/cifar.html):

- CIFAR-10: ``root/cifar-10-batches-py/`` or ``root`` itself holding ``data_batch_1`` ..
  ``data_batch_5``, ``test_batch`` and ``batches.meta``; or the official archive
  ``root/cifar-10-python.tar.gz`` (or ``root`` being that archive).
- CIFAR-100: ``root/cifar-100-python/`` or ``root`` itself holding ``train``, ``test`` and ``meta``;
  or ``root/cifar-100-python.tar.gz``. The 100 fine labels are used.

Archives are read member by member with :mod:`tarfile`; nothing is extracted to disk.

A pickle can run any code while it loads, so these files are never handed to ``pickle.load``: a
restricted unpickler admits only the few callables the format needs to rebuild numpy arrays (and
``_codecs.encode``, which Python 3 uses for bytes in protocol-2 pickles); anything else raises a
:class:`DataError` naming the file before it can run. Batches are unpickled with
``encoding="bytes"`` as the Python 2 originals require, so dictionary keys are bytes (``b"data"``).
A batch's ``data`` is ``(n, 3072)`` uint8, each row the red, green and blue 32×32 planes in turn.
"""
from __future__ import annotations

import codecs
import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np

from .base import DataError

try:  # numpy >= 2 (its pickles name numpy._core) ...
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x (its pickles name numpy.core)
    from numpy.core.multiarray import _reconstruct

# (module, name) -> the object it may resolve to. Looked up in this table only: no module is ever
# imported on a pickle's request.
ALLOWED_GLOBALS: Dict[Tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`.

    file:   a binary file object holding the pickle.
    source: the file's name for error messages.
    """

    def __init__(self, file, source: str):
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.source} is not a plain CIFAR pickle: it asks for {module}.{name}, "
                f"which is refused (only numpy arrays, lists, dicts, strings and numbers are allowed)."
            ) from None

    def persistent_load(self, pid):
        raise DataError(f"{self.source} is not a plain CIFAR pickle: it uses persistent ids, which are refused.")


def safe_unpickle(data: bytes, source: str):
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; any failure is a :class:`DataError`
    naming ``source``."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except Exception as e:  # a corrupt pickle can fail in many ways; all mean "not a CIFAR batch"
        raise DataError(f"{source} is not a readable pickle ({type(e).__name__}: {e}).") from None


_SPECS = {
    # name: (folder, archive, train members, test member, meta member, label key, names key, classes)
    "cifar10": (
        "cifar-10-batches-py", "cifar-10-python.tar.gz",
        [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "batches.meta", b"labels", b"label_names", 10,
    ),
    "cifar100": (
        "cifar-100-python", "cifar-100-python.tar.gz",
        ["train"], "test", "meta", b"fine_labels", b"fine_label_names", 100,
    ),
}


def _open_source(name: str, root: Path) -> Tuple[Callable[[str], Tuple[bytes, str]], Callable[[], None]]:
    """A reader ``member -> (bytes, name for messages)`` over the directory or archive found under
    ``root``, and a function that closes it."""
    folder, archive, train, _, _, _, _, _ = _SPECS[name]
    first = train[0]
    if root.is_file() and root.name.endswith((".tar.gz", ".tgz")):
        archive_path = root
    elif (root / folder / first).is_file() or (root / first).is_file():
        base = root / folder if (root / folder / first).is_file() else root

        def read_dir(member: str):
            path = base / member
            try:
                return path.read_bytes(), str(path)
            except FileNotFoundError:
                raise DataError(f"{path}: file not found (a {name} batch folder holds {_members(name)}).") from None
            except OSError as e:
                raise DataError(f"{path} could not be read ({e}).") from None

        return read_dir, lambda: None
    elif (root / archive).is_file():
        archive_path = root / archive
    else:
        raise DataError(
            f"{root} holds neither {folder}/ (with {_members(name)}) nor {archive}; "
            f"provide one of them, nothing is downloaded."
        )
    try:
        tar = tarfile.open(archive_path, "r:gz")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{archive_path} is not a readable .tar.gz archive ({e}).") from None

    def read_tar(member: str):
        where = f"{archive_path}:{folder}/{member}"
        try:
            info = tar.getmember(f"{folder}/{member}")
        except KeyError:
            raise DataError(f"{archive_path} has no member {folder}/{member}.") from None
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise DataError(f"{archive_path} is damaged ({e}).") from None
        if not info.isfile():
            raise DataError(f"{where} is not a regular file.")
        try:
            return tar.extractfile(info).read(), where
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise DataError(f"{where} could not be read from the damaged archive ({e}).") from None

    return read_tar, tar.close


def _members(name: str) -> str:
    _, _, train, test, meta, _, _, _ = _SPECS[name]
    return ", ".join(train + [test, meta])


def _batch(obj, source: str, label_key: bytes, num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """Validate one unpickled batch; return images ``(n, 3, 32, 32)`` and labels ``(n,)``."""
    if not isinstance(obj, dict):
        raise DataError(f"{source} holds a {type(obj).__name__}, not a CIFAR batch dictionary.")
    for key in (b"data", label_key):
        if key not in obj:
            raise DataError(f"{source} lacks the field {key.decode()!r} of a CIFAR batch.")
    data = obj[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{source}: field 'data' must be a uint8 array of shape (n, 3072), got {got}.")
    try:
        labels = np.asarray(obj[label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{source}: field {label_key.decode()!r} is not a list of integers.") from None
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{source} holds {len(data)} images but {labels.size} {label_key.decode()}.")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{source}: field {label_key.decode()!r} spans {labels.min()}..{labels.max()}, "
            f"outside 0..{num_classes - 1}."
        )
    return data.reshape(-1, 3, 32, 32), labels


def _class_names(obj, source: str, names_key: bytes, num_classes: int) -> List[str]:
    names = obj.get(names_key) if isinstance(obj, dict) else None
    if not isinstance(names, (list, tuple)) or len(names) != num_classes:
        raise DataError(f"{source} must hold {names_key.decode()!r}, a list of {num_classes} class names.")
    try:
        return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    except UnicodeDecodeError:
        raise DataError(f"{source}: field {names_key.decode()!r} has a name that is not UTF-8.") from None


def load_cifar(name: str, root: Path):
    """``cifar10`` or ``cifar100`` from ``root`` as ``(train_x, train_y, test_x, test_y, classes, split)``."""
    _, _, train_members, test_member, meta_member, label_key, names_key, num_classes = _SPECS[name]
    read, close = _open_source(name, Path(root))
    try:
        def load(member: str):
            data, source = read(member)
            return _batch(safe_unpickle(data, source), source, label_key, num_classes)

        train = [load(m) for m in train_members]
        test_x, test_y = load(test_member)
        meta, meta_source = read(meta_member)
        classes = _class_names(safe_unpickle(meta, meta_source), meta_source, names_key, num_classes)
    finally:
        close()
    train_x = np.concatenate([x for x, _ in train])
    train_y = np.concatenate([y for _, y in train])
    return train_x, train_y, test_x, test_y, classes, "standard train/test batches"
