"""The pictures' one style, and the picture both tasks draw (λ over training, :func:`lambda_distribution`):
every picture of the package (classification's :mod:`adamixup.classify.plots`,
re-ID's :mod:`adamixup.reid.plots`, the studies' reports) is drawn with :func:`figure` and :func:`save_figure`.

Figures are made with matplotlib's object interface (:func:`figure`), never through pyplot: drawing
a file neither needs nor changes the interactive backend, so importing the package leaves a
notebook's plots alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
from matplotlib.figure import Figure

DPI = 110


def figure(nrows: int = 1, ncols: int = 1, figsize: Tuple[float, float] = (6.4, 4.0), squeeze: bool = True,
           **subplot_kw) -> Tuple[Figure, Any]:
    """A new figure and its axes (like pyplot's ``subplots``), outside pyplot's global state."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze, **subplot_kw)


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to the PNG ``path`` (folders made as needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def lambda_distribution(history: List[Dict[str, Any]], path: Path) -> Path:
    """Where the mixing ratios fell, epoch by epoch: a heat map of λ's histogram and its mean ± std."""
    rows = [m for m in history if "lam_hist" in m]
    hist = np.array([m["lam_hist"] for m in rows], dtype=float)
    hist = hist / np.maximum(hist.sum(1, keepdims=True), 1)
    epochs = np.array([m["epoch"] for m in rows])
    fig, ax = figure(figsize=(7, 3.8))
    extent = (epochs[0] - 0.5, epochs[-1] + 0.5, 0, 1)
    im = ax.imshow(hist.T, origin="lower", aspect="auto", extent=extent, cmap="viridis")
    mean = np.array([m["lam_mean"] for m in rows])
    std = np.array([m["lam_std"] for m in rows])
    ax.plot(epochs, mean, color="white", lw=1.5, label="mean λ")
    ax.fill_between(epochs, mean - std, mean + std, color="white", alpha=0.2, label="± std")
    ax.set(xlabel="epoch", ylabel="λ", title="distribution of the mixing ratio λ over training", ylim=(0, 1))
    ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(im, ax=ax, label="share of mixed samples")
    return save_figure(fig, path)
