"""Figures of chapter 3 ("Overlay augmentation"): the exponent's distribution and image grids."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from igkd_lib.book.plots import FONT, WIDTH

__all__ = ["exponent_histogram", "image_rows"]


def exponent_histogram(exponents: torch.Tensor, low: float = 1.0, high: float = 2.0, title: str = ""):
    """Histogram of drawn exponents (n,) against the log-uniform density ``1 / (s ln(high/low))``."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    ax.hist(exponents.numpy(), bins=40, density=True, alpha=0.6, label="drawn")
    if high > low:
        s = np.linspace(low, high, 200)
        ax.plot(s, 1.0 / (s * math.log(high / low)), color="black", label=r"$1/(s\,\ln(high/low))$")
    ax.set_xlabel("exponent s")
    ax.set_ylabel("density")
    ax.legend()
    if title:
        ax.set_title(title, fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def image_rows(rows: dict, title: str = "", size: float | None = None):
    """One row per entry of ``rows`` (name -> (N, 3, H, W) in [0, 1] or maps (N, H, W) / (N, 1, H, W)).

    ``size``: inches per image (default: the images and their row labels fill ``WIDTH``)."""
    n = max(len(batch) for batch in rows.values())
    size = min((WIDTH - 1.5) / n, 1.6) if size is None else size
    fig, axes = plt.subplots(len(rows), n, figsize=(size * n + 1.5, size * len(rows) + 0.4), squeeze=False)
    for r, (name, batch) in enumerate(rows.items()):
        batch = batch.detach().float().cpu()
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(batch):
                item = batch[c]
                if item.dim() == 3 and item.shape[0] == 3:
                    ax.imshow(item.permute(1, 2, 0).clamp(0, 1).numpy())
                else:
                    ax.imshow(item.reshape(item.shape[-2:]).numpy(), cmap="magma")
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=FONT)
    if title:
        fig.suptitle(title, fontsize=FONT + 1)
    fig.tight_layout()
    return fig
