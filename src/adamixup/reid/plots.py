"""Pictures of re-ID results: the CMC curve, and ranked lists (a query and its top gallery matches,
framed green for a true match and red for a false one; several models' lists of the same queries
side by side).

Both take plain arrays, or split-like objects with ``paths``, ``pids`` and ``camids`` (a
:class:`adamixup.reid.data.ReIDSplit` or :class:`adamixup.reid.features.FeatureSet`). Figures are
drawn in the package's one style (:func:`adamixup.plots.figure`), without pyplot's global state, so
they are safe in worker threads, headless runs and notebooks. Ranked lists are image mosaics (PIL).
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..plots import figure, save_figure
from .distance import ArrayLike, _np

TRUE_COLOUR = (0, 160, 0)
FALSE_COLOUR = (210, 0, 0)
QUERY_COLOUR = (60, 60, 60)


def _ensure_dir(path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def plot_cmc(
    curves: Union[ArrayLike, Dict[str, ArrayLike]], path: Union[str, os.PathLike], title: str = "CMC", max_rank: Optional[int] = None
) -> str:
    """Draw CMC curves (rank 1..R on x, matching rate in % on y) to the PNG ``path``.

    curves:   one CMC array ``(R,)`` (fractions in [0, 1], as :func:`evaluate_rank` returns) or a
              dict ``{label: cmc}`` to compare runs, e.g. with and without re-ranking.
    max_rank: cut the curves at this rank. Returns the path written.
    """
    if not isinstance(curves, dict):
        curves = {"": curves}
    fig, ax = figure(figsize=(5, 3.6))
    for label, cmc in curves.items():
        cmc = _np(cmc).astype(np.float64).reshape(-1)
        if max_rank:
            cmc = cmc[:max_rank]
        ranks = np.arange(1, cmc.size + 1)
        text = f"{label} " if label else ""
        ax.plot(ranks, 100 * cmc, marker="." if cmc.size <= 30 else None, label=f"{text}R1 {100 * cmc[0]:.1f}%")
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return str(save_figure(fig, path))


def _fields(split, name: str) -> Tuple[Sequence[str], np.ndarray, np.ndarray]:
    try:
        return split.paths, _np(split.pids).reshape(-1), _np(split.camids).reshape(-1)
    except AttributeError:
        raise TypeError(f"{name} must have paths, pids and camids (a ReIDSplit or FeatureSet)") from None


def _tile(path: str, size: Tuple[int, int], colour: Tuple[int, int, int], border: int):
    from PIL import Image, ImageOps

    w, h = size
    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((w - 2 * border, h - 2 * border), Image.BILINEAR)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None
    return ImageOps.expand(img, border=border, fill=colour)


def plot_ranked_lists(
    distmat: Union[ArrayLike, Dict[str, ArrayLike]],
    query,
    gallery,
    path: Union[str, os.PathLike],
    query_indices: Optional[Sequence[int]] = None,
    topk: int = 10,
    tile_size: Tuple[int, int] = (64, 128),
    remove_same_camera: bool = True,
) -> str:
    """Draw one row per chosen query: the query image (grey frame), a gap, then its ``topk``
    nearest gallery images by ``distmat``, framed green (same identity) or red (other identity),
    each captioned with its rank and distance. Written to the PNG ``path``; returns the path.

    distmat:   ``(Q, G)`` distances, or a dict ``{label: distmat}`` of several models' distances over
               the same query and gallery: then each query gets one row per model, side by side in
               the label's order, the query's caption naming the model.
    query, gallery: split-like (``paths``, ``pids``, ``camids``).
    query_indices: the queries to show (default: the first 8).
    tile_size: (width, height) of an image tile, frame included.
    remove_same_camera: leave out gallery images of the query's identity and camera, as the
               evaluation protocol does.
    """
    from PIL import Image, ImageDraw

    models = {label: _np(d) for label, d in (distmat if isinstance(distmat, dict) else {"": distmat}).items()}
    if not models:
        raise ValueError("no distance matrix to draw")
    q_paths, q_pids, q_cams = _fields(query, "query")
    g_paths, g_pids, g_cams = _fields(gallery, "gallery")
    for label, d in models.items():
        if d.shape != (len(q_pids), len(g_pids)):
            raise ValueError(f"distmat{f' {label!r}' if label else ''} has shape {d.shape}, expected "
                             f"({len(q_pids)}, {len(g_pids)}) for these splits")
    if query_indices is None:
        query_indices = range(min(8, len(q_pids)))
    query_indices = list(query_indices)
    if not query_indices:
        raise ValueError("no query chosen to draw")
    for i in query_indices:
        if not 0 <= i < len(q_pids):
            raise ValueError(f"query index {i} is outside 0..{len(q_pids) - 1}")
    w, h = tile_size
    caption, gap, border = 14, w // 3, max(2, w // 16)
    captions = {label: (f"{label}, id " if label else "query, id ") for label in models}
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    widest = max(measure(f"{captions[label]}{q_pids[i]}") for label in models for i in query_indices)
    gap = max(gap, int(widest) + 6 - w)  # a query caption wider than its tile pushes the gallery right, not over it
    group_gap = caption if len(models) > 1 else 0  # a blank strip between one query's rows and the next's
    row_h = h + caption
    canvas = Image.new("RGB", (w * (topk + 1) + gap, (row_h * len(models) + group_gap) * len(query_indices) - group_gap), "white")
    draw = ImageDraw.Draw(canvas)
    for group, qi in enumerate(query_indices):
        for m, (label, d) in enumerate(models.items()):
            y = group * (row_h * len(models) + group_gap) + m * row_h
            canvas.paste(_tile(q_paths[qi], tile_size, QUERY_COLOUR, border), (0, y))
            draw.text((2, y + h), f"{captions[label]}{q_pids[qi]}", fill=(0, 0, 0))
            order = np.argsort(d[qi], kind="stable")
            if remove_same_camera:
                junk = (g_pids[order] == q_pids[qi]) & (g_cams[order] == q_cams[qi])
                order = order[~junk]
            for rank, gi in enumerate(order[:topk]):
                colour = TRUE_COLOUR if g_pids[gi] == q_pids[qi] else FALSE_COLOUR
                x = w + gap + rank * w
                canvas.paste(_tile(g_paths[gi], tile_size, colour, border), (x, y))
                draw.text((x + 2, y + h), f"{rank + 1}: {distance_label(d[qi, gi])}", fill=colour)
    path = os.fspath(path)
    _ensure_dir(path)
    canvas.save(path)
    return path


def distance_label(d: float) -> str:
    """A distance in two significant digits: features of a network trained from scratch can sit
    close together (squared distances of 0.001 after L2 normalization), and a fixed number of
    decimals would print them all as 0.00."""
    return f"{float(d):.2g}"


def reid_curves(history: Sequence[Dict], path: Union[str, os.PathLike], title: str = "") -> str:
    """Training loss by term (left) and mAP / rank-1 at the evaluated epochs (right)."""
    fig, (ax_loss, ax_ev) = figure(1, 2, figsize=(10, 3.8))
    epochs = [m["epoch"] for m in history]
    for key in [k for k in (history[0] if history else {}) if k == "train_loss" or k.startswith("loss_")]:
        label = key.replace("loss_", "") + (" (unweighted)" if key == "loss_center" else "")
        ax_loss.plot(epochs, [m.get(key, np.nan) for m in history], marker=".", label=label)
    # log scale: the unweighted center loss starts near 10^3 and would flatten the other terms to a line
    ax_loss.set(xlabel="epoch", ylabel="loss (log scale)", title="training loss by term", yscale="log")
    ax_loss.legend(fontsize=8)
    evals = [m for m in history if "mAP" in m]
    for key in ("mAP", "rank1"):
        ax_ev.plot([m["epoch"] for m in evals], [m[key] for m in evals], marker="o", label=key)
    ax_ev.set(xlabel="epoch", ylabel="%", title="retrieval (query vs gallery)")
    ax_ev.legend(fontsize=8)
    for ax in (ax_loss, ax_ev):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return str(save_figure(fig, path))
