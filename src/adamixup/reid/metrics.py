"""Re-ID retrieval metrics: CMC, mAP and mINP under the Market-1501 protocol.

Protocol (Zheng et al., ICCV 2015; as torchreid's ``eval_market1501``): each query ranks the whole
gallery by increasing distance, after removing the gallery images of the same identity taken by
the same camera (they would make retrieval trivial). A true match is a remaining gallery image of
the query's identity. Queries left without any true match are skipped. Then

* CMC@r: the fraction of queries whose first true match lies within the top r;
* AP: the mean, over a query's true matches, of the precision at each match's rank; mAP averages AP;
* INP (Ye et al., TPAMI 2021): (number of true matches) / (rank of the hardest, i.e. last, true
  match) — how much of the list must be checked to find every match; mINP averages it.

Junk images (pid -1 in Market-1501) are dropped by the dataset readers; distractors (pid 0) are
ordinary gallery images that never match a query.

Equal distances are ranked by gallery index (as a stable sort); torchreid leaves their order to
``numpy.argsort``'s default, so results can differ from it only where distances tie exactly.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .distance import ArrayLike, _np, compute_distance  # noqa: F401  (compute_distance: part of this module's API)
from .rerank import re_ranking


def _cumsum_by_row(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum of ``values`` restarted at each new value of the sorted ``rows``."""
    total = np.cumsum(values)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    offset = total[starts] - values[starts]  # sum before each row's first entry
    return total - np.repeat(offset, np.diff(np.r_[starts, rows.size]))


def _ranked_positions(dist: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """0-based position of gallery item ``cols[i]`` in the ranking of query row ``rows[i]`` of
    ``dist`` (ascending distance; equal distances ranked by gallery index, as a stable argsort).
    ``rows`` must be sorted.

    Sorts the distance values only (several times faster than an argsort) and finds each item's
    value in its row's sorted values. For float32, a row-offset integer key turns the per-row
    searches into one ``searchsorted`` over the flattened chunk; float32's bit pattern, with
    negative values' non-sign bits flipped, orders like the float (−0.0 made +0.0 first).
    """
    num_g = dist.shape[1]
    sorted_d = np.sort(dist, axis=1)
    if np.isnan(sorted_d[:, -1]).any():  # NaN sorts last
        raise ValueError("distmat contains NaN distances")
    values = dist[rows, cols] + 0.0  # + 0.0 turns -0.0 into +0.0
    if dist.dtype == np.float32:
        if sorted_d[:, 0].min() <= 0:
            sorted_d += 0.0

        def ordered(a: np.ndarray) -> np.ndarray:
            k = a.view(np.int32)
            return np.where(k < 0, k ^ np.int32(0x7FFFFFFF), k).astype(np.int64)

        keys = ordered(sorted_d) if sorted_d[:, 0].min() < 0 else sorted_d.view(np.int32).astype(np.int64)
        del sorted_d
        keys += np.arange(keys.shape[0], dtype=np.int64)[:, None] << 32
        flat, offset = keys.ravel(), rows.astype(np.int64) << 32
        base = rows.astype(np.int64) * num_g
        value_keys = ordered(values) + offset
        left = np.searchsorted(flat, value_keys, side="left") - base
        right = np.searchsorted(flat, value_keys, side="right") - base
    else:
        left, right = np.empty(rows.size, np.int64), np.empty(rows.size, np.int64)
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        for a, b in zip(starts, np.r_[starts[1:], rows.size]):
            left[a:b] = np.searchsorted(sorted_d[rows[a]], values[a:b], side="left")
            right[a:b] = np.searchsorted(sorted_d[rows[a]], values[a:b], side="right")
    # Ties: count the equal distances of lower gallery index (rare, so a plain loop).
    for i in np.flatnonzero(right - left > 1):
        left[i] += np.count_nonzero(dist[rows[i], : cols[i]] == values[i])
    return left


def evaluate_rank(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    chunk_size: Optional[int] = None,
) -> Tuple[np.ndarray, float, float]:
    """CMC, mAP and mINP of a query × gallery distance matrix under the Market-1501 protocol
    (see the module docstring).

    distmat:   ``(Q, G)`` distances, smaller = more similar (float32 is fastest; others are
               ranked in float64). Equal distances are ranked by gallery index.
    q_pids, q_camids: ``(Q,)`` query identities and cameras; g_pids, g_camids: ``(G,)`` gallery's.
    max_rank:  length of the returned CMC curve (rank 1 .. max_rank).
    chunk_size: queries processed at once (default: about one million distance entries per
               chunk); the working memory is ~14 bytes per entry of a chunk.

    Returns ``(cmc, mAP, mINP)``: ``cmc`` a float64 array ``(max_rank,)``, the others floats in [0, 1].
    Raises ``ValueError`` when no query has a true match in the gallery.

    Vectorized over queries, and without a full argsort: only a query's own-identity gallery
    images decide its metrics (the true matches, and the same-camera ones that are removed), a
    few per query. A chunk of queries sorts its distance values; each such image's ranked
    position is then found by binary search; cumulative sums over these few positions give each
    match's rank among the kept images and the precision there.
    """
    distmat = _np(distmat)
    if distmat.dtype not in (np.float32, np.float64):
        distmat = distmat.astype(np.float32 if distmat.dtype == np.float16 else np.float64)
    q_pids, g_pids = _np(q_pids).reshape(-1), _np(g_pids).reshape(-1)
    q_camids, g_camids = _np(q_camids).reshape(-1), _np(g_camids).reshape(-1)
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be a (queries, gallery) matrix, got shape {distmat.shape}")
    num_q, num_g = distmat.shape
    if len(q_pids) != num_q or len(q_camids) != num_q:
        raise ValueError(f"distmat has {num_q} query rows but {len(q_pids)} query pids and {len(q_camids)} query camids")
    if len(g_pids) != num_g or len(g_camids) != num_g:
        raise ValueError(f"distmat has {num_g} gallery columns but {len(g_pids)} gallery pids and {len(g_camids)} gallery camids")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if chunk_size is None:
        chunk_size = max(1, (1 << 20) // max(num_g, 1))

    first_hit_counts = np.zeros(max_rank, dtype=np.int64)  # queries whose first match is at rank r
    ap_sum = inp_sum = 0.0
    num_valid = 0
    for start in range(0, num_q, chunk_size):
        stop = min(start + chunk_size, num_q)
        # the query's own identity in the gallery: true matches, or removed if from its camera
        rows, cols = np.nonzero(g_pids[None, :] == q_pids[start:stop, None])
        if rows.size == 0:
            continue
        is_removed = g_camids[cols] == q_camids[start + rows]
        pos = _ranked_positions(distmat[start:stop], rows, cols)
        order = np.lexsort((pos, rows))
        rows, pos, is_removed = rows[order], pos[order], is_removed[order]
        # rank among kept images (1-based) = position + 1 - removed images ranked before
        removed_before = _cumsum_by_row(is_removed.astype(np.int64), rows)
        hit = ~is_removed
        rows, kept_rank = rows[hit], (pos + 1 - removed_before)[hit]
        if rows.size == 0:
            continue
        hit_index = _cumsum_by_row(np.ones(rows.size, dtype=np.int64), rows)  # 1, 2, ... per query
        num_rel = np.bincount(rows, minlength=stop - start)
        valid = num_rel > 0
        num_rel = num_rel[valid]
        # AP: mean over a query's matches of (matches so far) / (rank)
        ap_sum += float((np.bincount(rows, weights=hit_index / kept_rank, minlength=stop - start)[valid] / num_rel).sum())
        ends = np.cumsum(num_rel)
        first_rank, last_rank = kept_rank[ends - num_rel], kept_rank[ends - 1]
        inp_sum += float((num_rel / last_rank).sum())
        first_hit_counts += np.bincount(first_rank[first_rank <= max_rank] - 1, minlength=max_rank)
        num_valid += int(valid.sum())
    if num_valid == 0:
        raise ValueError("no query has a true match in the gallery (same identity from another camera); cannot evaluate")
    cmc = np.cumsum(first_hit_counts) / num_valid
    return cmc.astype(np.float64), ap_sum / num_valid, inp_sum / num_valid


def evaluate_features(
    qf: ArrayLike,
    gf: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    metric: str = "euclidean",
    normalize: bool = False,
    rerank: bool = False,
    max_rank: int = 50,
    **rerank_kwargs,
) -> Dict[str, object]:
    """Features in, metrics out: ``{"cmc", "mAP", "mINP", "distmat"}``.

    normalize: L2-normalize the features first (the strong baseline's ``FEAT_NORM``).
    rerank:    k-reciprocal re-ranking (:func:`adamixup.reid.rerank.re_ranking`, keyword
               arguments ``k1``, ``k2``, ``lambda_value``, ... passed through) instead of the plain
               distance.
    """
    q = qf if torch.is_tensor(qf) else torch.from_numpy(np.asarray(qf))
    g = gf if torch.is_tensor(gf) else torch.from_numpy(np.asarray(gf))
    if normalize:
        q, g = torch.nn.functional.normalize(q.float(), dim=1), torch.nn.functional.normalize(g.float(), dim=1)
    if rerank:
        distmat = re_ranking(q, g, metric=metric, **rerank_kwargs)
    else:
        distmat = compute_distance(q, g, metric=metric)
    cmc, mAP, mINP = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank)
    return {"cmc": cmc, "mAP": mAP, "mINP": mINP, "distmat": distmat}
