"""Re-ID evaluation: CMC / mAP / mINP against a known answer and a plain per-query reference,
distances, k-reciprocal re-ranking against a plain dense reference, pictures and feature files."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from adamixup.reid.features import export_features, extract_features, load_features
from adamixup.reid.metrics import compute_distance, evaluate_features, evaluate_rank
from adamixup.reid.plots import distance_label, plot_cmc, plot_ranked_lists
from adamixup.reid.rerank import re_ranking


def reference_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """The Market-1501 protocol written plainly, one query at a time (as torchreid's
    eval_market1501), with a stable sort so that equal distances rank by gallery index."""
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        remove = (g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i])
        raw = (g_pids[order] == q_pids[i])[~remove].astype(np.int64)
        if not raw.any():
            continue
        cum = raw.cumsum()
        last = np.flatnonzero(raw).max()
        all_inp.append(cum[last] / (last + 1.0))
        cmc = np.ones(max_rank)
        head = np.minimum(cum, 1)[:max_rank]
        cmc[: len(head)] = head
        all_cmc.append(cmc)
        precision = [c / (k + 1.0) for k, c in enumerate(cum)]
        all_ap.append((np.asarray(precision) * raw).sum() / raw.sum())
    if not all_ap:
        return None
    return np.mean(all_cmc, axis=0), float(np.mean(all_ap)), float(np.mean(all_inp))


def test_known_answer():
    distmat = np.array([[0.1, 0.5, 0.2, 0.3, 0.9, 0.7], [0.4, 0.3, 0.2, 0.1, 0.6, 0.5]])
    cmc, mAP, mINP = evaluate_rank(distmat, np.array([1, 2]), np.array([1, 1, 2, 3, 2, 1]), np.array([0, 1]), np.array([0, 1, 0, 1, 1, 2]), max_rank=5)
    np.testing.assert_allclose(cmc, [0, 0.5, 1, 1, 1])
    assert mAP == pytest.approx(0.458333, abs=1e-6)  # APs 0.41667 and 0.5
    assert mINP == pytest.approx(0.5)  # 2 matches by rank 4, 1 match at rank 2
    # torch tensors are accepted too
    cmc_t, mAP_t, _ = evaluate_rank(torch.tensor(distmat), torch.tensor([1, 2]), torch.tensor([1, 1, 2, 3, 2, 1]), torch.tensor([0, 1]), torch.tensor([0, 1, 0, 1, 1, 2]), max_rank=5)
    assert mAP_t == mAP and np.array_equal(cmc_t, cmc)


@pytest.mark.parametrize("kind", ["float32", "float64", "ties", "negative"])
def test_matches_the_per_query_reference(kind):
    rng = np.random.default_rng({"float32": 0, "float64": 1, "ties": 2, "negative": 3}[kind])
    for trial in range(6):
        num_q, num_g, ids = int(rng.integers(1, 60)), int(rng.integers(1, 300)), int(rng.integers(1, 20))
        q_pids, g_pids = rng.integers(0, ids, num_q), rng.integers(0, ids, num_g)
        q_cams, g_cams = rng.integers(0, 3, num_q), rng.integers(0, 3, num_g)
        if kind == "float32":
            distmat = rng.random((num_q, num_g), dtype=np.float32)
        elif kind == "float64":
            distmat = rng.random((num_q, num_g))
        elif kind == "ties":
            distmat = rng.integers(0, 4, (num_q, num_g)).astype(np.float32 if trial % 2 else np.float64)
        else:
            distmat = rng.normal(size=(num_q, num_g)).astype(np.float32)
            distmat[:, ::7] = -0.0
            distmat[:, ::11] = 0.0
        expected = reference_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20)
        if expected is None:
            with pytest.raises(ValueError, match="no query has a true match"):
                evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20)
            continue
        got = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20, chunk_size=int(rng.integers(1, 20)))
        np.testing.assert_allclose(got[0], expected[0], atol=1e-6)
        assert got[1] == pytest.approx(expected[1], abs=1e-6)
        assert got[2] == pytest.approx(expected[2], abs=1e-6)


def test_realistic_structure_and_errors():
    rng = np.random.default_rng(7)
    q_pids, g_pids = rng.integers(0, 50, 120), np.concatenate([rng.integers(0, 50, 700), np.zeros(50, int)])
    q_cams, g_cams = rng.integers(0, 6, 120), rng.integers(0, 6, 750)
    distmat = rng.random((120, 750)).astype(np.float32) + 0.8 * (q_pids[:, None] != g_pids[None, :])
    got = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams)
    expected = reference_rank(distmat, q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-6)
    assert got[1] == pytest.approx(expected[1], abs=1e-6) and got[2] == pytest.approx(expected[2], abs=1e-6)
    assert got[0].shape == (50,) and np.all(np.diff(got[0]) >= 0)
    # a query whose only matches share its camera is skipped; none valid at all is an error
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_rank(np.zeros((1, 2)), np.array([1]), np.array([1, 2]), np.array([0]), np.array([0, 0]))
    with pytest.raises(ValueError, match="query pids"):
        evaluate_rank(np.zeros((2, 2)), np.array([1]), np.array([1, 2]), np.array([0]), np.array([0, 0]))
    with pytest.raises(ValueError, match="NaN"):
        evaluate_rank(np.full((1, 2), np.nan), np.array([1]), np.array([1, 2]), np.array([0]), np.array([1, 0]))


def test_compute_distance():
    rng = np.random.default_rng(0)
    qf, gf = rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(11, 5)).astype(np.float32)
    d = compute_distance(qf, gf, chunk_size=3)
    np.testing.assert_allclose(d, ((qf[:, None] - gf[None]) ** 2).sum(-1), rtol=1e-5, atol=1e-5)
    cos = compute_distance(torch.from_numpy(qf), torch.from_numpy(gf), metric="cosine")
    qn, gn = qf / np.linalg.norm(qf, axis=1, keepdims=True), gf / np.linalg.norm(gf, axis=1, keepdims=True)
    np.testing.assert_allclose(cos, 1 - qn @ gn.T, atol=1e-5)
    assert d.dtype == np.float32 and d.shape == (7, 11)
    with pytest.raises(ValueError, match="metric must be one of"):
        compute_distance(qf, gf, metric="manhattan")


def dense_rerank_reference(qf, gf, k1, k2, lam):
    """k-reciprocal re-ranking written plainly from the paper, with dense N × N matrices, the
    distance normalized by its row maximum and V rows normalized (see adamixup.reid.rerank), and
    the paper's "at least two thirds" expansion (``expansion="paper"``; the released code's
    default is checked in tests/test_rerank_reference.py)."""
    f = np.concatenate([qf, gf]).astype(np.float64)
    n, nq = len(f), len(qf)
    d = ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1)
    d = d / d.max(axis=1, keepdims=True)
    rank = np.argsort(d, axis=1, kind="stable")

    def reciprocal(p, k):
        return [c for c in rank[p, : k + 1] if p in rank[c, : k + 1]]

    v = np.zeros((n, n))
    for p in range(n):
        r = reciprocal(p, k1)
        robust = set(r)
        for c in r:
            rc = reciprocal(c, int(round(k1 / 2)))
            if rc and 3 * len(set(rc) & set(r)) >= 2 * len(rc):
                robust |= set(rc)
        robust = sorted(robust)
        w = np.exp(-d[p, robust])
        v[p, robust] = w / w.sum()
    if k2 > 1:
        v = np.stack([v[rank[p, :k2]].mean(axis=0) for p in range(n)])
    jaccard = np.array([[1 - np.minimum(v[i], v[nq + j]).sum() / np.maximum(v[i], v[nq + j]).sum() for j in range(n - nq)] for i in range(nq)])
    return (1 - lam) * jaccard + lam * d[:nq, nq:]


def clustered(rng, ids=12, q_per=2, g_per=8, dim=16, noise=1.2):
    centres = rng.normal(size=(ids, dim))
    q_pids, g_pids = np.repeat(np.arange(ids), q_per), np.repeat(np.arange(ids), g_per)
    qf = (centres[q_pids] + noise * rng.normal(size=(q_pids.size, dim))).astype(np.float32)
    gf = (centres[g_pids] + noise * rng.normal(size=(g_pids.size, dim))).astype(np.float32)
    return qf, gf, q_pids, g_pids, np.zeros(q_pids.size, int), np.ones(g_pids.size, int)


@pytest.mark.parametrize("k1,k2", [(20, 6), (6, 3), (5, 1)])
def test_rerank_equals_the_dense_reference(k1, k2):
    rng = np.random.default_rng(k1)
    qf, gf, *_ = clustered(rng, ids=6, q_per=2, g_per=7, dim=8)
    got = re_ranking(qf, gf, k1=k1, k2=k2, lambda_value=0.3, expansion="paper", chunk_size=5, pair_budget=37)
    np.testing.assert_allclose(got, dense_rerank_reference(qf, gf, k1, k2, 0.3), atol=1e-5)


def test_rerank_properties():
    rng = np.random.default_rng(0)
    qf, gf, q_pids, g_pids, q_cams, g_cams = clustered(rng, ids=30, q_per=2, g_per=10, dim=32)
    out = re_ranking(qf, gf)
    assert out.shape == (60, 300) and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.array_equal(out, re_ranking(qf, gf))  # deterministic
    # other chunkings sum in another order: equal up to float32 rounding, not bit for bit on every CPU
    np.testing.assert_allclose(re_ranking(qf, gf, chunk_size=7, pair_budget=1000), out, rtol=0, atol=1e-6)
    # lambda = 1: the original distance (raw, or scaled per query row by the authors' normalization)
    d = compute_distance(qf, gf)
    np.testing.assert_allclose(re_ranking(qf, gf, lambda_value=1.0, normalize=False), d, rtol=1e-5, atol=1e-5)
    scaled = re_ranking(qf, gf, lambda_value=1.0)
    assert np.array_equal(np.argsort(scaled, axis=1, kind="stable"), np.argsort(d, axis=1, kind="stable"))
    # re-ranking improves retrieval on clustered data
    before = evaluate_rank(d, q_pids, g_pids, q_cams, g_cams)
    after = evaluate_rank(out, q_pids, g_pids, q_cams, g_cams)
    assert after[1] > before[1] + 0.05 and after[2] > before[2]
    via = evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, rerank=True)
    assert via["mAP"] == pytest.approx(after[1])
    assert re_ranking(qf, gf, metric="cosine").shape == (60, 300)
    with pytest.raises(ValueError, match="k2 <= k1 \\+ 1"):
        re_ranking(qf, gf, k1=3, k2=6)
    with pytest.raises(ValueError, match="lambda_value"):
        re_ranking(qf, gf, lambda_value=1.5)


def _split(tmp_path, name, pids, cams):
    paths = []
    for i, (p, c) in enumerate(zip(pids, cams)):
        path = str(tmp_path / name / f"{p:04d}_c{c + 1}_{i:03d}.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(np.full((40, 20, 3), (p * 37) % 255, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_pictures_and_feature_files(tmp_path):
    rng = np.random.default_rng(3)
    qf, gf, q_pids, g_pids, q_cams, g_cams = clustered(rng, ids=4, q_per=1, g_per=4, dim=8)
    q_paths = _split(tmp_path, "query", q_pids, q_cams)
    g_paths = _split(tmp_path, "gallery", g_pids, g_cams)
    export_features(tmp_path / "out" / "query.npz", qf, q_pids, q_cams, q_paths)
    export_features(tmp_path / "out" / "gallery.npz", torch.from_numpy(gf), g_pids, g_cams, g_paths)
    query, gallery = load_features(tmp_path / "out" / "query.npz"), load_features(tmp_path / "out" / "gallery.npz")
    assert np.array_equal(query.features, qf) and np.array_equal(gallery.pids, g_pids) and list(gallery.paths) == g_paths
    assert not any(n.endswith(".tmp.npz") for n in os.listdir(tmp_path / "out"))

    result = evaluate_features(query.features, gallery.features, query.pids, gallery.pids, query.camids, gallery.camids)
    cmc_png = plot_cmc({"plain": result["cmc"], "other": np.linspace(0.5, 1, 50)}, tmp_path / "plots" / "cmc.png", max_rank=20)
    ranked_png = plot_ranked_lists(result["distmat"], query, gallery, tmp_path / "plots" / "ranked.png", query_indices=[0, 2], topk=10)
    for png in (cmc_png, ranked_png):
        with Image.open(png) as img:
            img.verify()
    with Image.open(ranked_png) as img:
        img = img.convert("RGB")
        assert img.size == (64 * 11 + 21, (128 + 14) * 2)
        # the first gallery tile of query 0 is framed green (true match) or red (false match)
        nearest = int(np.argsort(result["distmat"][0], kind="stable")[0])
        frame = img.getpixel((64 + 21 + 1, 1))
        assert frame == ((0, 160, 0) if g_pids[nearest] == q_pids[0] else (210, 0, 0))

    with pytest.raises(ValueError, match="feature file .*nothing.npz does not exist"):
        load_features(tmp_path / "nothing.npz")
    np.savez(tmp_path / "partial.npz", features=qf)
    with pytest.raises(ValueError, match="partial.npz lacks pids, camids, paths"):
        load_features(tmp_path / "partial.npz")
    with pytest.raises(ValueError, match="do not match"):
        export_features(tmp_path / "bad.npz", qf, q_pids[:2], q_cams, q_paths)
    with pytest.raises(ValueError, match="query index 9"):
        plot_ranked_lists(result["distmat"], query, gallery, tmp_path / "x.png", query_indices=[9])
    # two models' rows under each query; a label wider than the query tile moves the gallery right, not under it
    both = plot_ranked_lists({"a": result["distmat"], "a long label for a model": result["distmat"]}, query, gallery,
                             tmp_path / "plots" / "both.png", query_indices=[0, 2], topk=3)
    with Image.open(both) as img:
        assert img.size[1] == (128 + 14) * 4 + 14 and img.size[0] > 64 * 4 + 21


def test_extract_features_uses_embed_in_eval_mode():
    from adamixup.models.reid_resnet import ReIDResNet50

    torch.manual_seed(0)
    model = ReIDResNet50(num_classes=3, backbone="resnet18")
    data = [(torch.randn(2, 3, 64, 32), torch.tensor([1, 2]), torch.tensor([0, 1])) for _ in range(2)]
    fs = extract_features(model, data)
    assert fs.features.shape == (4, 512) and fs.pids.tolist() == [1, 2, 1, 2] and model.training
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(fs.features[:2], model.embed(data[0][0]).numpy(), atol=1e-5)


def test_ranked_list_captions_tell_close_distances_apart():
    # from-scratch features can sit within 0.01 of each other after L2 normalization
    labels = [distance_label(d) for d in (0.0012, 0.0013, 0.25, 1.7, 3.99)]
    assert labels == ["0.0012", "0.0013", "0.25", "1.7", "4"]
