"""Figures of the attribution chapters: map galleries, value histogram, convergence, baselines, alignment.

Every function takes tensors (or a table) and returns a matplotlib Figure; the chapter adds the
caption and the provenance line and calls ``plt.show()``. See chapters 1 and 2.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from igkd_lib.data.augment import to_float
from igkd_lib.book.plots import FONT, WIDTH

__all__ = ["gallery", "value_histogram", "convergence", "baseline_comparison", "alignment_fault"]


def _pixels(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) uint8 or float [0, 1] -> (N, H, W, 3) float for imshow."""
    x = to_float(images) if images.dtype == torch.uint8 else images.float()
    return x.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


def _show_map(ax, image: np.ndarray, heat: torch.Tensor, overlay: bool) -> None:
    if overlay:
        ax.imshow(image.mean(axis=2), cmap="gray", vmin=0, vmax=1)
    ax.imshow(heat.float().cpu().numpy(), cmap="inferno", alpha=0.65 if overlay else 1.0)
    ax.set_xticks([]), ax.set_yticks([])


def gallery(images: torch.Tensor, maps: torch.Tensor, titles=None, overlay: bool = True, title: str = "") -> Figure:
    """Images (N, 3, H, W) above their maps (N, H, W) (over a grey copy of the image if ``overlay``)."""
    n = len(images)
    cell = min(WIDTH / n, 1.6)
    fig, axes = plt.subplots(2, n, figsize=(WIDTH, 2 * cell + 0.6), squeeze=False)
    pixels = _pixels(images)
    for i in range(n):
        axes[0, i].imshow(pixels[i])
        axes[0, i].set_xticks([]), axes[0, i].set_yticks([])
        if titles is not None:
            axes[0, i].set_title(str(titles[i]), fontsize=FONT)
        _show_map(axes[1, i], pixels[i], maps[i], overlay)
    axes[0, 0].set_ylabel("image", fontsize=FONT)
    axes[1, 0].set_ylabel("IG map", fontsize=FONT)
    if title:
        fig.suptitle(title, fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def value_histogram(maps: torch.Tensor, bins: int = 60, title: str = "") -> Figure:
    """Distribution of map values (all pixels of all maps (N, H, W)), log count axis."""
    values = maps.float().flatten().cpu().numpy()
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    ax.hist(values, bins=bins, color="tab:orange")
    ax.set_yscale("log")
    ax.set_xlabel("map value (Σ over channels of |attribution|)")
    ax.set_ylabel("pixels")
    if title:
        ax.set_title(title, fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def convergence(table, title: str = "") -> Figure:
    """Relative completeness gap against the number of steps, one line per method (log-log).

    ``table``: the DataFrame of :func:`igkd_lib.attribution.ig.completeness_table`.
    """
    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    for method, part in table.groupby("method", sort=False):
        ax.plot(part["n_steps"], part["relative_gap"].clip(lower=1e-9), marker="o", label=method)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("interpolation points (n_steps)")
    ax.set_ylabel("|Σ attr − (F(x) − F(x′))| / |F(x) − F(x′)|")
    ax.legend(fontsize=FONT)
    if title:
        ax.set_title(title, fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def baseline_comparison(images: torch.Tensor, maps_by_baseline: dict, title: str = "") -> Figure:
    """Rows: the images, then one row of maps (N, H, W) per baseline name."""
    n, names = len(images), list(maps_by_baseline)
    cell = min((WIDTH - 0.8) / n, 1.6)
    fig, axes = plt.subplots(1 + len(names), n, figsize=(cell * n + 0.8, cell * (1 + len(names)) + 0.4),
                             squeeze=False)
    pixels = _pixels(images)
    for i in range(n):
        axes[0, i].imshow(pixels[i])
        axes[0, i].set_xticks([]), axes[0, i].set_yticks([])
        for r, name in enumerate(names, start=1):
            _show_map(axes[r, i], pixels[i], maps_by_baseline[name][i], overlay=False)
    for r, name in enumerate(["image"] + names):
        axes[r, 0].set_ylabel(name, fontsize=FONT)
    if title:
        fig.suptitle(title, fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def alignment_fault(images: torch.Tensor, right: torch.Tensor, wrong: torch.Tensor, title: str = "") -> Figure:
    """Each image with its own map (row 2) and the map a shuffled-order read pairs it with (row 3)."""
    return baseline_comparison(images, {"its map": right, "official pairing": wrong}, title=title)
