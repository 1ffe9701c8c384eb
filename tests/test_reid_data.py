"""Re-ID data: dataset readers on small trees of real JPEG files, statistics, the image Dataset,
transforms and the PK sampler."""
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from adamixup.reid.sampler import PKBatchSampler
from adamixup.reid.data import (
    PUBLISHED_STATS,
    ReIDImageDataset,
    check_statistics,
    dataset_statistics,
    describe,
    parse_msmt17_cam,
    parse_pid_cam,
    read_generic,
    read_market1501,
    read_msmt17,
)
from adamixup.reid.datasets import read_reid_dataset
from adamixup.reid.transforms import build_test_transform, build_train_transform


def _jpeg(path, seed, size=(16, 32)):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, "JPEG")


# Market-1501-style content: (folder, [(pid, cam, count)])
MARKET = {
    "bounding_box_train": [(2, 1, 3), (2, 2, 2), (7, 1, 4), (10, 3, 1), (15, 2, 3), (15, 5, 2)],
    "query": [(20, 1, 1), (20, 2, 1), (21, 3, 1), (22, 6, 1)],
    "bounding_box_test": [(20, 1, 2), (20, 3, 2), (21, 3, 1), (21, 4, 2), (22, 1, 2), (0, 2, 3), (-1, 1, 2), (-1, 4, 1)],
}


def make_market(root, name_fmt="{pid:04d}_c{cam}s1_{i:06d}_01.jpg", content=MARKET):
    seed = 0
    for folder, entries in content.items():
        for pid, cam, count in entries:
            for i in range(count):
                seed += 1
                _jpeg(os.path.join(root, folder, name_fmt.format(pid=pid, cam=cam, i=seed)), seed)
    return str(root)


@pytest.fixture
def market(tmp_path):
    root = make_market(tmp_path / "Market-1501-v15.09.15")
    open(os.path.join(root, "bounding_box_train", "Thumbs.db"), "w").close()  # ignored
    return str(tmp_path)


def test_market_reader_relabels_drops_junk_keeps_distractors(market):
    with pytest.warns(UserWarning, match="differs from the published statistics"):
        data = read_market1501(market)
    assert data.root.endswith("Market-1501-v15.09.15")
    assert data.num_train_pids == 4 and len(data.train) == 15
    assert sorted(set(data.train.pids.tolist())) == [0, 1, 2, 3]
    assert data.train_pid_map == {2: 0, 7: 1, 10: 2, 15: 3}
    # relabelling keeps images of one person together
    names = [os.path.basename(p)[:4] for p in data.train.paths]
    for name, pid in zip(names, data.train.pids):
        assert data.train_pid_map[int(name)] == pid
    assert set(data.train.camids.tolist()) == {0, 1, 2, 4}  # cameras 1, 2, 3, 5 stored 0-based
    assert len(data.query) == 4 and data.query.pids.tolist() == [20, 20, 21, 22]
    assert data.query.camids.tolist() == [0, 1, 2, 5]
    assert -1 not in data.gallery.pids and (data.gallery.pids == 0).sum() == 3 and len(data.gallery) == 12
    assert data.num_cameras == 6
    path, pid, cam = next(iter(data.gallery))
    assert os.path.isfile(path) and isinstance(pid, int) and isinstance(cam, int)


def test_statistics_table_and_published_numbers(market, capsys):
    data = read_market1501(market, check=False)
    stats = dataset_statistics(data)
    assert stats == {
        "train": {"ids": 4, "images": 15, "cameras": 4},
        "query": {"ids": 3, "images": 4, "cameras": 4},
        "gallery": {"ids": 4, "images": 12, "cameras": 4},
    }
    with pytest.warns(UserWarning) as record:
        describe(data)
    out = capsys.readouterr().out
    assert "gallery" in out and "12" in out
    message = str(record[0].message)
    assert "train ids: 4 (published 751)" in message and "gallery images: 12 (published 15913)" in message
    # agreeing numbers: no warning
    expected = {s: (v["ids"], v["images"], v["cameras"]) for s, v in stats.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_statistics(data, expected) == []
    assert PUBLISHED_STATS["market1501"]["gallery"] == (751, 15913, 6)
    assert PUBLISHED_STATS["dukemtmcreid"]["gallery"] == (1110, 17661, 8)
    assert PUBLISHED_STATS["msmt17"]["train"] == (1041, 32621, 15)


def test_duke_and_generic_layouts(tmp_path):
    content = {
        "bounding_box_train": [(1, 2, 2), (5, 8, 2)],
        "query": [(9, 1, 1)],
        "bounding_box_test": [(9, 7, 2), (30, 3, 1)],
    }
    root = make_market(tmp_path / "DukeMTMC-reID", "{pid:04d}_c{cam}_f{i:07d}.jpg", content)
    with pytest.warns(UserWarning):
        duke = read_reid_dataset("DukeMTMC-reID", str(tmp_path))
    assert duke.name == "dukemtmcreid" and duke.train.pids.tolist() == [0, 0, 1, 1]
    assert duke.train.camids.tolist() == [1, 1, 7, 7] and duke.gallery.pids.tolist() == [9, 9, 30]
    generic = read_generic(root, cam_base=1)
    assert generic.num_train_pids == 2 and len(generic.gallery) == 3
    zero_based = read_generic(root, cam_base=0)
    assert zero_based.train.camids.tolist() == [2, 2, 8, 8]


def test_market_rejects_a_ninth_camera(tmp_path):
    make_market(tmp_path, "{pid:04d}_c{cam}_f{i:07d}.jpg", {"bounding_box_train": [(1, 9, 1)], "query": [(2, 1, 1)], "bounding_box_test": [(2, 2, 1)]})
    with pytest.raises(ValueError, match="camera 9"):
        read_market1501(str(tmp_path))


def test_bad_names_empty_splits_missing_folders(tmp_path, market):
    bad = os.path.join(market, "Market-1501-v15.09.15", "query", "holiday.jpg")
    _jpeg(bad, 1)
    with pytest.raises(ValueError, match="holiday.jpg is not named <pid>_c<camera>"):
        read_market1501(market, check=False)
    os.remove(bad)

    with pytest.raises(ValueError, match="root folder .* does not exist"):
        read_market1501(str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    for f in ("bounding_box_train", "query", "bounding_box_test"):
        os.makedirs(empty / f)
    _jpeg(str(empty / "bounding_box_train" / "0001_c1s1_000001_01.jpg"), 2)
    _jpeg(str(empty / "bounding_box_test" / "0001_c2s1_000001_01.jpg"), 3)
    _jpeg(str(empty / "query" / "-1_c1s1_000001_01.jpg"), 4)  # junk only: nothing usable
    with pytest.raises(ValueError, match="holds no usable images for the query split"):
        read_market1501(str(empty), check=False)
    partial = tmp_path / "partial"
    os.makedirs(partial / "query")
    with pytest.raises(ValueError, match="bounding_box_train is missing"):
        read_market1501(str(partial))
    with pytest.raises(ValueError, match="unknown re-ID dataset"):
        read_reid_dataset("cuhk03", str(partial))


def test_name_parsers():
    assert parse_pid_cam("0002_c1s1_000451_03.jpg") == (2, 0)
    assert parse_pid_cam("-1_c3s1_000451_03.jpg") == (-1, 2)
    assert parse_pid_cam("0001_c2_f0046182.jpg") == (1, 1)
    with pytest.raises(ValueError, match="cameras are numbered from 1"):
        parse_pid_cam("0001_c0_f0046182.jpg")
    assert parse_msmt17_cam("0000_000_01_0303morning_0015_0.jpg") == 0
    assert parse_msmt17_cam("1040/1040_012_15_0113noon_0941_1.jpg") == 14
    with pytest.raises(ValueError, match="MSMT17 image"):
        parse_msmt17_cam("0000_000.jpg")


def make_msmt(root, version=1):
    train_dir, test_dir = ("train", "test") if version == 1 else ("mask_train_v2", "mask_test_v2")
    lists = {
        "list_train.txt": (train_dir, [(0, 1), (0, 2), (3, 5), (3, 5)]),
        "list_val.txt": (train_dir, [(7, 15)]),
        "list_query.txt": (test_dir, [(0, 1), (1, 3)]),
        "list_gallery.txt": (test_dir, [(0, 2), (1, 3), (1, 4), (2, 9)]),
    }
    seed = 100
    for name, (folder, entries) in lists.items():
        lines = []
        for pid, cam in entries:
            seed += 1
            rel = f"{pid:04d}/{pid:04d}_{seed:03d}_{cam:02d}_0303morning_{seed:04d}_0.jpg"
            _jpeg(os.path.join(root, folder, rel), seed)
            lines.append(f"{rel} {pid}\n")
        with open(os.path.join(root, name), "w") as f:
            f.writelines(lines)
    return str(root)


@pytest.mark.parametrize("version", [1, 2])
def test_msmt17_reader(tmp_path, version):
    make_msmt(tmp_path / f"MSMT17_V{version}", version)
    with pytest.warns(UserWarning, match="msmt17"):
        data = read_msmt17(str(tmp_path))
    assert len(data.train) == 5 and data.train.pids.tolist() == [0, 0, 1, 1, 2]  # val merged, relabelled
    assert data.train.camids.tolist() == [0, 1, 4, 4, 14]
    assert data.query.pids.tolist() == [0, 1] and data.gallery.camids.tolist() == [1, 2, 3, 8]
    without_val = read_msmt17(str(tmp_path), merge_val=False, check=False)
    assert len(without_val.train) == 4 and without_val.num_train_pids == 2


def test_msmt17_errors(tmp_path):
    root = make_msmt(tmp_path)
    with open(os.path.join(root, "list_query.txt"), "a") as f:
        f.write("0005/0005_001_01_x_0001_0.jpg\n")
    with pytest.raises(ValueError, match=r"list_query.txt line 3 is not '<relative image path> <pid>'"):
        read_msmt17(root, check=False)
    with open(os.path.join(root, "list_query.txt"), "w") as f:
        f.write("0005/0005_001_01_x_0001_0.jpg 5\n")
    with pytest.raises(ValueError, match="lists 1 images that do not exist"):
        read_msmt17(root, check=False)
    with open(os.path.join(root, "list_query.txt"), "w") as f:
        f.write("0005/0005_001_xx_0001_0.jpg 5\n")
    with pytest.raises(ValueError, match="line 1: MSMT17 image"):
        read_msmt17(root, check=False)
    os.remove(os.path.join(root, "list_val.txt"))
    with pytest.raises(ValueError, match="list_val.txt is missing"):
        read_msmt17(root)


def test_image_dataset_decodes_and_names_unreadable_files(market):
    data = read_market1501(market, check=False)
    ds = ReIDImageDataset(data.query, build_test_transform((32, 16)))
    img, pid, cam = ds[0]
    assert img.shape == (3, 32, 16) and img.dtype == torch.float32 and (pid, cam) == (20, 0)
    raw, _, _ = ReIDImageDataset(data.query)[1]
    assert raw.mode == "RGB" and raw.size == (16, 32)
    with open(data.query.paths[2], "wb") as f:
        f.write(b"not a jpeg")
    with pytest.raises(ValueError, match=f"cannot read image {data.query.paths[2]}"):
        ds[2]
    loader = torch.utils.data.DataLoader(ReIDImageDataset(data.gallery, build_test_transform((32, 16))), batch_size=5)
    images, pids, cams = next(iter(loader))
    assert images.shape == (5, 3, 32, 16) and pids.dtype == torch.int64


def test_transforms_shapes_and_erasing():
    img = Image.fromarray(np.full((200, 90, 3), 200, dtype=np.uint8))
    torch.manual_seed(0)
    train = build_train_transform(flip_p=0.5, padding=10, erasing_p=0.5)  # the strong baseline's recipe
    out = train(img)
    assert out.shape == (3, 256, 128) and out.dtype == torch.float32
    test = build_test_transform()
    t = test(img)
    assert t.shape == (3, 256, 128)
    assert torch.allclose(t[:, 100, 60], (torch.tensor(200 / 255) - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]), atol=1e-3)
    # always-on erasing leaves a zero (mean-colour) rectangle; padding shows up as black borders
    erase = build_train_transform(erasing_p=1.0, padding=0, flip_p=0.0)
    area = [(erase(img) == 0).all(0).float().mean().item() for _ in range(20)]
    assert all(0.015 <= a <= 0.41 for a in area)
    no_aug = build_train_transform()  # the defaults: no augmentation
    assert torch.allclose(no_aug(img), t)


def test_pk_sampler_batches():
    pids = np.repeat(np.arange(10), [6, 6, 5, 4, 4, 8, 2, 1, 7, 5])
    sampler = PKBatchSampler(pids, p=3, k=4, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    seen = []
    for b in batches:
        assert len(b) == 12
        ids = pids[b].reshape(3, 4)
        assert (ids == ids[:, :1]).all() and len(set(ids[:, 0])) == 3  # P distinct ids, K each
        seen += b
    # identities with fewer than K images are drawn with replacement
    small = [b for b in batches if {6, 7} & set(pids[b].tolist())]
    for b in small:
        for pid in {6, 7} & set(pids[b].tolist()):
            idx = [i for i in b if pids[i] == pid]
            assert len(idx) == 4 and len(set(idx)) <= (2 if pid == 6 else 1)
    # otherwise images are not repeated within an epoch
    big = [i for i in seen if pids[i] not in (6, 7)]
    assert len(big) == len(set(big))
    # epochs are seeded: same epoch, same batches; another epoch, other batches
    again = PKBatchSampler(pids, p=3, k=4, seed=1)
    assert list(again) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches
    # works as a DataLoader batch sampler
    ds = torch.utils.data.TensorDataset(torch.arange(len(pids)), torch.as_tensor(pids))
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_sampler=sampler)))
    assert x.shape == (12,) and torch.equal(y, torch.as_tensor(pids)[x])


def test_pk_sampler_ranks_get_disjoint_identities():
    pids = np.repeat(np.arange(24), 4)
    for epoch in range(3):
        per_rank = []
        for rank in range(3):
            s = PKBatchSampler(pids, p=2, k=2, seed=5, num_replicas=3, rank=rank)
            s.set_epoch(epoch)
            per_rank.append(list(s))
        assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) > 0  # equal lengths
        ids = [set(pids[np.concatenate(b)].tolist()) for b in per_rank]
        assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    with pytest.raises(ValueError, match="needs at least 48 identities"):
        PKBatchSampler(pids, p=16, k=4, num_replicas=3)
    with pytest.raises(ValueError, match="rank 3 is outside"):
        PKBatchSampler(pids, p=2, k=2, num_replicas=3, rank=3)
