"""Figures of the results (chapters 4 and 5): accuracy per method with every seed visible, learning
curves, soft targets at several temperatures, the T x alpha heatmap, and one-knob ablations.

Every function takes a tidy table (``experiments.run_grid`` / ``learning_curves``) and returns a
matplotlib Figure. ``title`` says what is shown; the provenance goes in the caption line under the figure
(``notebook.figure_note``). A group of one seed is drawn as a point with no interval, and the accuracy
axis spans at least ``MIN_SPAN`` percentage points, so single-seed noise does not fill the plot.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.ticker import MaxNLocator

from igkd_lib.evidence.stats import METHOD_ORDER, summarise
from igkd_lib.training.teacher import SHIPPED_TARGET
from igkd_lib.book.plots import FONT, WIDTH

__all__ = ["teacher_training_plot", "accuracy_plot", "learning_curves_plot", "soft_targets_plot", "grid_heatmap",
           "knob_plot"]

MIN_SPAN = 10.0  # percentage points: the least an accuracy axis spans
_LABELS = {"baseline": "student alone", "kd": "KD", "ig": "IG overlay", "kd_ig": "KD + IG"}


def _order(values) -> list:
    present = list(dict.fromkeys(values))
    return [m for m in METHOD_ORDER if m in present] + [m for m in present if m not in METHOD_ORDER]


def _mean_ci(ax, summary: pd.DataFrame, positions: dict, column: str, color="black") -> None:
    """Draw each group's mean with its t-interval; groups of one seed get no marker (their point is the
    value) and the legend names the interval only when one is drawn."""
    labelled = False
    for row in summary.itertuples(index=False):
        if np.isnan(row.ci_low):
            continue
        err = [[row.mean - row.ci_low], [row.ci_high - row.mean]]
        ax.errorbar(positions[getattr(row, column)] + 0.25, row.mean, yerr=err, fmt="D", color=color, capsize=4,
                    ms=6, label=None if labelled else "mean ± 95% CI (t)", zorder=5)
        labelled = True


def _span_at_least(ax, values, span: float = MIN_SPAN, low: float = 0.0, high: float = 100.0) -> None:
    """Widen the y axis to at least ``span`` (centred on ``values``, kept inside [low, high])."""
    bottom, top = ax.get_ylim()
    lo, hi = min(bottom, float(np.nanmin(values))), max(top, float(np.nanmax(values)))
    if hi - lo < span:
        middle = (lo + hi) / 2
        lo, hi = middle - span / 2, middle + span / 2
        lo, hi = (low, low + span) if lo < low else ((high - span, high) if hi > high else (lo, hi))
    ax.set_ylim(lo, hi)


def _seed_note(runs: pd.DataFrame, by: str) -> str:
    """'n = 1 seed per group: no interval' when no group has two seeds, else ''."""
    return "" if runs.groupby(by).size().max() > 1 else "one seed per group: no interval"


def _size_bands(log: pd.DataFrame, recipe: dict) -> list[tuple[int, int, str]]:
    """(first epoch, last epoch, label) of each run of epochs trained at one image size within one stage."""
    if "image_size" not in log:  # a card written before rows carried their size: read it off the recipe
        starts = [tuple(r) for r in recipe.get("resolutions", [(0, 32)])]
        log = log.assign(stage=1, image_size=[[size for first, size in starts if first <= e - 1][-1]
                                              for e in log["epoch"]])
    stages = log["stage"] if "stage" in log else pd.Series(1, index=log.index)
    key = list(zip(stages, log["image_size"]))
    bands, first = [], 0
    for i in range(1, len(key) + 1):
        if i == len(key) or key[i] != key[first]:
            stage, size = key[first]
            label = (f"stage {stage}, " if stages.max() > 1 else "") + f"{size} px"
            bands.append((int(log["epoch"].iloc[first]), int(log["epoch"].iloc[i - 1]), label))
            first = i
    return bands


def teacher_training_plot(info, title: str = "") -> plt.Figure:
    """The teacher's training log (from its card): loss, and train/test accuracy per epoch, with the
    training image size (and stage) of each epoch shaded; the test set is always scored at 32 px. In a
    stage that averages its weights, "test" is the average's accuracy and a dotted line the trained weights'."""
    log = pd.DataFrame(list(info.log))
    if log.empty:
        raise ValueError("info.log is empty: this teacher's card has no training log to plot")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(WIDTH, 4.2))
    ax_loss.plot(log["epoch"], log["loss"], marker="o", color="tab:gray")
    ax_loss.set_ylabel("training loss")
    ax_acc.plot(log["epoch"], log["train_acc"], marker="o", label="train (augmented, running)")
    ax_acc.plot(log["epoch"], log["test_acc"], marker="s", label="test (32 px)")
    if "live_test_acc" in log:  # a stage whose result is a moving average: its trained weights' accuracy too
        ax_acc.plot(log["epoch"], log["live_test_acc"], ls=":", marker=".", color="tab:green",
                    label="test, trained weights (averaged stages)")
    ax_acc.axhline(SHIPPED_TARGET, color="tab:red", lw=0.8, ls="--", label=f"{SHIPPED_TARGET:.0f}% target")
    ax_acc.set_ylabel("accuracy (%)")
    bands = _size_bands(log, info.recipe)
    shades = plt.cm.Blues(np.linspace(0.08, 0.3, len(bands)))
    for (first, last, label), shade in zip(bands, shades):
        for ax in (ax_loss, ax_acc):
            ax.axvspan(first - 0.5, last + 0.5, color=shade, zorder=0)
        ax_acc.text((first + last) / 2, 3, label, ha="center", va="bottom", fontsize=FONT,
                    rotation=90 if last - first < 20 else 0)  # a horizontal label needs ~20 epochs at WIDTH
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
    ax_acc.set_ylim(0, 100)
    fig.legend(*ax_acc.get_legend_handles_labels(), fontsize=FONT, loc="lower center", ncol=2, frameon=False,
               bbox_to_anchor=(0.5, 0.0))  # below the panels: inside, it hid the stage labels
    if title:
        fig.suptitle(title, fontsize=FONT + 1, wrap=True)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig


def accuracy_plot(runs: pd.DataFrame, value: str = "final_acc", reference: pd.DataFrame | None = None,
                  title: str = "", x: str = "method") -> plt.Figure:
    """Every seed's accuracy (points) per ``x`` group, with mean ± 95% CI; ``reference`` rows (method,
    mean, source) are drawn as labelled markers beside them."""
    order = _order(runs[x]) if x == "method" else list(dict.fromkeys(runs[x]))
    positions = {m: i for i, m in enumerate(order)}
    fig, ax = plt.subplots(figsize=(WIDTH, 3.8))
    sns.stripplot(data=runs, x=x, y=value, order=order, ax=ax, size=6, alpha=0.7, jitter=0.12, color="tab:blue",
                  label=None)
    _mean_ci(ax, summarise(runs, by=[x], value=value), positions, x)
    if reference is not None and len(reference):
        markers = iter(["*", "^", "s", "v"])
        for source, rows in reference[reference["method"].isin(order)].groupby("source", sort=False):
            xs = [positions[m] - 0.3 for m in rows["method"]]
            ax.scatter(xs, rows["mean"], marker=next(markers, "o"), s=70, zorder=6, label=source)
    ax.set_xticks(range(len(order)), [_LABELS.get(m, str(m)) for m in order])
    ax.set_xlabel(x)
    ax.set_ylabel(f"test accuracy (%), {'final epoch' if value == 'final_acc' else 'best epoch'}")
    _span_at_least(ax, runs[value])
    note = _seed_note(runs, x)
    if note:
        ax.text(0.99, 0.02, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=FONT, color="0.3")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=FONT, loc="best")
    if title:
        ax.set_title(title, fontsize=FONT + 1, wrap=True)
    fig.tight_layout()
    return fig


def learning_curves_plot(curves: pd.DataFrame, value: str = "test_acc", title: str = "") -> plt.Figure:
    """Test accuracy (or ``value``) per epoch, one line per method (mean over seeds, band = range of the
    seeds; no band with one seed)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.8))
    order = _order(curves["method"])
    sns.lineplot(data=curves, x="epoch", y=value, hue="method", hue_order=order, errorbar=("pi", 100),
                 marker="o", ax=ax)
    ax.set_xlabel("epoch")
    epochs = curves["epoch"].nunique()
    if epochs < 10:
        ax.set_xticks(sorted(curves["epoch"].unique()))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if epochs < 3:  # say so, rather than let two points pass for a curve
        ax.text(0.99, 0.02, f"{epochs} epoch{'s' if epochs > 1 else ''} per run: not a curve yet",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=FONT, color="0.3")
    ax.set_ylabel(value.replace("_", " ") + (" (%)" if value.endswith("acc") else ""))
    if value.endswith("acc"):
        _span_at_least(ax, curves[value])
    if title:
        ax.set_title(title, fontsize=FONT + 1, wrap=True)
    fig.tight_layout()
    return fig


def soft_targets_plot(logits: torch.Tensor, temperatures, class_names, title: str = "") -> plt.Figure:
    """softmax(logits / T) of one image (logits (C,)) at each temperature, as grouped bars."""
    logits = torch.as_tensor(logits, dtype=torch.float32).reshape(-1)
    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    width = 0.8 / len(temperatures)
    for i, t in enumerate(temperatures):
        probs = torch.softmax(logits / float(t), dim=0).numpy()
        ax.bar(np.arange(len(probs)) + (i - (len(temperatures) - 1) / 2) * width, probs, width, label=f"T = {t:g}")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_ylabel("probability")
    ax.legend(fontsize=FONT, ncol=len(temperatures), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=FONT + 1, wrap=True, pad=24)
    fig.tight_layout()
    return fig


def grid_heatmap(runs: pd.DataFrame, row: str = "temperature", col: str = "alpha", value: str = "final_acc",
                 title: str = "") -> plt.Figure:
    """Mean ``value`` over seeds for each (row, col) cell, annotated 'mean ± sd (n)'."""
    summary = summarise(runs, by=[row, col], value=value)
    means = summary.pivot(index=row, columns=col, values="mean")
    notes = summary.assign(text=[f"{m:.2f}" + ("" if np.isnan(s) else f"\n± {s:.2f}") + f"\n(n={n})"
                                 for m, s, n in zip(summary["mean"], summary["sd"], summary["n"])])
    text = notes.pivot(index=row, columns=col, values="text").reindex_like(means)
    fig, ax = plt.subplots(figsize=(WIDTH, min(1.0 * means.shape[0] + 1.6, 5.0)))
    low, high = float(np.nanmin(means.to_numpy())), float(np.nanmax(means.to_numpy()))
    if high - low < MIN_SPAN:  # a colour scale of at least MIN_SPAN points: noise does not get the full range
        low, high = (low + high) / 2 - MIN_SPAN / 2, (low + high) / 2 + MIN_SPAN / 2
    sns.heatmap(means, annot=text.fillna("").to_numpy(), fmt="", cmap="viridis", ax=ax, vmin=low, vmax=high,
                annot_kws={"fontsize": FONT}, cbar_kws={"label": f"mean {value} (%)"})
    if title:
        ax.set_title(title, fontsize=FONT + 1, wrap=True)
    fig.tight_layout()
    return fig


def knob_plot(runs: pd.DataFrame, knob: str, value: str = "final_acc", title: str = "") -> plt.Figure:
    """Accuracy against one knob (p, blend, a control label): every seed's point and, with two or more
    seeds, the mean ± 95% CI."""
    return accuracy_plot(runs.assign(**{knob: runs[knob].astype(str)}), value=value, title=title, x=knob)
