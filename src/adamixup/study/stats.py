"""Statistics of paired runs: plain functions of arrays.

Protocol. Two methods are compared on the runs they share: the same data set, fold (or split) and
seed make a pair, and the paired difference is ``error(a) − error(b)`` in percentage points
(negative: ``a`` had the lower error). Pairs are not independent: the pairs of one fold share its test
images (and most of their training images), so a fold is a *cluster* of pairs. The intervals respect
that:

- :func:`cluster_bootstrap_ci` (the default): resample the clusters with replacement and, within each
  resampled cluster, its pairs (seeds) with replacement (the two-stage bootstrap); the percentile
  interval of the resampled means. Data whose pairs agree within a fold but differ across folds get
  a wider interval than the naive bootstrap gives them, as they should.
- :func:`stratified_bootstrap_ci`: resample the pairs within each fold (stratum); the folds themselves
  stay fixed (inference for these folds, not for new ones).
- :func:`bootstrap_ci`: resample the pairs as if independent (the old reports' interval).

Tests: the Wilcoxon signed-rank test and the sign test over the pairs (as if independent), and
:func:`signflip_p`, an exact test that flips the signs of whole clusters' mean differences (valid
whatever the correlation within a cluster, but it cannot go below ``2 / 2**K`` with K clusters: five
folds can never give p < 0.05). :func:`holm` corrects a family of p-values (Holm 1979, step-down).
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Dict, Hashable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

NAN = float("nan")


def _arr(values: Sequence[float]) -> np.ndarray:
    return np.asarray(list(values), dtype=float)


def _percentile(means: np.ndarray, level: float) -> Tuple[float, float]:
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_ci(diffs: Sequence[float], resamples: int = 10_000, level: float = 0.95, seed: int = 0) -> Tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs``, the pairs resampled as independent units.
    One difference gives (d, d); none gives (nan, nan)."""
    d = _arr(diffs)
    if d.size == 0:
        return NAN, NAN
    rng = np.random.default_rng(seed)
    return _percentile(d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1), level)


def _groups(diffs: Sequence[float], clusters: Sequence[Hashable]) -> Tuple[np.ndarray, np.ndarray]:
    """(K × n_max matrix of the clusters' differences padded with nan, sizes)."""
    d = _arr(diffs)
    if len(clusters) != d.size:
        raise ValueError(f"{d.size} differences but {len(clusters)} cluster labels")
    order: Dict[Hashable, List[float]] = {}
    for c, v in zip(clusters, d):
        order.setdefault(c, []).append(v)
    sizes = np.array([len(v) for v in order.values()])
    mat = np.full((len(order), int(sizes.max()) if sizes.size else 0), np.nan)
    for i, v in enumerate(order.values()):
        mat[i, : len(v)] = v
    return mat, sizes


def cluster_bootstrap_means(diffs: Sequence[float], clusters: Sequence[Hashable], resamples: int = 10_000,
                            seed: int = 0, within: bool = True) -> np.ndarray:
    """The means of ``resamples`` two-stage bootstrap samples: K clusters drawn with replacement, then
    (``within``) each drawn cluster's pairs drawn with replacement; the mean over every drawn pair."""
    mat, sizes = _groups(diffs, clusters)
    if mat.size == 0:
        return np.empty(0)
    k = mat.shape[0]
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, k, size=(resamples, k))
    n = sizes[picked]                                                   # (R, K) size of each drawn cluster
    width = mat.shape[1]
    if within:
        members = np.floor(rng.random((resamples, k, width)) * n[..., None]).astype(int)
    else:
        members = np.broadcast_to(np.arange(width), (resamples, k, width))
    values = mat[picked[..., None], members]                            # (R, K, width); padding is nan
    keep = np.arange(width)[None, None, :] < n[..., None]
    values = np.where(keep, values, 0.0)
    return values.sum(axis=(1, 2)) / n.sum(axis=1)


def cluster_bootstrap_ci(diffs: Sequence[float], clusters: Sequence[Hashable], resamples: int = 10_000,
                         level: float = 0.95, seed: int = 0, within: bool = True) -> Tuple[float, float]:
    """Percentile interval of the two-stage cluster bootstrap (:func:`cluster_bootstrap_means`). With one
    pair per cluster it is the naive bootstrap; with one cluster it resamples only within it."""
    means = cluster_bootstrap_means(diffs, clusters, resamples, seed, within)
    return _percentile(means, level) if means.size else (NAN, NAN)


def stratified_bootstrap_ci(diffs: Sequence[float], strata: Sequence[Hashable], resamples: int = 10_000,
                            level: float = 0.95, seed: int = 0) -> Tuple[float, float]:
    """Percentile interval with the pairs resampled within each stratum (fold); the strata keep their sizes."""
    mat, sizes = _groups(diffs, strata)
    if mat.size == 0:
        return NAN, NAN
    rng = np.random.default_rng(seed)
    k, width = mat.shape
    members = np.floor(rng.random((resamples, k, width)) * sizes[None, :, None]).astype(int)
    values = mat[np.arange(k)[None, :, None], members]
    keep = np.arange(width)[None, None, :] < sizes[None, :, None]
    return _percentile(np.where(keep, values, 0.0).sum(axis=(1, 2)) / sizes.sum(), level)


def bootstrap_p(means: np.ndarray) -> float:
    """Two-sided percentile-bootstrap p-value of "mean = 0" from bootstrap means: twice the smaller share
    on either side of 0 (dual to the percentile interval)."""
    if means.size == 0:
        return NAN
    below, above = float(np.mean(means <= 0)), float(np.mean(means >= 0))
    return min(1.0, 2 * min(below, above))


def wilcoxon_p(diffs: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of ``diffs`` (zeros dropped); 1.0 when every difference is
    zero, nan when there are none."""
    d = _arr(diffs)
    if d.size == 0:
        return NAN
    if not np.any(d != 0):
        return 1.0
    from scipy.stats import wilcoxon

    return float(wilcoxon(d).pvalue)


def sign_test(diffs: Sequence[float]) -> Tuple[int, int, int, float]:
    """(negatives, zeros, positives, two-sided binomial p) of ``diffs``; zeros are left out of the test."""
    d = _arr(diffs)
    neg, pos = int((d < 0).sum()), int((d > 0).sum())
    zero = int(d.size - neg - pos)
    if neg + pos == 0:
        return neg, zero, pos, (1.0 if d.size else NAN)
    from scipy.stats import binomtest

    return neg, zero, pos, float(binomtest(neg, neg + pos, 0.5).pvalue)


def signflip_p(diffs: Sequence[float], clusters: Sequence[Hashable], max_exact: int = 16, resamples: int = 100_000,
               seed: int = 0) -> float:
    """Two-sided sign-flip (randomization) test of "no difference" on the clusters' mean differences: under
    the null each cluster's mean is as likely negative as positive. Exact (all 2**K sign patterns) up to
    ``max_exact`` clusters, else Monte Carlo. Its smallest possible value is 2 / 2**K."""
    mat, sizes = _groups(diffs, clusters)
    if mat.size == 0:
        return NAN
    means = np.nanmean(mat, axis=1)
    k = means.size
    observed = abs(means.mean())
    if k <= max_exact:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=k)))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(resamples, k))
    stats = np.abs((signs * means).mean(axis=1))
    return float(np.mean(stats >= observed - 1e-12 * max(1.0, observed)))


def holm(pvalues: Sequence[float]) -> List[float]:
    """Holm's step-down adjusted p-values, in the input order: sort the m p-values, multiply the i-th
    smallest (i = 1..m) by m − i + 1, carry the running maximum, cap at 1. A comparison survives at
    level α when its adjusted p-value is at most α. nan (no test) stays nan and is not counted in m."""
    p = _arr(pvalues)
    out = np.full(p.size, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out.tolist()


def relative_improvement(base: float, new: float) -> float:
    """(base − new) / base in %, the paper's "relative improvement" of an error rate over a reference."""
    return 100.0 * (base - new) / base if base and base > 0 and math.isfinite(base) else NAN


def mean_std(values: Iterable[Optional[float]]) -> Tuple[float, float, int]:
    """(mean, sample std, n) of the finite values; (nan, nan, 0) for none; std 0 for one."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return NAN, NAN, 0
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v)


def compare_paired(diffs: Sequence[float], clusters: Sequence[Hashable], resamples: int = 10_000, level: float = 0.95,
                   seed: int = 0, interval: str = "cluster") -> Dict[str, Any]:
    """Everything the report says about one set of paired differences: the mean, the interval of the
    chosen kind (``cluster``, ``stratified`` or ``pairs``) and the naive one beside it, the cluster
    bootstrap's p-value, Wilcoxon, sign test and sign-flip test, and better / tie / worse counts."""
    d = list(map(float, diffs))
    if interval == "cluster":
        means = cluster_bootstrap_means(d, clusters, resamples, seed)
        lo, hi = _percentile(means, level) if means.size else (NAN, NAN)
    elif interval == "stratified":
        lo, hi = stratified_bootstrap_ci(d, clusters, resamples, level, seed)
        means = cluster_bootstrap_means(d, clusters, resamples, seed)
    elif interval == "pairs":
        lo, hi = bootstrap_ci(d, resamples, level, seed)
        means = cluster_bootstrap_means(d, clusters, resamples, seed)
    else:
        raise ValueError(f"interval must be cluster, stratified or pairs, got {interval!r}")
    neg, zero, pos, p_sign = sign_test(d)
    naive = bootstrap_ci(d, resamples, level, seed)
    return {
        "pairs": len(d), "clusters": len(set(clusters)), "diffs": d, "mean": float(np.mean(d)) if d else NAN,
        "ci_low": lo, "ci_high": hi, "interval": interval, "level": level,
        "naive_ci_low": naive[0], "naive_ci_high": naive[1],
        "a_better": neg, "ties": zero, "b_better": pos,
        "p_wilcoxon": wilcoxon_p(d), "p_sign": p_sign, "p_signflip": signflip_p(d, clusters) if d else NAN,
        "p_bootstrap": bootstrap_p(means),
    }
