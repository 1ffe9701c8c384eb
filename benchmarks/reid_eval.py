"""Re-ID evaluation cost at Market-1501's size: time and peak memory of the vectorized
``evaluate_rank`` against plain per-query loops (same inputs, same run, results checked equal),
and of the bounded-memory k-reciprocal re-ranking.

    python benchmarks/reid_eval.py              # Market-1501 sizes: ~2 minutes on 2 CPU cores
    python benchmarks/reid_eval.py --quick      # a tenth of the sizes, seconds (smoke test)
    python benchmarks/reid_eval.py --device cuda --out benchmarks/results/reid_eval_cuda.md

Data: random features with Market-1501's id / camera structure — 750 test identities over 6
cameras, 3,368 queries, a gallery of 13,120 images of those identities plus 2,793 distractors
(pid 0) = 15,913 — features = identity centre + Gaussian noise (D = 2,048, as ResNet-50; the noise
level gives rank-1 ≈ 99 %, mAP ≈ 0.80 at full size, near a trained baseline), plus a
shared camera offset so that same-camera images are closer, as in real data.

Peak memory: the rise of the process's peak resident set (Linux VmHWM, reset before each
measurement through /proc/self/clear_refs) above the resident set at the start of the measurement,
i.e. what the call itself adds on top of its inputs.
"""
from __future__ import annotations

import argparse
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np
import torch

from adamixup.reid.metrics import compute_distance, evaluate_rank
from adamixup.reid.rerank import re_ranking

# --------------------------------------------------------------------------------------------- #
# The plain references: one query at a time.


def reference_torchreid(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """torchreid's ``eval_market1501`` (Python version) as written: one argsort of the whole
    matrix, then a Python loop over queries with a list comprehension for the precisions. Stable
    sort, so that equal float32 distances rank by gallery index as ``evaluate_rank`` does."""
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for q_idx in range(distmat.shape[0]):
        order = indices[q_idx]
        remove = (g_pids[order] == q_pids[q_idx]) & (g_camids[order] == q_camids[q_idx])
        raw_cmc = matches[q_idx][~remove]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        max_pos_idx = np.max(np.where(raw_cmc == 1))
        all_inp.append(cmc[max_pos_idx] / (max_pos_idx + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_rel = raw_cmc.sum()
        tmp_cmc = raw_cmc.cumsum()
        tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
        all_ap.append((np.asarray(tmp_cmc) * raw_cmc).sum() / num_rel)
    return np.asarray(all_cmc, dtype=np.float64).mean(0), float(np.mean(all_ap)), float(np.mean(all_inp))


def reference_numpy_loop(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50, kind="stable"):
    """A tight per-query loop: per query one argsort and numpy on that row only. ``kind=None``
    uses numpy's default (faster, unstable) sort, which ranks equal distances arbitrarily."""
    cmc_sum, aps, inps = np.zeros(max_rank), [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind=kind)
        same = g_pids[order] == q_pids[i]
        hits = same[~(same & (g_camids[order] == q_camids[i]))]
        pos = np.flatnonzero(hits)
        if pos.size == 0:
            continue
        if pos[0] < max_rank:
            cmc_sum[pos[0]:] += 1
        aps.append(np.mean(np.arange(1, pos.size + 1) / (pos + 1)))
        inps.append(pos.size / (pos[-1] + 1))
    return cmc_sum / len(aps), float(np.mean(aps)), float(np.mean(inps))


# --------------------------------------------------------------------------------------------- #
# Measuring


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMemory:
    """Peak resident memory a block adds: VmHWM reset via clear_refs where allowed, else a
    sampling thread (1 ms) over VmRSS."""

    def __enter__(self):
        self.base = _status_kib("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.method = "VmHWM"
        except OSError:
            self.method, self.top, self.stop = "sampled", self.base, threading.Event()
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        while not self.stop.is_set():
            self.top = max(self.top, _status_kib("VmRSS"))
            time.sleep(0.001)

    def __exit__(self, *exc):
        if self.method == "VmHWM":
            top = _status_kib("VmHWM")
        else:
            self.stop.set()
            self.thread.join()
            top = self.top
        self.peak_mb = max(0, top - self.base) / 1024
        return False


def peak_method() -> str:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "Linux VmHWM, reset before each call"
    except OSError:
        return "VmRSS sampled every millisecond"


GPU_PEAK = {}  # the last measure()'s CUDA peak, MiB, when CUDA is in use


def measure(fn, repeats=1):
    """(result, best seconds, peak host MiB of the first call); the CUDA peak goes to GPU_PEAK."""
    times = []
    cuda = torch.cuda.is_available()
    for r in range(repeats):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            result = fn()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        if r == 0:
            peak = mem.peak_mb
            if cuda:
                GPU_PEAK["last"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    return result, min(times), peak


# --------------------------------------------------------------------------------------------- #
# Data


def market_like(rng, scale=1.0, dim=2048, noise=2.8, cam_shift=0.35):
    """Features and labels with Market-1501's test structure (``scale`` shrinks every count)."""
    ids, cams = max(2, int(750 * scale)), 6
    n_query, n_real, n_distractor = int(3368 * scale), int(13120 * scale), int(2793 * scale)
    centres = rng.standard_normal((ids + 1, dim), dtype=np.float32)
    cam_offset = cam_shift * rng.standard_normal((cams, dim), dtype=np.float32)
    q_pids = np.concatenate([np.arange(1, ids + 1), rng.integers(1, ids + 1, n_query - ids)])
    g_pids = np.concatenate([np.arange(1, ids + 1), rng.integers(1, ids + 1, n_real - ids), np.zeros(n_distractor, np.int64)])
    q_cams, g_cams = rng.integers(0, cams, q_pids.size), rng.integers(0, cams, g_pids.size)

    def feats(pids, cam):
        f = centres[pids] + cam_offset[cam] + noise * rng.standard_normal((pids.size, dim), dtype=np.float32)
        distractor = pids == 0  # distractors: each around a centre of its own
        f[distractor] += rng.standard_normal((int(distractor.sum()), dim), dtype=np.float32) - centres[0]
        return (f / np.sqrt(dim)).astype(np.float32)  # features as a network gives them

    return feats(q_pids, q_cams), feats(g_pids, g_cams), q_pids, g_pids, q_cams, g_cams


def same(a, b):
    return np.allclose(a[0], b[0], atol=1e-9) and abs(a[1] - b[1]) < 1e-9 and abs(a[2] - b[2]) < 1e-9


# --------------------------------------------------------------------------------------------- #


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of Market-1501's sizes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: robust on a shared, busy machine)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of evaluate_rank (best is reported)")
    parser.add_argument("--skip-rerank", action="store_true")
    parser.add_argument("--device", default="cpu", help="where distances and re-ranking run (cpu, cuda)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "reid_eval.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    scale = 0.1 if args.quick else 1.0
    rng = np.random.default_rng(0)
    qf, gf, q_pids, g_pids, q_cams, g_cams = market_like(rng, scale)
    nq, ng, dim = qf.shape[0], gf.shape[0], qf.shape[1]
    print(f"{nq} queries × {ng} gallery, D={dim}", flush=True)

    distmat, t_dist, m_dist = measure(lambda: compute_distance(qf, gf, device=args.device))
    print(f"compute_distance: {t_dist:.2f} s, +{m_dist:.0f} MiB", flush=True)
    fast, t_fast, m_fast = measure(lambda: evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams), args.repeats)
    print(f"evaluate_rank: {t_fast:.2f} s, +{m_fast:.0f} MiB; mAP {fast[1]:.4f}", flush=True)
    loop, t_loop, m_loop = measure(lambda: reference_numpy_loop(distmat, q_pids, g_pids, q_cams, g_cams))
    print(f"numpy per-query loop: {t_loop:.2f} s, +{m_loop:.0f} MiB", flush=True)
    loose, t_loose, m_loose = measure(lambda: reference_numpy_loop(distmat, q_pids, g_pids, q_cams, g_cams, kind=None))
    print(f"numpy per-query loop, unstable sort: {t_loose:.2f} s, +{m_loose:.0f} MiB", flush=True)
    ref, t_ref, m_ref = measure(lambda: reference_torchreid(distmat, q_pids, g_pids, q_cams, g_cams))
    print(f"torchreid-style loop: {t_ref:.2f} s, +{m_ref:.0f} MiB", flush=True)
    equal = same(fast, ref) and same(fast, loop)
    ties = int(sum(np.unique(row).size < row.size for row in distmat[: min(nq, 500)]))

    device = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch threads {args.threads}"
    if args.device != "cpu":
        device += f"; distances and re-ranking on {torch.cuda.get_device_name()}"
    lines = [
        "# Re-ID evaluation: time and peak memory",
        "",
        f"Machine: {device}; numpy {np.__version__}, torch {torch.__version__}.",
        f"Command: `python benchmarks/reid_eval.py{' --quick' if args.quick else ''}"
        f"{' --device ' + args.device if args.device != 'cpu' else ''}` (one run; all figures below from it).",
        "",
        f"Data: random features with Market-1501's test structure: {nq:,} queries × {ng:,} gallery images "
        f"({int((g_pids == 0).sum()):,} distractors), {len(np.unique(q_pids)):,} identities, 6 cameras, D = {dim}. "
        f"Peak = rise of the peak resident set during the call, on top of its inputs ({peak_method()}).",
        "",
        "## CMC / mAP / mINP (`evaluate_rank`, Market-1501 protocol)",
        "",
        "| method | time (s) | × faster than torchreid-style loop | peak (MiB) |",
        "|---|---:|---:|---:|",
        f"| `evaluate_rank` (vectorized, best of {args.repeats}) | {t_fast:.2f} | {t_ref / t_fast:.0f}× | {m_fast:.0f} |",
        f"| per-query loop, numpy per row (tight reference) | {t_loop:.2f} | {t_ref / t_loop:.0f}× | {m_loop:.0f} |",
        f"| per-query loop as torchreid's `eval_market1501` (plain reference) | {t_ref:.2f} | 1× | {m_ref:.0f} |",
        f"| per-query loop, numpy per row, numpy's default unstable sort ¹ | {t_loose:.2f} | {t_ref / t_loose:.0f}× | {m_loose:.0f} |",
        "",
        f"¹ Ranks equal distances arbitrarily, so its figures may differ from the others' in the last digits "
        f"(here: mAP {loose[1]:.6f} vs {fast[1]:.6f}, mINP {loose[2]:.6f} vs {fast[2]:.6f}); "
        f"`evaluate_rank` is {t_loose / t_fast:.1f}× faster than it too.",
        "",
        f"Results identical across the first three (CMC, mAP, mINP to 1e-9): **{'yes' if equal else 'NO'}** — "
        f"mAP {fast[1]:.4f}, mINP {fast[2]:.4f}, rank-1 {fast[0][0]:.4f}, rank-5 {fast[0][4]:.4f}.",
        f"Equal float32 distances occur ({ties} of the first {min(nq, 500)} query rows have ties), so the references use a "
        "stable sort; `evaluate_rank` ranks ties by gallery index as well.",
        f"Speed-up of `evaluate_rank`: **{t_ref / t_fast:.0f}×** over the plain torchreid-style loop (target ≥ 5×), "
        f"**{t_loop / t_fast:.1f}×** over the tight per-query numpy loop. It sorts distance values instead of arg-sorting "
        "them and only locates each query's own-identity gallery images in its ranking.",
        f"For scale: `compute_distance` of these features took {t_dist:.2f} s (+{m_dist:.0f} MiB, the {nq * ng * 4 / 2**20:.0f} MiB output).",
        "",
    ]
    if not args.skip_rerank:
        rr, t_rr, m_rr = measure(lambda: re_ranking(qf, gf, device=args.device))
        gpu = f" (GPU peak {GPU_PEAK['last']:.0f} MiB)" if args.device != "cpu" and GPU_PEAK else ""
        after = evaluate_rank(rr, q_pids, g_pids, q_cams, g_cams)
        n = nq + ng
        dense_gb = n * n * (2 + 2 + 2 + 4) / 1e9  # float16 original_dist, V, V_qe; int32 initial_rank
        print(f"re_ranking: {t_rr:.1f} s, +{m_rr:.0f} MiB; mAP {fast[1]:.4f} -> {after[1]:.4f}", flush=True)
        lines += [
            "## k-reciprocal re-ranking (`re_ranking`, k1 = 20, k2 = 6, λ = 0.3)",
            "",
            "| size (Q × G, N = Q + G) | D | time (s) | peak (MiB) | output alone (MiB) | mAP before → after | mINP before → after |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| {nq:,} × {ng:,} (N = {n:,}) | {dim} | {t_rr:.1f} | {m_rr:.0f}{gpu} | {nq * ng * 4 / 2**20:.0f} | "
            f"{fast[1]:.4f} → {after[1]:.4f} | {fast[2]:.4f} → {after[2]:.4f} |",
            "",
            "The features are synthetic isotropic clusters, where k-reciprocal neighbourhoods are nearly pure: the mAP gain "
            "here says nothing of the gain on real data (the strong baseline reports Market-1501 mAP 85.9 → 94.2).",
            f"The peak includes the {nq * ng * 4 / 2**20:.0f} MiB float32 output and a float32 copy of the features "
            f"({n * dim * 4 / 2**20:.0f} MiB). An implementation holding dense N × N matrices (float16 distances, V and "
            f"expanded V, int32 neighbour ranks) needs at least {dense_gb:.1f} GB at this N (not run here).",
            "",
        ]
    lines += [
        f"Load average (1 min) at the start and end of the run: {load_start:.1f}, {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores — the machine is shared, so absolute times are noisy; compare the ratios "
        "(the methods ran back to back in one process).",
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
