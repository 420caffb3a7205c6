"""The published students under corruption: accuracy against severity, one line per student, coloured by whether
it was trained with the IG overlay (:mod:`igkd_lib.evidence.robustness`)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from igkd_lib.book.plots import FONT, WIDTH

__all__ = ["accuracy_by_severity", "OVERLAY_COLOURS"]

OVERLAY_COLOURS = {True: "#c0392b", False: "#2c3e50"}  # trained with the overlay / without
_STYLES = {"full": "-", "random 80%": "--"}
_MARKERS = {"ig": "s", "kd_ig": "o", "kd": "^", "baseline": "D"}  # one marker per method


def accuracy_by_severity(rows: pd.DataFrame) -> plt.Figure:
    """One panel per corruption family (columns) and test subset (rows): accuracy (%) against severity (0:
    clean), one line per student (``label``), red with the IG overlay and dark without; dashed: trained on
    the random 80 %; one marker per method. ``rows``: :func:`igkd_lib.evidence.robustness_tables.accuracy_rows`."""
    kinds = [k for k in dict.fromkeys(rows["kind"]) if k != "clean"]
    subsets = list(dict.fromkeys(rows["subset"]))
    fig, axes = plt.subplots(len(subsets), len(kinds), figsize=(WIDTH, 2.3 * len(subsets) + 0.6), sharey=True,
                             squeeze=False)
    for i, subset in enumerate(subsets):
        part = rows[rows["subset"] == subset]
        for j, kind in enumerate(kinds):
            ax = axes[i, j]
            for label, group in part.groupby("label", sort=False):
                line = pd.concat([group[group["kind"] == "clean"], group[group["kind"] == kind]])
                line = line.sort_values("severity")
                overlay = bool(line["overlay"].iloc[0])
                ax.plot(line["severity"], line["accuracy"], marker=_MARKERS.get(line["method"].iloc[0], "o"), ms=3.5,
                        lw=1.2, color=OVERLAY_COLOURS[overlay],
                        ls=_STYLES.get(line["training_set"].iloc[0], ":"), label=label)
            ax.set_xticks(sorted(set(part.loc[part["kind"].isin([kind, "clean"]), "severity"])))
            ax.tick_params(labelsize=FONT)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(kind.replace("_", " "), fontsize=FONT)
            if i == len(subsets) - 1:
                ax.set_xlabel("severity (0: clean)", fontsize=FONT)
        n = int(part["n"].iloc[0])
        axes[i, 0].set_ylabel(f"accuracy (%)\n{subset}, n={n:,}", fontsize=FONT)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=FONT, frameon=False)
    fig.tight_layout(rect=(0, 0.1 if len(subsets) > 1 else 0.2, 1, 1))
    return fig
