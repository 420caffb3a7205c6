"""The results figures: each returns a Figure that shows every seed's point and the right groups."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from igkd_lib import reference  # noqa: E402
from igkd_lib.plots import results  # noqa: E402


def _runs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"method": m, "seed": s, "final_acc": 80 + i + rng.normal(0, 0.5), "temperature": t, "alpha": a, "p": 0.1}
            for i, m in enumerate(["kd_ig", "baseline", "kd"]) for s in range(3)
            for t, a in [(2.5, 0.01)]]
    return pd.DataFrame(rows)


def test_accuracy_plot_shows_every_seed_in_method_order():
    runs = _runs()
    fig = results.accuracy_plot(runs, reference=reference.reference_table(), title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["student alone", "KD", "KD + IG"]
    points = sum(len(c.get_offsets()) for c in ax.collections[:3])
    assert points == len(runs)
    assert any(reference.SOURCE_OFFICIAL in t.get_text() for t in ax.get_legend().get_texts())
    plt.close(fig)


def test_grid_heatmap_cells_and_knob_plot():
    runs = pd.concat([_runs().assign(temperature=t, alpha=a) for t in (2.5, 5.0) for a in (0.01, 0.1)])
    fig = results.grid_heatmap(runs.query("method == 'kd'"), "temperature", "alpha")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 4 and all("(n=3)" in t for t in texts)
    plt.close(fig)
    fig = results.knob_plot(runs.query("method == 'kd'"), "alpha")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0.01", "0.1"]
    plt.close(fig)


def test_learning_curves_and_soft_targets():
    curves = pd.DataFrame([{"method": m, "seed": s, "epoch": e, "test_acc": 50 + e + s}
                           for m in ("kd", "baseline") for s in range(2) for e in (1, 2, 3)])
    fig = results.learning_curves_plot(curves)
    assert len(fig.axes[0].get_lines()) >= 2
    plt.close(fig)
    fig = results.soft_targets_plot(torch.tensor([3.0, 1.0, 0.0]), [1.0, 4.0], ["a", "b", "c"])
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert len(heights) == 6 and abs(sum(heights) - 2.0) < 1e-5  # two distributions
    assert heights[0] > heights[3]  # a higher temperature flattens the top class
    plt.close(fig)
