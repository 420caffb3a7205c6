"""Figures and the comparison table of chapter 6 ("Latency").

``plot_sweep``: batch-1 latency against parameters and against MACs for the compression sweep (log
axes, IQR error bars); ``plot_throughput``: images/s against batch size; ``plot_variants``: the
deployment variants as bars with IQR error bars; ``paper_comparison``: the paper's 140 ms -> 13 ms
beside what we measured, each row labelled by device and method.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullLocator

from igkd_lib.bench.latency import PAPER, student_teacher_ratio
from igkd_lib.book.plots import FONT, WIDTH

__all__ = ["plot_sweep", "plot_throughput", "plot_variants", "paper_comparison"]


def _errors(rows: pd.DataFrame) -> np.ndarray:
    """Asymmetric error bars (2, n) from the quartiles."""
    return np.vstack([rows.median_ms - rows.q1_ms, rows.q3_ms - rows.median_ms]).clip(min=0)


def _label(ax, rows: pd.DataFrame, column: str) -> None:
    for _, row in rows.iterrows():
        text = "teacher" if row.model == "teacher" else f"cut {int(row.cut)}"
        ax.annotate(text, (row[column], row.median_ms), textcoords="offset points", xytext=(4, 4), fontsize=FONT)


def plot_sweep(table: pd.DataFrame, batch_size: int = 1, caption: str = "") -> plt.Figure:
    """Median latency (ms per batch, IQR bars) at ``batch_size`` against parameters and against MACs."""
    rows = table[table.batch_size == batch_size].sort_values("parameters")
    figure, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.6), sharey=True)
    for ax, column, name in zip(axes, ("parameters", "macs"), ("parameters", "MACs per image")):
        ax.errorbar(rows[column], rows.median_ms, yerr=_errors(rows), fmt="o-", capsize=3)
        teacher = rows[rows.model == "teacher"]
        ax.plot(teacher[column], teacher.median_ms, "s", color="C3", markersize=9, label="teacher")
        _label(ax, rows, column)
        ax.set(xscale="log", yscale="log", xlabel=name, title=f"against {name}, batch {batch_size}")
    axes[0].set_ylabel("median latency (ms)")
    axes[0].legend(loc="upper left")
    if caption:
        figure.suptitle(caption, fontsize=FONT + 1)
    figure.tight_layout()
    return figure


def plot_throughput(table: pd.DataFrame, caption: str = "") -> plt.Figure:
    """Throughput (images/s) against batch size, one line per model."""
    figure, ax = plt.subplots(figsize=(WIDTH, 3.8))
    for model, rows in table.groupby("model", sort=False):
        rows = rows.sort_values("batch_size")
        ax.plot(rows.batch_size, rows.throughput, "o-", label=model, lw=2.5 if model == "teacher" else 1.2)
    ax.set_xscale("log", base=2)
    ax.set(yscale="log", xlabel="batch size", ylabel="images / s", title="throughput")
    sizes = sorted(table.batch_size.unique())
    ax.set_xticks(sizes, [str(int(b)) for b in sizes])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.legend(fontsize=FONT, ncol=2)
    if caption:
        figure.suptitle(caption, fontsize=FONT + 1)
    figure.tight_layout()
    return figure


def plot_variants(table: pd.DataFrame, caption: str = "") -> plt.Figure:
    """Median latency of each available deployment variant (bars) with IQR error bars, one panel per model
    on a shared latency axis, so a variant of one model can be read against the other model's."""
    rows = table[table.status == "ok"]
    models_ = list(dict.fromkeys(rows.model))
    figure, axes = plt.subplots(1, len(models_), figsize=(WIDTH, 3.8), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models_):
        part = rows[rows.model == model]
        ax.bar(part.variant, part.median_ms, yerr=_errors(part), capsize=4, color="C0")
        ax.set(title=model)
        ax.tick_params(axis="x", rotation=35, labelsize=FONT)
    axes[0, 0].set_ylabel("median latency (ms), batch 1")
    if caption:
        figure.suptitle(caption, fontsize=FONT + 1)
    figure.tight_layout()
    return figure


def _cold_row(cold) -> dict:
    """One cold-pass result: a ``cold_forward`` dict, or the teacher-first median of ``paper_method``."""
    if isinstance(cold, pd.DataFrame):
        rows = cold[cold.order == "teacher_first"]
        return {"device": rows.device.iloc[0], "teacher_ms": rows.teacher_ms.median(),
                "student_ms": rows.student_ms.median()}
    return cold


def paper_comparison(table: pd.DataFrame, cold, cut: int = 5) -> pd.DataFrame:
    """The paper's numbers, our cold single pass (teacher first), our per-image time at the largest
    batch, and our warm batch-1 median (last row), each with its device and method."""
    device = table.device.iloc[0]
    largest = int(table.batch_size.max())
    warm = student_teacher_ratio(table, cut, 1)
    bulk = student_teacher_ratio(table, cut, largest)
    row = _cold_row(cold)
    rows = [
        (PAPER["device"], "one cold pass each, teacher first", PAPER["teacher_ms"], PAPER["student_ms"]),
        (row["device"], "one cold pass each, teacher first (the paper's method)", row["teacher_ms"], row["student_ms"]),
        (device, f"median per image at batch {largest}", bulk["teacher_ms"] / largest, bulk["student_ms"] / largest),
        (device, "median at batch 1, after warm-up", warm["teacher_ms"], warm["student_ms"]),
    ]
    result = pd.DataFrame(rows, columns=["device", "method", "teacher_ms", "student_ms"])
    result["speedup"] = result.teacher_ms / result.student_ms
    return result
