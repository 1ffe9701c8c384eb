"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li, "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017), the authors' released algorithm with bounded memory.

The algorithm, over all N = Q + G query and gallery features ("probes" and "gallery" alike):

1. N(p, k): the k nearest neighbours of p (p itself first). With the original distance d.
2. The k-reciprocal neighbours R(p, k) = {g ∈ N(p, k+1) : p ∈ N(g, k+1)} (k+1 because each item
   is its own nearest neighbour; as the authors' code).
3. The robust set R*(p, k1) = R(p, k1) ∪ R(q, k1/2) for each q ∈ R(p, k1) whose half-size set
   shares more than two thirds of its members with R(p, k1): |R(q, k1/2) ∩ R(p, k1)| >
   2/3 |R(q, k1/2)|, as the authors' released code (and torchreid, fast-reid, the strong
   baseline's published numbers). The paper's text says "at least two thirds" (≥);
   ``expansion="paper"`` uses that rule. The two differ only where the count hits 2/3 exactly,
   i.e. |R(q, k1/2)| a multiple of 3. k1/2 is rounded half to even (``np.around``, as the code).
4. The k-reciprocal feature V_p: V_p[g] = exp(−d(p, g)) for g ∈ R*(p), 0 elsewhere, normalized to
   sum to one (as the authors' code; the paper leaves it unnormalized).
5. Local query expansion: V_p ← mean of V_q over q ∈ N(p, k2).
6. Jaccard distance d_J(p, g) = 1 − Σ_j min(V_p[j], V_g[j]) / Σ_j max(V_p[j], V_g[j]); as rows
   sum to one, Σ max = 2 − Σ min.
7. Final distance d*(p, g) = (1 − λ)·d_J(p, g) + λ·d(p, g).

With ``normalize=True`` (default, as the authors' code) d is the distance divided by its row's
maximum over all N items (the code divides by the column maximum and transposes, the same thing
for the symmetric N × N distance), which puts it on the scale of d_J and of the Gaussian kernel; each
query's ranking under d is unchanged by it. With ``normalize=False`` d is the raw distance, so that
λ = 1 returns exactly the original distances.

Memory. The dense N × N matrices of the usual implementations (N² · 2 to 8 bytes each, several of
them: ≥ 3.7 GB for Market-1501) are never formed. Instead:

* one pass over row chunks of the N × N distances keeps each row's k1+1 nearest neighbours, its
  maximum and the query × gallery block (the output buffer);
* the V's are sparse (|R*(p)| ≈ k1…2·k1 entries per row, k2 times more after query expansion);
* the Jaccard sums enumerate, per query, the gallery rows sharing a non-zero column, in segments
  of at most ``pair_budget`` pairs.

Peak memory above the inputs ≈ 4·Q·G (the float32 output) + 4·N·D (a float32 copy of the
features) + 4·chunk_size·N (the reused distance buffer, plus top-k temporaries of similar size)
+ ~48·pair_budget (Jaccard pairs) + 16·block·G with block·G ≈ 2²² (Jaccard accumulators) + the
sparse V's (~8 bytes per non-zero, ≈ N·|R*| before and up to k2 times that after query expansion)
+ a 64 MB gather buffer. For Market-1501 (Q = 3,368, G = 15,913, N = 19,281, D = 2,048) with the
defaults (chunk_size 1,024, pair_budget 2²¹): 204 + 151 + 75…150 + 96 + 64 + ~20…100 + 64 MiB
≈ 0.7 GiB at most; ``benchmarks/reid_eval.py`` measured +390…560 MiB (the allocator's state
varies between runs) and 15–23 s on a shared 2-core CPU, one torch thread (synthetic features). Implementations holding dense N × N matrices need ≥ 10 bytes per entry
(float16 distances, V and expanded V, int32 ranks): ≥ 3.7 GB at this N.
"""
from __future__ import annotations

from typing import Tuple, Union

import numpy as np
import torch
from scipy import sparse

from .distance import METRICS, ArrayLike

# Rules for growing R(p, k1) into the robust set: the authors' released code ("more than two
# thirds", the default) and the paper's text ("at least two thirds").
EXPANSIONS = ("released", "paper")


def _as_tensor(a: ArrayLike) -> torch.Tensor:
    return a if torch.is_tensor(a) else torch.from_numpy(np.asarray(a))


def _neighbours(
    feats: torch.Tensor, num_q: int, k: int, metric: str, chunk_size: int
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass over the N × N distances in row chunks: each row's ``k`` nearest neighbours
    (ascending), each row's maximum distance, and the query × gallery block."""
    n = feats.shape[0]
    sq = torch.linalg.vector_norm(feats, dim=1).pow(2)  # no (N, D) temporary
    rank = np.empty((n, k), dtype=np.int64)
    row_max = np.empty(n, dtype=np.float64)
    q_g = np.empty((num_q, n - num_q), dtype=np.float32)
    buffer = torch.empty(min(chunk_size, n), n, dtype=feats.dtype, device=feats.device)  # reused
    with torch.no_grad():
        for start in range(0, n, chunk_size):
            block = feats[start:start + chunk_size]
            d = torch.mm(block, feats.t(), out=buffer[: block.shape[0]])
            if metric == "cosine":
                d.neg_().add_(1.0)
            else:
                d.mul_(-2.0).add_(sq[start:start + chunk_size, None]).add_(sq[None, :]).clamp_(min=0.0)
            stop = start + block.shape[0]
            rank[start:stop] = torch.topk(d, k, dim=1, largest=False, sorted=True).indices.cpu().numpy()
            row_max[start:stop] = d.max(dim=1).values.double().cpu().numpy()
            if start < num_q:
                m = min(stop, num_q) - start
                q_g[start:start + m] = d[:m, num_q:].cpu().numpy()
    return rank, row_max, q_g


def _reciprocal(rank: np.ndarray, k: int, chunk_size: int) -> np.ndarray:
    """R(p, k) as an ``(N, k+1)`` array of neighbour indices, -1 where not reciprocal."""
    n = rank.shape[0]
    forward = rank[:, : k + 1]
    out = np.full_like(forward, -1)
    for start in range(0, n, chunk_size):
        fw = forward[start:start + chunk_size]
        me = np.arange(start, start + fw.shape[0])[:, None, None]
        back = (forward[fw] == me).any(axis=2)  # p among the k+1 nearest of its neighbour
        out[start:start + fw.shape[0]] = np.where(back, fw, -1)
    return out


def _robust_sets(rank: np.ndarray, k1: int, chunk_size: int, strict: bool = True) -> sparse.csr_matrix:
    """R*(p, k1) of every item as the pattern of a sparse ``(N, N)`` matrix. ``strict``: a
    candidate's half-size set joins when it shares more than two thirds of its members with
    R(p, k1) (the released code); otherwise at least two thirds (the paper)."""
    n = rank.shape[0]
    r_full = _reciprocal(rank, k1, chunk_size)  # (N, k1+1)
    r_half = _reciprocal(rank, int(round(k1 / 2)), chunk_size)  # (N, k1/2+1)
    half_size = (r_half >= 0).sum(axis=1)
    rows, cols = [], []
    for start in range(0, n, chunk_size):
        rp = r_full[start:start + chunk_size]  # (c, k1+1)
        cand = r_half[np.where(rp >= 0, rp, 0)]  # (c, k1+1, h+1): R(q, k1/2) of each q in R(p, k1)
        shared = ((cand[..., None] == rp[:, None, None, :]) & (cand[..., None] >= 0)).any(axis=3).sum(axis=2)
        size = half_size[np.where(rp >= 0, rp, 0)]
        # integer form of the code's `shared > 2/3 * size` (equal for every size: no rounding)
        enough = 3 * shared > 2 * size if strict else 3 * shared >= 2 * size
        take = (rp >= 0) & (size > 0) & enough
        local = np.arange(start, start + rp.shape[0])
        keep = rp >= 0
        rows.append(np.broadcast_to(local[:, None], rp.shape)[keep])
        cols.append(rp[keep])
        added = cand[take]  # (m, h+1)
        owner = np.broadcast_to(local[:, None], rp.shape)[take]
        mask = added >= 0
        rows.append(np.broadcast_to(owner[:, None], added.shape)[mask])
        cols.append(added[mask])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    pattern = sparse.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(n, n))
    pattern.sum_duplicates()
    return pattern


def _set_distances(feats: torch.Tensor, pattern: sparse.csr_matrix, metric: str, budget: int = 1 << 24) -> np.ndarray:
    """The distance of every non-zero ``(p, c)`` of ``pattern``, in its data order (float32).

    Rows are taken in blocks; each block gathers its rows' neighbour features into a padded
    ``(rows, most neighbours, D)`` tensor (at most ``budget`` floats) and takes the dot products
    with one batched matrix product, the same ``‖p‖² + ‖c‖² − 2 p·c`` as the distance pass."""
    n, dim = feats.shape
    counts = np.diff(pattern.indptr)
    out = np.empty(pattern.nnz, dtype=np.float32)
    sq = torch.linalg.vector_norm(feats, dim=1).pow(2)  # no (N, D) temporary
    max_width = int(counts.max(initial=1))
    per_block = max(1, budget // max(1, dim * max_width))
    # one gather buffer for all blocks: fresh large allocations would page-fault every time
    buffer = torch.empty(per_block * max_width, dim, dtype=feats.dtype, device=feats.device)
    with torch.no_grad():
        for start in range(0, n, per_block):
            stop = min(start + per_block, n)
            cnt = counts[start:stop]
            width = int(cnt.max(initial=0))
            if width == 0:
                continue
            filled = np.arange(width)[None, :] < cnt[:, None]
            idx = np.repeat(np.arange(start, stop)[:, None], width, axis=1)  # padding: the row itself
            idx[filled] = pattern.indices[pattern.indptr[start]:pattern.indptr[stop]]
            idx_t = torch.from_numpy(idx).to(feats.device)
            gathered = buffer[: idx.size]
            torch.index_select(feats, 0, idx_t.reshape(-1), out=gathered)
            dots = torch.bmm(gathered.view(stop - start, width, dim), feats[start:stop].unsqueeze(2)).squeeze(2)
            d = 1.0 - dots if metric == "cosine" else sq[start:stop, None] + sq[idx_t] - 2.0 * dots
            out[pattern.indptr[start]:pattern.indptr[stop]] = d.clamp_(min=0.0).cpu().numpy()[filled]
    return out


def _jaccard_into(out: np.ndarray, vq: sparse.csr_matrix, vg: sparse.csc_matrix, lam: float, pair_budget: int) -> None:
    """out ← (1 − λ)·d_J + λ·out, row block by row block, enumerating (query non-zero, gallery
    non-zero in the same column) pairs in segments of at most ``pair_budget``."""
    num_q, num_g = out.shape
    col_count = np.diff(vg.indptr)
    block = max(1, (1 << 22) // max(num_g, 1))
    for start in range(0, num_q, block):
        stop = min(start + block, num_q)
        sub = vq[start:stop].tocoo()
        order = np.lexsort((sub.col, sub.row))
        r, k, a = sub.row[order].astype(np.int64), sub.col[order], sub.data[order]
        counts = col_count[k]
        ends = np.cumsum(counts)
        acc = np.zeros((stop - start) * num_g, dtype=np.float64)  # Σ_j min(V_p[j], V_g[j])
        i = 0
        while i < r.size:
            # the longest run of non-zeros from i whose pairs fit the budget (at least one)
            base = ends[i] - counts[i]
            j = max(i + 1, int(np.searchsorted(ends, base + pair_budget, side="right")))
            c = counts[i:j]
            total = int(c.sum())
            if total:
                first = np.repeat(vg.indptr[k[i:j]], c)
                within = np.arange(total) - np.repeat(np.cumsum(c) - c, c)
                idx = first + within
                mins = np.minimum(np.repeat(a[i:j], c), vg.data[idx])
                acc += np.bincount(np.repeat(r[i:j], c) * num_g + vg.indices[idx], weights=mins, minlength=acc.size)
            i = j
        acc = acc.reshape(stop - start, num_g)
        jaccard = 1.0 - acc / (2.0 - acc)
        out[start:stop] = (1.0 - lam) * jaccard + lam * out[start:stop]


def re_ranking(
    qf: ArrayLike,
    gf: ArrayLike,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    metric: str = "euclidean",
    normalize: bool = True,
    expansion: str = "released",
    chunk_size: int = 1024,
    pair_budget: int = 1 << 21,
    device: Union[str, torch.device, None] = None,
) -> np.ndarray:
    """k-reciprocal re-ranked distances ``(Q, G)`` (float32 numpy) between query features ``qf``
    ``(Q, D)`` and gallery features ``gf`` ``(G, D)``; see the module docstring for the algorithm.

    k1, k2, lambda_value: the paper's k1 (reciprocal neighbourhood), k2 (query expansion) and λ
                 (weight of the original distance); 20, 6, 0.3 on Market-1501.
    metric:      the original distance: "euclidean" (squared, as the authors' code) or "cosine"
                 (1 − cosine similarity), as in :func:`adamixup.reid.distance.compute_distance`.
    normalize:   divide the original distance by its row maximum (the authors' code); False keeps
                 raw distances, so ``lambda_value=1`` returns exactly the original distance.
    expansion:   the rule that grows R(p, k1) into the robust set R*(p, k1): "released" (default)
                 adds a candidate's k1/2-reciprocal set when it shares *more than* two thirds of
                 its members with R(p, k1), as the authors' released code, torchreid and fast-reid
                 (the code behind published numbers); "paper" when it shares *at least* two thirds, as the
                 paper's text.
    chunk_size:  rows of the N × N distance computed at once.
    pair_budget: most (query, gallery) pairs expanded at once in the Jaccard sums.
    device:      where the distance pass runs (default: where ``qf`` lives).

    Deterministic for a given input and machine. Work grows as N²·D for the distance pass and as
    Q · (non-zeros per V row)² for the Jaccard sums.
    """
    if metric not in METRICS:
        raise ValueError(f"distance metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if k1 < 1 or k2 < 1:
        raise ValueError(f"re-ranking needs k1 >= 1 and k2 >= 1, got k1={k1}, k2={k2}")
    if expansion not in EXPANSIONS:
        raise ValueError(f"expansion must be 'released' (more than two thirds) or 'paper' (at least two thirds), got {expansion!r}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must lie in [0, 1], got {lambda_value}")
    q, g = _as_tensor(qf), _as_tensor(gf)
    if q.dim() != 2 or g.dim() != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"features must be (Q, D) and (G, D) with the same D, got {tuple(q.shape)} and {tuple(g.shape)}")
    num_q, n = q.shape[0], q.shape[0] + g.shape[0]
    if k2 > k1 + 1 or k1 + 1 > n:
        raise ValueError(f"re-ranking needs k2 <= k1 + 1 <= Q + G, got k1={k1}, k2={k2} for {n} items")
    device = torch.device(device) if device is not None else q.device
    feats = torch.cat([q.to(device, torch.float32), g.to(device, torch.float32)])
    if metric == "cosine":
        feats = torch.nn.functional.normalize(feats, dim=1)

    rank, row_max, out = _neighbours(feats, num_q, k1 + 1, metric, chunk_size)
    scale = np.where(row_max > 0, row_max, 1.0) if normalize else np.ones(n)
    if normalize:
        out /= scale[:num_q, None].astype(np.float32)
    if lambda_value == 1.0:
        return out

    # V: Gaussian kernel of the (scaled) distance on each robust set, rows normalized to one.
    v = _robust_sets(rank, k1, chunk_size, strict=expansion == "released")
    rows = np.repeat(np.arange(n), np.diff(v.indptr))
    weights = _set_distances(feats, v, metric)
    # exp(-d) normalized per row is a softmax of -d: shift by the row minimum against underflow
    scaled = weights / scale[rows]
    has = np.diff(v.indptr) > 0
    row_min = np.zeros(n)
    row_min[has] = np.minimum.reduceat(scaled, v.indptr[:-1][has])
    weights = np.exp(row_min[rows] - scaled)
    v.data = (weights / np.bincount(rows, weights=weights, minlength=n)[rows]).astype(np.float32)
    if k2 > 1:
        expand = sparse.csr_matrix(
            (np.full(n * k2, 1.0 / k2, dtype=np.float32), (np.repeat(np.arange(n), k2), rank[:, :k2].reshape(-1))),
            shape=(n, n),
        )
        v = (expand @ v).tocsr()
    _jaccard_into(out, v[:num_q].tocsr(), v[num_q:].tocsc(), float(lambda_value), int(pair_budget))
    return out
