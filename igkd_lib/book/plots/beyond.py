"""Figures of the chapter "Beyond the paper": maps side by side, attribution agreement, robustness, and the
accuracy-latency Pareto figure of the compression sweep.

Each function takes tensors or the tidy tables of :mod:`igkd_lib.evidence.agreement` and
:mod:`igkd_lib.evidence.corruptions` and returns a matplotlib Figure; the provenance goes in the caption
line under it (:func:`igkd_lib.book.notebook.figure_note`).
"""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import torch

from igkd_lib.book.plots import FONT, WIDTH

__all__ = ["maps_side_by_side", "agreement_plot", "robustness_plot", "pareto_plot"]


def maps_side_by_side(images: torch.Tensor, maps: dict, titles: list | None = None) -> plt.Figure:
    """One row per image: the image (uint8 (n, 3, H, W)), then each model's map ({label: (n, H, W)})."""
    n, columns = len(images), 1 + len(maps)
    fig, axes = plt.subplots(n, columns, figsize=(WIDTH, WIDTH / columns * n * 1.08), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i].permute(1, 2, 0).numpy())
        axes[i, 0].set_ylabel(titles[i] if titles else "", fontsize=FONT)
        for j, (label, m) in enumerate(maps.items(), start=1):
            axes[i, j].imshow(m[i].numpy(), cmap="inferno")
            if i == 0:
                axes[i, j].set_title(label, fontsize=FONT)
    axes[0, 0].set_title("image", fontsize=FONT)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def agreement_plot(rows: pd.DataFrame, order: list | None = None) -> plt.Figure:
    """Per model: every image's Spearman correlation and top-10 % IoU with the teacher, and their mean ± 95 % CI."""
    from igkd_lib.evidence.stats import t_interval

    order = order or list(dict.fromkeys(rows["model"]))
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 0.45 * len(order) + 1.4), sharey=True)
    rng = np.random.default_rng(0)
    for ax, value, label in zip(axes, ("spearman", "iou"), ("Spearman ρ with the teacher's map", "top-10 % IoU")):
        for y, model in enumerate(order):
            values = rows.loc[rows["model"] == model, value].dropna().to_numpy()
            ax.scatter(values, y + rng.uniform(-0.15, 0.15, len(values)), s=8, alpha=0.35, color="tab:blue")
            mean, _, low, high = t_interval(values)
            if not np.isnan(low):
                ax.errorbar(mean, y, xerr=[[mean - low], [high - mean]], fmt="D", color="black", capsize=3)
        ax.set_xlabel(label, fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    axes[0].set_yticks(range(len(order)), order)
    axes[0].invert_yaxis()
    fig.tight_layout()
    return fig


def robustness_plot(drops: pd.DataFrame, subset: str = "all") -> plt.Figure:
    """Accuracy drop from clean (points) against severity, one panel per corruption, one line per method."""
    data = drops[drops["subset"] == subset]
    kinds = list(dict.fromkeys(data["kind"]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(WIDTH, 2.4), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for method, group in data[data["kind"] == kind].groupby("method", sort=False):
            group = group.sort_values("severity")
            line = ax.plot(group["severity"], group["drop"], marker="o", label=method)[0]
            if group["ci_low"].notna().any():
                ax.fill_between(group["severity"], group["ci_low"], group["ci_high"], alpha=0.2, color=line.get_color())
        ax.set_title(kind.replace("_", " "), fontsize=FONT)
        ax.set_xlabel("severity", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.axhline(0, color="grey", lw=0.8)
    axes[0, 0].set_ylabel("drop from clean (points)", fontsize=FONT)
    axes[0, -1].legend(fontsize=FONT - 1, frameon=False)
    fig.tight_layout()
    return fig


def pareto_plot(points: pd.DataFrame, cost: str = "latency_ms",
                cost_label: str = "latency at batch 1 (ms)") -> plt.Figure:
    """Accuracy against ``cost``, one line per method over the student cuts (mean ± 95 % CI where n >= 2),
    each point labelled with its cut; the points on the Pareto front (:func:`igkd_lib.evidence.studies.pareto_front`,
    column ``front``) ringed and joined by a dashed step line.

    ``points``: one row per (method, student_cut) with mean, ci_low, ci_high, front and ``cost``."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    for method, group in points.groupby("method", sort=False):
        group = group.sort_values(cost)
        low, high = group["mean"] - group["ci_low"], group["ci_high"] - group["mean"]
        bars = None if group["ci_low"].isna().all() else [low.fillna(0), high.fillna(0)]
        ax.errorbar(group[cost], group["mean"], yerr=bars, marker="o", capsize=3, label=method)
    for cut, group in points.groupby("student_cut"):  # one label per cut, above its best point
        top = group.loc[group["mean"].idxmax()]
        ax.annotate(f"cut {int(cut)}", (top[cost], top["mean"]), textcoords="offset points", xytext=(4, 6),
                    fontsize=FONT - 1)
    front = points[points["front"]].sort_values(cost)
    ax.step(front[cost], front["mean"], where="post", ls="--", color="black", lw=1, label="Pareto front")
    ax.scatter(front[cost], front["mean"], s=140, facecolors="none", edgecolors="black")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(cost_label, fontsize=FONT)
    ax.set_ylabel("test accuracy (%)", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.legend(fontsize=FONT, frameon=False)
    fig.tight_layout()
    return fig
