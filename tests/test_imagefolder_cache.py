"""The image-folder cache: a hit gives the same tensors without decoding; a changed, added or removed
file, a corrupt cache file, an unwritable cache folder are all noticed. Real JPEG and PNG files,
written here."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

from adamixup.data import DataError, load_dataset
from adamixup.data import imagefolder
from adamixup.data.base import default_cache_dir
from adamixup.data.imagefolder import CacheWarning, cache_path

RNG = np.random.default_rng(7)


def _save(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _folder(root, per_class=(3, 2)):
    """Two classes, JPEG and PNG files mixed, smooth images (JPEG keeps them recognisable)."""
    for split, n in zip(("train", "test"), per_class):
        for c, name in enumerate(("ant", "bee")):
            for i in range(n):
                base = np.linspace(0, 200, 16, dtype=np.uint8)[None, :, None] + RNG.integers(0, 50, (16, 16, 3), dtype=np.uint8)
                suffix = ".jpg" if i % 2 == 0 else ".png"
                _save(root / split / name / f"{i:03d}{suffix}", base.astype(np.uint8))
    return root


class _Counter:
    """Counts decoded files (wraps imagefolder.decode_image)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = imagefolder.decode_image

        def counting(path, size):
            self.calls += 1
            return real(path, size)

        monkeypatch.setattr(imagefolder, "decode_image", counting)


@pytest.fixture
def counter(monkeypatch):
    return _Counter(monkeypatch)


def _same(a, b):
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("train_x", "train_y", "test_x", "test_y")) \
        and a.classes == b.classes and a.mean == b.mean and a.std == b.std


def _load(root, cache_dir, **kw):
    return load_dataset("imagefolder", root=str(root), cache_dir=str(cache_dir), image_size=8, **kw)


def test_a_hit_gives_identical_tensors_without_decoding(tmp_path, counter):
    root, cache = _folder(tmp_path / "data"), tmp_path / "cache"
    plain = _load(root, cache, cache=False)
    assert counter.calls == 10 and not cache.exists()  # cache=False writes nothing
    first = _load(root, cache)
    assert counter.calls == 20
    files = list(cache.iterdir())
    assert [f.suffix for f in files] == [".npz"] and files[0] == cache_path(root, 8, "stat", cache)
    assert not any(p.suffix == ".npz" for p in root.rglob("*"))  # nothing written into the data folder
    again = _load(root, cache)
    assert counter.calls == 20  # read from the cache
    assert _same(plain, first) and _same(plain, again)
    assert again.split == plain.split
    # the cache holds the whole folder: -S and the validation split are drawn after reading it
    s = _load(root, cache, train_fraction=0.5, validation_fraction=0.34)
    assert counter.calls == 20 and (len(s.train_y), len(s.test_y)) == (2, 2)
    # another size is another cache file
    load_dataset("imagefolder", root=str(root), cache_dir=str(cache), image_size=4)
    assert counter.calls == 30 and len(list(cache.glob("*.npz"))) == 2


def test_touched_added_and_removed_files_invalidate_the_cache(tmp_path, counter):
    root, cache = _folder(tmp_path / "data"), tmp_path / "cache"
    _load(root, cache)
    n = counter.calls
    touched = root / "train" / "ant" / "001.png"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    _load(root, cache)
    assert counter.calls == 2 * n
    _load(root, cache)
    assert counter.calls == 2 * n  # the rebuilt cache is used again
    new = np.full((16, 16, 3), 255, np.uint8)
    _save(root / "test" / "bee" / "zzz.png", new)
    added = _load(root, cache)
    assert counter.calls == 3 * n + 1 and len(added.test_y) == 5 and (added.test_x[-1] == 255).all()
    (root / "train" / "bee" / "000.jpg").unlink()
    removed = _load(root, cache)
    assert counter.calls == 4 * n + 1 and len(removed.train_y) == 5  # 5 train + 5 test decoded again
    (root / "train" / "bee" / "002.jpg").rename(root / "train" / "ant" / "002b.jpg")  # moved to another class
    moved = _load(root, cache)
    assert counter.calls == 5 * n + 1 and moved.train_y.tolist() == [0, 0, 0, 0, 1]
    assert len(list(cache.glob("*.npz"))) == 1  # each rebuild replaced the folder's one cache file


def test_content_mode_sees_a_same_size_rewrite_that_stat_mode_cannot(tmp_path, counter):
    root, cache = _folder(tmp_path / "data"), tmp_path / "cache"
    victim = root / "test" / "ant" / "raw.ppm"  # uncompressed: a changed pixel keeps the file's size
    _save(victim, np.zeros((16, 16, 3), np.uint8))
    _load(root, cache, cache="stat")
    _load(root, cache, cache="content")
    n = counter.calls
    st = victim.stat()
    _save(victim, np.full((16, 16, 3), 90, np.uint8))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime set back: invisible to the stat key
    assert victim.stat().st_size == st.st_size
    stale = _load(root, cache, cache="stat")
    assert counter.calls == n  # the documented limit of the stat key
    fresh = _load(root, cache, cache="content")
    assert counter.calls == n + 11
    assert (stale.test_x[2] == 0).all() and (fresh.test_x[2] == 90).all()


def test_a_corrupt_cache_file_is_rebuilt_with_a_warning(tmp_path, counter):
    root, cache = _folder(tmp_path / "data"), tmp_path / "cache"
    good = _load(root, cache)
    path = cache_path(root, 8, "stat", cache)
    n = counter.calls
    for damage in (lambda b: b[: len(b) // 2], lambda b: b"not a zip at all", lambda b: b[:100] + bytes(200) + b[300:]):
        path.write_bytes(damage(path.read_bytes()))
        with pytest.warns(CacheWarning, match="unreadable.*decoding the images again") as record:
            rebuilt = _load(root, cache)
        assert str(path) in str(record[0].message)
        assert counter.calls > n and _same(good, rebuilt)
        n = counter.calls
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _load(root, cache)  # the rebuilt file is whole again: no warning, no decoding
        assert counter.calls == n


def test_a_cache_file_with_wrong_arrays_is_rebuilt(tmp_path, counter):
    root, cache = _folder(tmp_path / "data"), tmp_path / "cache"
    _load(root, cache)
    path = cache_path(root, 8, "stat", cache)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["train_x"] = arrays["train_x"][:, :, :4]  # right key, wrong shape
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.warns(CacheWarning, match="wrong type or shape"):
        d = _load(root, cache)
    assert d.train_x.shape[-1] == 8


def test_an_unwritable_cache_folder_is_a_warning_not_an_error(tmp_path):
    root = _folder(tmp_path / "data")
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(CacheWarning, match="could not write"):
        d = _load(root, blocker / "cache")
    assert len(d.train_y) == 6
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_writes_are_atomic_and_leave_no_temporary_file(tmp_path, monkeypatch):
    root, cache = _folder(tmp_path / "data"), tmp_path / "cache"

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(imagefolder.os, "replace", failing_replace)
    with pytest.warns(CacheWarning, match="disk full"):
        _load(root, cache)
    assert list(cache.iterdir()) == []  # the temporary file is removed, no partial cache file exists
    monkeypatch.undo()
    _load(root, cache)
    assert [p.suffix for p in cache.iterdir()] == [".npz"]


def test_default_cache_folder(tmp_path, monkeypatch, counter):
    monkeypatch.setenv("ADAMIXUP_CACHE", str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    root = _folder(tmp_path / "data")
    load_dataset("imagefolder", root=str(root), image_size=8)
    assert len(list((tmp_path / "env-cache").glob("*.npz"))) == 1
    monkeypatch.delenv("ADAMIXUP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "adamixup"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == default_cache_dir().home() / ".cache" / "adamixup"


@pytest.mark.parametrize("value", ["sometimes", 3])
def test_a_bad_cache_value_is_refused(tmp_path, value):
    root = _folder(tmp_path / "data")
    with pytest.raises(DataError, match="cache must be"):
        load_dataset("imagefolder", root=str(root), cache=value, cache_dir=str(tmp_path / "c"))
