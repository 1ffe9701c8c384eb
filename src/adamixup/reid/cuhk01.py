"""CUHK01 ("CUHK Campus"; Li, Zhao, Wang, "Human Reidentification with Transferred Metric
Learning", ACCV 2012): the folder reader and the usual evaluation protocol.

The data: one folder ``campus/`` of images named ``PPPPIII.png``, PPPP the person (0001–0971) and
III the image of that person (001–004); 001 and 002 were taken by camera A, 003 and 004 by
camera B (the convention of the usual CUHK01 loaders). 971 persons × 4 images = 3,884 images,
60 × 160 pixels.

There is no official split. The common protocol, implemented here:

* the persons are split at random into training and test identities: 485 / 486 by default, or
  871 / 100 with ``num_test=100``; the split is repeated ``num_splits`` times (10 by default) and
  the results averaged — split ``i`` is drawn from ``(seed, i)``, so every split is reproducible
  and different splits differ;
* training: all images of the training persons, relabelled ``0..N-1`` in increasing order of the
  original ids, with their cameras (A = 0, B = 1);
* query: camera-A images of the test persons; gallery: their camera-B images. ``shot="single"``
  keeps one image per person and camera, chosen at random from ``(seed, i)`` (reproducible);
  ``shot="multi"`` keeps them all.

Query and gallery never share a camera, so the Market-1501 protocol of
:func:`adamixup.reid.metrics.evaluate_rank` (which drops same-person same-camera gallery images)
drops nothing and computes the usual CMC / mAP.

File names: image files (any extension of ``IMAGE_EXTENSIONS``) must follow the PPPPIII pattern —
one that does not stops the reader with a ``DataError`` naming it, since a stray image in the
folder usually means a wrong folder or a damaged copy; other files (``Thumbs.db``, ``.DS_Store``,
a README) are ignored.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

import numpy as np

from ..data.base import DataError
from .data import IMAGE_EXTENSIONS, ReIDData, ReIDSplit, check_image_files, relabel_train

NUM_IDS = 971
NUM_IMAGES = 3884
NUM_SPLITS = 10
NUM_TEST = 486
SHOTS = ("single", "multi")
# image number within a person -> 0-based camera (A = 0, B = 1)
CAMERA_OF_IMAGE = {1: 0, 2: 0, 3: 1, 4: 1}
# folders under ``root`` that may hold the images, besides ``root`` itself
FOLDER_CANDIDATES = ("campus", os.path.join("CUHK01", "campus"), os.path.join("cuhk01", "campus"), "CUHK01", "cuhk01")
_NAME = re.compile(r"^(\d{4})(\d{3})\.[A-Za-z]+$")


@dataclass
class CUHK01Images:
    """Every image of a CUHK01 folder, sorted by name, as parallel arrays.

    folder: the folder that holds them.
    paths:  image file paths.
    pids:   ``(n,)`` int64 person ids as in the names (1..971).
    camids: ``(n,)`` int64 cameras, 0 (A) or 1 (B).
    """

    folder: str
    paths: List[str]
    pids: np.ndarray
    camids: np.ndarray

    @property
    def person_ids(self) -> np.ndarray:
        """The distinct person ids, increasing."""
        return np.unique(self.pids)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def find_cuhk01_folder(root: str) -> str:
    """The folder that holds the ``PPPPIII.png`` images: ``root`` itself, or ``root/campus``
    (also ``root/CUHK01/campus``, ``root/cuhk01/campus``, ``root/CUHK01``, ``root/cuhk01``)."""
    if not os.path.isdir(root):
        raise DataError(f"CUHK01 root folder {root} does not exist")
    for base in [root, *(os.path.join(root, c) for c in FOLDER_CANDIDATES)]:
        if os.path.isdir(base) and any(_is_image(n) for n in os.listdir(base)):
            return base
    raise DataError(
        f"CUHK01 folder {os.path.join(root, 'campus')} is missing (expected PPPPIII.png images in {root} "
        f"or in one of its subfolders {', '.join(FOLDER_CANDIDATES)})"
    )


def list_cuhk01(root: str, check_images: bool = True) -> CUHK01Images:
    """List and check a CUHK01 folder (``root`` as for :func:`find_cuhk01_folder`).

    Raises ``DataError`` naming the file or folder when: the folder is missing; an image file's
    name is not ``PPPPIII.<ext>`` or its image number is not 1–4; two files are the same image
    (``0001001.png`` and ``0001001.jpg``); a person lacks camera A (001/002) or camera B
    (003/004); with ``check_images``, an image's header cannot be read
    (:func:`adamixup.reid.data.check_image_files`). Non-image files are ignored.
    """
    folder = find_cuhk01_folder(root)
    seen = {}
    paths, pids, cams = [], [], []
    for name in sorted(os.listdir(folder)):
        if not _is_image(name):
            continue
        path = os.path.join(folder, name)
        m = _NAME.match(name)
        if m is None:
            raise DataError(f"CUHK01 image file {path} is not named PPPPIII.png (person, image number: e.g. 0001001.png)")
        pid, index = int(m.group(1)), int(m.group(2))
        if index not in CAMERA_OF_IMAGE:
            raise DataError(
                f"CUHK01 image file {path} has image number {index}; each person has images 001-004 "
                "(001-002 camera A, 003-004 camera B)"
            )
        if (pid, index) in seen:
            raise DataError(f"CUHK01 image files {seen[pid, index]} and {path} are the same image of person {pid:04d}")
        seen[pid, index] = path
        paths.append(path)
        pids.append(pid)
        cams.append(CAMERA_OF_IMAGE[index])
    pids_a, cams_a = np.asarray(pids, dtype=np.int64), np.asarray(cams, dtype=np.int64)
    for pid in np.unique(pids_a):
        have = set(cams_a[pids_a == pid].tolist())
        for cam, label, numbers in ((0, "A", "001 or 002"), (1, "B", "003 or 004")):
            if cam not in have:
                raise DataError(
                    f"CUHK01 person {pid:04d} in {folder} has no camera-{label} image (image {numbers}); "
                    "every person needs both cameras"
                )
    if np.unique(pids_a).size < 2:
        raise DataError(f"CUHK01 folder {folder} holds images of only one person; a split needs at least two")
    if check_images:
        check_image_files(paths, "CUHK01")
    return CUHK01Images(folder, paths, pids_a, cams_a)


def split_identities(
    person_ids: Sequence[int], num_test: int = NUM_TEST, split: int = 0, seed: int = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """``(train_ids, test_ids)``, both sorted: ``num_test`` persons drawn at random for testing,
    the rest for training. The draw depends only on the sorted ids, ``seed`` and ``split``: the
    same arguments give the same split, another ``split`` index another one."""
    ids = np.unique(np.asarray(person_ids, dtype=np.int64))
    if not 1 <= num_test < ids.size:
        raise DataError(f"num_test must lie in 1..{ids.size - 1} for {ids.size} persons, got {num_test}")
    if split < 0:
        raise DataError(f"split index must be >= 0, got {split}")
    rng = np.random.default_rng([int(seed), int(split), 0])
    order = rng.permutation(ids.size)
    return np.sort(ids[order[num_test:]]), np.sort(ids[order[:num_test]])


def _pick(images: CUHK01Images, ids: np.ndarray, cam: int, shot: str, rng: np.random.Generator) -> ReIDSplit:
    """The camera-``cam`` images of persons ``ids``: all of them, or one per person at random."""
    name = "query" if cam == 0 else "gallery"
    rows = np.flatnonzero(np.isin(images.pids, ids) & (images.camids == cam))  # sorted by name, so by person
    if shot == "single":
        pid_of = images.pids[rows]
        starts = np.flatnonzero(np.r_[True, pid_of[1:] != pid_of[:-1]])
        counts = np.diff(np.r_[starts, rows.size])
        rows = rows[starts + (rng.random(starts.size) * counts).astype(np.int64)]
    return ReIDSplit(name, [images.paths[i] for i in rows], images.pids[rows].copy(), images.camids[rows].copy())


def _check_protocol(split: int, shot: str, num_splits: int) -> None:
    if shot not in SHOTS:
        raise DataError(f"shot must be 'single' or 'multi', got {shot!r}")
    if num_splits < 1:
        raise DataError(f"num_splits must be >= 1, got {num_splits}")
    if not 0 <= split < num_splits:
        raise DataError(f"split index must lie in 0..{num_splits - 1} (num_splits={num_splits}), got {split}")


def cuhk01_split(
    images: CUHK01Images,
    split: int = 0,
    num_test: int = NUM_TEST,
    shot: str = "single",
    seed: int = 0,
    num_splits: int = NUM_SPLITS,
) -> ReIDData:
    """Split ``split`` (``0..num_splits-1``) of the protocol (see the module docstring) over
    listed images, as a :class:`ReIDData` named "cuhk01".

    split:      which of the ``num_splits`` random identity splits.
    num_test:   test persons (486 of 971 by default; 100 for the 871 / 100 protocol).
    shot:       "single": one query and one gallery image per test person, drawn at random;
                "multi": every image (two per camera in the full data set).
    seed:       the seed of the splits and the single-shot draws.
    num_splits: how many splits the protocol repeats (10); ``split`` must be below it.
    """
    _check_protocol(split, shot, num_splits)
    train_ids, test_ids = split_identities(images.person_ids, num_test, split, seed)
    rows = np.flatnonzero(np.isin(images.pids, train_ids))
    train, mapping = relabel_train(
        ReIDSplit("train", [images.paths[i] for i in rows], images.pids[rows].copy(), images.camids[rows].copy())
    )
    rng = np.random.default_rng([int(seed), int(split), 1])  # apart from the split's draw: shot changes nothing else
    query = _pick(images, test_ids, 0, shot, rng)
    gallery = _pick(images, test_ids, 1, shot, rng)
    return ReIDData("cuhk01", images.folder, train, query, gallery, mapping)


def read_cuhk01(
    root: str,
    split: int = 0,
    num_test: int = NUM_TEST,
    shot: str = "single",
    seed: int = 0,
    num_splits: int = NUM_SPLITS,
    check_images: bool = True,
) -> ReIDData:
    """CUHK01 under ``root`` (the ``campus/`` folder itself or a folder that holds it), split
    ``split`` of the protocol: :func:`list_cuhk01` then :func:`cuhk01_split` (arguments as there).
    Registered as ``read_reid_dataset("cuhk01", root, split=..., num_test=..., shot=..., seed=...)``."""
    _check_protocol(split, shot, num_splits)  # before listing the folder
    return cuhk01_split(list_cuhk01(root, check_images), split, num_test, shot, seed, num_splits)


def iter_cuhk01_splits(
    root: str, num_test: int = NUM_TEST, shot: str = "single", seed: int = 0, num_splits: int = NUM_SPLITS
) -> Iterator[ReIDData]:
    """Every split ``0..num_splits-1`` of the protocol in turn, listing and checking the folder once."""
    _check_protocol(0, shot, num_splits)
    images = list_cuhk01(root)
    for split in range(num_splits):
        yield cuhk01_split(images, split, num_test, shot, seed, num_splits)
