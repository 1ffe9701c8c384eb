"""Classification's pictures: learning curves, mixed samples, comparisons (drawn in the package's one
style, :mod:`adamixup.plots`, which also draws λ over training for both tasks)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import torch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

from ..plots import figure, save_figure

LOSS_KEYS = ("train_loss", "loss_clean", "loss_mixed", "loss_intrusion")


def learning_curves(history: List[Dict[str, Any]], path: Path, title: str = "") -> Path:
    """Loss terms (left) and train/test error (right) per epoch."""
    epochs = [m["epoch"] for m in history]
    fig, (ax_loss, ax_err) = figure(1, 2, figsize=(10, 3.8))
    for key in LOSS_KEYS:
        if history and key in history[0]:
            ax_loss.plot(epochs, [m[key] for m in history], marker=".", label=key.replace("loss_", "").replace("_", " "))
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss by term")
    ax_loss.legend(fontsize=8)
    score = "val_error" if any("val_error" in m for m in history) else "test_error"  # the split the run scored
    evaluated = [m for m in history if score in m]  # eval_every > 1 leaves epochs without errors
    for key, style in (("train_error", "--"), (score, "-")):
        ax_err.plot([m["epoch"] for m in evaluated], [m[key] for m in evaluated], style, marker=".",
                    label=key.replace("_", " "))
    if evaluated:
        best = min(evaluated, key=lambda m: m[score])
        ax_err.annotate(f"best {best[score]:.2f}%", (best["epoch"], best[score]), fontsize=8,
                        xytext=(0, 12), textcoords="offset points", ha="center")
    ax_err.set(xlabel="epoch", ylabel="error (%)", title="error", yscale="log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax_err.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))  # 1, 2, 5, 10, 20, 50: readable, no overlap
    ax_err.yaxis.set_major_formatter(plain)
    ax_err.yaxis.set_minor_formatter(plain)
    ax_err.legend(fontsize=8)
    for ax in (ax_loss, ax_err):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x * s + m).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def mixed_grid(mixed: torch.Tensor, input_ids: torch.Tensor, weights: torch.Tensor, classes: Sequence[str],
               mean: Sequence[float], std: Sequence[float], path: Path, cols: int = 8) -> Path:
    """Mixed samples, each titled with λ and its inputs' classes and weights in input order.

    mixed: ``(M, C, H, W)`` normalized mixes; input_ids: ``(M, k)`` the class of each mix's inputs,
    in the order they were mixed; weights: ``(M, k)`` their weights (``weights[:, 0]`` is λ for k = 2).
    """
    images = _denormalize(mixed, mean, std)
    n = images.shape[0]
    rows = max(1, (n + cols - 1) // cols)
    fig, axes = figure(rows, cols, figsize=(cols * 1.3, rows * 1.6), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i]
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                  vmin=0, vmax=1)
        label = " ".join(f"{classes[c]}:{w:.2f}" for c, w in zip(input_ids[i].tolist(), weights[i].tolist()))
        ax.set_title(f"λ={weights[i, 0]:.2f}\n{label}", fontsize=7)
    fig.suptitle("mixed training samples: λ weighs the first input; classes in input order", fontsize=9)
    return save_figure(fig, path)


def compare_bars(rows: List[Dict[str, Any]], path: Path, title: str = "") -> Path:
    """Mean test error ± std per method, one bar group per dataset. rows: dataset, method, mean, std, runs."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    width = 0.8 / len(methods)
    fig, ax = figure(figsize=(max(4.5, 1.8 * len(datasets) * len(methods) / 2), 3.8))
    for j, method in enumerate(methods):
        xs, means, stds = [], [], []
        for i, ds in enumerate(datasets):
            r = next((r for r in rows if r["dataset"] == ds and r["method"] == method), None)
            if r is not None:
                xs.append(i + (j - (len(methods) - 1) / 2) * width)
                means.append(r["mean"])
                stds.append(r["std"])
        bars = ax.bar(xs, means, width, yerr=stds, capsize=3, label=method)
        ax.bar_label(bars, labels=[f"{m:.2f}" for m in means], fontsize=7, padding=2)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set(ylabel="test error (%)", title=title or "test error, mean ± std over runs")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
