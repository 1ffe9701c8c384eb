"""The pictures' one style: every picture of the package (classification's :mod:`adamixup.classify.plots`,
re-ID's :mod:`adamixup.reid.plots`, the studies' reports) is drawn with :func:`figure` and :func:`save_figure`.

Figures are made with matplotlib's object interface (:func:`figure`), never through pyplot: drawing
a file neither needs nor changes the interactive backend, so importing the package leaves a
notebook's plots alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Tuple

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
