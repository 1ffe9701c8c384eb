"""CUHK01: the folder reader, its errors and the random-split protocol, on a tiny fake folder of
real PNG files (and on the real data set when it lies beside the checkout); the image-header check
of every re-ID reader."""
import os
import re

import numpy as np
import pytest
from PIL import Image

from adamixup.data.base import DataError
from adamixup.reid.data import hold_out_identities, read_market1501
from adamixup.reid.datasets import read_reid_dataset
from adamixup.reid.cuhk01 import (
    iter_cuhk01_splits,
    list_cuhk01,
    read_cuhk01,
    split_identities,
)

REAL = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cuhk01", "campus")
if not os.path.isdir(REAL):
    REAL = "/work/shared/data/cuhk01/campus"


def _png(path, value):
    Image.fromarray(np.full((16, 6, 3), value % 256, dtype=np.uint8)).save(path)


def make_cuhk01(root, persons=12, images=(1, 2, 3, 4)):
    """``root/campus/PPPPIII.png`` for persons 1..persons; returns the campus folder."""
    campus = root / "campus"
    os.makedirs(campus, exist_ok=True)
    for pid in range(1, persons + 1):
        for i in images:
            _png(campus / f"{pid:04d}{i:03d}.png", 10 * pid + i)
    return campus


@pytest.fixture
def cuhk(tmp_path):
    campus = make_cuhk01(tmp_path)
    (campus / "Thumbs.db").write_bytes(b"\0\1")  # not an image: ignored
    return tmp_path


def test_listing_and_roots(cuhk):
    images = list_cuhk01(str(cuhk))
    assert len(images.paths) == 48 and images.person_ids.tolist() == list(range(1, 13))
    assert images.camids.tolist() == [0, 0, 1, 1] * 12
    # the campus folder itself is accepted as root too, and the registry passes keyword arguments
    direct = read_reid_dataset("CUHK01", str(cuhk / "campus"), split=2, num_test=5, shot="multi", seed=7)
    via_parent = read_cuhk01(str(cuhk), split=2, num_test=5, shot="multi", seed=7)
    assert direct.name == "cuhk01" and direct.root == str(cuhk / "campus")
    assert direct.query.paths == via_parent.query.paths and direct.train.paths == via_parent.train.paths


def test_protocol_split_sizes_and_cameras(cuhk):
    data = read_cuhk01(str(cuhk), num_test=5)  # single shot by default
    train_ids = set(data.train_pid_map)
    test_ids = set(data.query.pids.tolist())
    assert len(train_ids) == 7 and len(test_ids) == 5 and not train_ids & test_ids
    assert train_ids | test_ids == set(range(1, 13))
    assert len(data.train) == 28 and sorted(set(data.train.pids.tolist())) == list(range(7))
    assert set(data.train.camids.tolist()) == {0, 1}
    # relabelled in increasing order of the original ids
    assert [data.train_pid_map[p] for p in sorted(train_ids)] == list(range(7))
    # query: camera A only, gallery: camera B only, one image per test person each (single shot)
    assert (data.query.camids == 0).all() and (data.gallery.camids == 1).all()
    assert len(data.query) == len(data.gallery) == 5
    assert set(data.gallery.pids.tolist()) == test_ids
    assert all(p[-7:-4] in ("001", "002") for p in data.query.paths)
    assert all(p[-7:-4] in ("003", "004") for p in data.gallery.paths)
    multi = read_cuhk01(str(cuhk), num_test=5, shot="multi")
    assert set(multi.query.pids.tolist()) == test_ids and len(multi.query) == len(multi.gallery) == 10
    assert len(multi.train) == 28
    # the default protocol on an even split: 12 // 2 test persons would be asked by num_test
    assert len(split_identities(range(1, 13), num_test=6)[1]) == 6


def test_splits_are_reproducible_and_differ_by_index(cuhk):
    def test_ids(**kw):
        return read_cuhk01(str(cuhk), num_test=5, **kw).query.pids.tolist()

    assert test_ids(split=3, seed=1) == test_ids(split=3, seed=1)
    assert len({tuple(test_ids(split=i)) for i in range(5)}) >= 4
    assert test_ids(split=0, seed=0) != test_ids(split=0, seed=1)
    # single shot: the draw is reproducible and, over splits and seeds, uses both images of a camera
    a = read_cuhk01(str(cuhk), num_test=5, seed=4).query.paths
    assert a == read_cuhk01(str(cuhk), num_test=5, seed=4).query.paths
    picked = {p[-7:-4] for s in range(4) for p in read_cuhk01(str(cuhk), num_test=5, seed=s).query.paths}
    assert picked == {"001", "002"}
    # the single-shot draw does not change the identity split
    assert test_ids(split=2, shot="multi")[::2] == test_ids(split=2, shot="single")
    splits = list(iter_cuhk01_splits(str(cuhk), num_test=5, num_splits=3))
    assert [d.query.pids.tolist() for d in splits] == [test_ids(split=i, num_splits=3) for i in range(3)]


def test_a_validation_split_holds_out_training_identities_only(cuhk):
    data = read_cuhk01(str(cuhk), num_test=5, split=1)
    val = hold_out_identities(data, 0.3, seed=3)
    label_of = data.train_pid_map
    held = {p for p, l in label_of.items() if l in set(val.query.pids.tolist())}
    assert len(held) == 2 and set(val.train_pid_map) == set(label_of) - held  # round(0.3 * 7) persons
    assert not held & set(data.query.pids.tolist())  # the test persons are not used
    assert len(val.train) == 20 and sorted(set(val.train.pids.tolist())) == list(range(5))
    # one camera-A query image per held-out person, both of its camera-B images in the gallery
    assert len(val.query) == 2 and (val.query.camids == 0).all()
    assert len(val.gallery) == 4 and (val.gallery.camids == 1).all()
    assert set(val.gallery.pids.tolist()) == set(val.query.pids.tolist())
    # the new labels keep the original person ids, and the draw is reproducible
    assert all(os.path.basename(path)[:4] == f"{p:04d}" for p, label in val.train_pid_map.items()
               for path, pid, _ in val.train if pid == label)
    assert hold_out_identities(data, 0.3, seed=3).query.paths == val.query.paths
    for bad in (0.0, 1.0, 0.01):
        with pytest.raises(DataError, match="validation fraction"):
            hold_out_identities(data, bad)


def test_protocol_argument_errors(cuhk):
    with pytest.raises(DataError, match=r"num_test must lie in 1\.\.11 for 12 persons, got 12"):
        read_cuhk01(str(cuhk), num_test=12)
    with pytest.raises(DataError, match=r"split index must lie in 0\.\.9 \(num_splits=10\), got 10"):
        read_cuhk01(str(cuhk), split=10)
    with pytest.raises(DataError, match="shot must be 'single' or 'multi', got 'double'"):
        read_cuhk01(str(cuhk), shot="double")


def test_folder_errors_name_the_file_or_folder(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"CUHK01 root folder {tmp_path / 'nowhere'} does not exist")):
        list_cuhk01(str(tmp_path / "nowhere"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DataError, match=re.escape(f"CUHK01 folder {tmp_path / 'empty' / 'campus'} is missing")):
        list_cuhk01(str(tmp_path / "empty"))

    campus = make_cuhk01(tmp_path / "a", persons=3)
    _png(campus / "0004001_copy.png", 1)
    with pytest.raises(DataError, match=re.escape(f"CUHK01 image file {campus / '0004001_copy.png'} is not named PPPPIII.png")):
        list_cuhk01(str(campus))
    os.remove(campus / "0004001_copy.png")
    _png(campus / "0004005.png", 1)
    with pytest.raises(DataError, match="0004005.png has image number 5; each person has images 001-004"):
        list_cuhk01(str(campus))
    os.remove(campus / "0004005.png")
    _png(campus / "0002003.jpg", 1)
    with pytest.raises(DataError, match="0002003.jpg and .*0002003.png are the same image of person 0002"):
        list_cuhk01(str(campus))
    os.remove(campus / "0002003.jpg")
    for i in (3, 4):
        os.remove(campus / f"0002{i:03d}.png")
    with pytest.raises(DataError, match=r"CUHK01 person 0002 in .* has no camera-B image \(image 003 or 004\)"):
        list_cuhk01(str(campus))

    broken = make_cuhk01(tmp_path / "b", persons=3)
    open(broken / "0003002.png", "wb").close()
    with pytest.raises(DataError, match=re.escape(f"image file {broken / '0003002.png'} is empty")):
        list_cuhk01(str(tmp_path / "b"))
    assert len(list_cuhk01(str(tmp_path / "b"), check_images=False).paths) == 12


def test_reid_readers_stop_on_a_broken_image_naming_it(tmp_path):
    root = tmp_path / "Market-1501-v15.09.15"
    for folder, names in (
        ("bounding_box_train", ["0002_c1s1_000001_01.jpg", "0002_c2s1_000002_01.jpg"]),
        ("query", ["0005_c1s1_000003_01.jpg"]),
        ("bounding_box_test", ["0005_c2s1_000004_01.jpg", "0005_c3s1_000005_01.jpg"]),
    ):
        os.makedirs(root / folder)
        for i, name in enumerate(names):
            Image.fromarray(np.full((16, 8, 3), 40 * i, dtype=np.uint8)).save(root / folder / name, "JPEG")
    assert len(read_market1501(str(tmp_path), check=False).gallery) == 2
    empty = root / "bounding_box_test" / "0005_c4s1_000006_01.jpg"
    open(empty, "wb").close()
    with pytest.raises(DataError, match="^" + re.escape(f"image file {empty} is empty (0 bytes)") + "$"):
        read_market1501(str(tmp_path), check=False)
    empty.write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match="^" + re.escape(f"image file {empty} is not an image Pillow can identify") + "$"):
        read_reid_dataset("market1501", str(tmp_path), check=False)
    assert len(read_market1501(str(tmp_path), check=False, check_images=False).gallery) == 3


@pytest.mark.skipif(not os.path.isdir(REAL), reason="the real CUHK01 data set is not beside the checkout")
def test_real_cuhk01():
    images = list_cuhk01(REAL)
    assert images.person_ids.size == 971 and len(images.paths) == 3884
    data = read_reid_dataset("cuhk01", os.path.dirname(REAL))
    assert data.num_train_pids == 485 and len(data.train) == 1940
    assert len(data.query) == len(data.gallery) == 486 and data.query.num_pids == 486
    small = read_cuhk01(REAL, split=9, num_test=100, shot="multi")
    assert small.num_train_pids == 871 and len(small.query) == len(small.gallery) == 200
