"""Distances between query and gallery features, shared by the metrics and re-ranking."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]
METRICS = ("euclidean", "cosine")


def _np(a: ArrayLike) -> np.ndarray:
    return a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)


def compute_distance(
    qf: ArrayLike, gf: ArrayLike, metric: str = "euclidean", chunk_size: Optional[int] = None, device: Union[str, torch.device, None] = None
) -> np.ndarray:
    """Distances ``(Q, G)`` (float32 numpy) between query features ``qf`` ``(Q, D)`` and gallery
    features ``gf`` ``(G, D)``.

    metric:     "euclidean": squared Euclidean distance, ||q||² + ||g||² − 2 q·g clamped at 0;
                "cosine": 1 − cosine similarity (in [0, 2]).
    chunk_size: query rows computed at once (default: ~4 million entries, a 16 MB work buffer).
    device:     where to compute (default: where ``qf`` lives; numpy input runs on the CPU).
    """
    if metric not in METRICS:
        raise ValueError(f"distance metric must be one of {', '.join(METRICS)}, got {metric!r}")
    q = qf if torch.is_tensor(qf) else torch.from_numpy(np.asarray(qf))
    g = gf if torch.is_tensor(gf) else torch.from_numpy(np.asarray(gf))
    if q.dim() != 2 or g.dim() != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"features must be (Q, D) and (G, D) with the same D, got {tuple(q.shape)} and {tuple(g.shape)}")
    device = torch.device(device) if device is not None else q.device
    q, g = q.to(device, torch.float32), g.to(device, torch.float32)
    if metric == "cosine":
        q, g = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(g, dim=1)
    else:
        g_sq = torch.linalg.vector_norm(g, dim=1).pow(2)  # no (G, D) temporary
    if chunk_size is None:
        chunk_size = max(1, (1 << 22) // max(g.shape[0], 1))
    out = np.empty((q.shape[0], g.shape[0]), dtype=np.float32)
    buffer = torch.empty(min(chunk_size, q.shape[0]), g.shape[0], device=device)  # reused by every chunk
    with torch.no_grad():
        for start in range(0, q.shape[0], chunk_size):
            qc = q[start:start + chunk_size]
            d = torch.mm(qc, g.t(), out=buffer[: qc.shape[0]])
            if metric == "cosine":
                d.neg_().add_(1.0)
            else:
                d.mul_(-2.0).add_(torch.linalg.vector_norm(qc, dim=1, keepdim=True).pow(2)).add_(g_sq.unsqueeze(0)).clamp_(min=0.0)
            out[start:start + qc.shape[0]] = d.cpu().numpy()
    return out
