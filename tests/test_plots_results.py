"""The results figures: each returns a Figure that shows every seed's point and the right groups."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from igkd_lib.book.plots import results  # noqa: E402
from igkd_lib.evidence import reference  # noqa: E402


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
    low, high = fig.axes[0].collections[0].get_clim()
    assert high - low >= results.MIN_SPAN  # the colour scale does not stretch a 1-point spread over all colours
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


def test_teacher_training_plot_draws_every_epoch_and_each_image_size():
    import dataclasses

    from igkd_lib.training.teacher import TeacherInfo

    log = tuple({"epoch": e, "loss": 2.0 / e, "train_acc": 10.0 * e, "test_acc": 9.0 * e} for e in range(1, 7))
    info = TeacherInfo("shipped", 54.0, "abc", "offline", {"resolutions": [[0, 16], [2, 24], [4, 32]]}, log=log)
    fig = results.teacher_training_plot(info, title="t")
    ax_loss, ax_acc = fig.axes
    assert [len(line.get_xdata()) for line in ax_acc.get_lines()][:2] == [6, 6]  # train, test (then the target)
    assert list(ax_acc.get_lines()[1].get_ydata()) == [9.0 * e for e in range(1, 7)]
    assert [t.get_text() for t in ax_acc.texts] == ["16 px", "24 px", "32 px"]
    plt.close(fig)
    staged = tuple({**row, "stage": 1 if row["epoch"] <= 4 else 2, "image_size": 32} for row in log)
    staged_info = dataclasses.replace(info, log=staged, stages=({"epochs": 4}, {"epochs": 2}))
    assert "(6 of 6 epochs, complete)" in staged_info.training_provenance()  # every stage's epochs, not the last's
    fig = results.teacher_training_plot(staged_info)
    assert [t.get_text() for t in fig.axes[1].texts] == ["stage 1, 32 px", "stage 2, 32 px"]
    assert len(fig.axes[1].get_lines()) == 3  # no averaged stage: train, test, target
    plt.close(fig)
    averaged = tuple({**row, "live_test_acc": row["test_acc"] - 1} if row["stage"] == 2 else row for row in staged)
    fig = results.teacher_training_plot(dataclasses.replace(staged_info, log=averaged))
    live = [line for line in fig.axes[1].get_lines() if "trained weights" in line.get_label()]
    assert len(live) == 1 and list(live[0].get_ydata())[-2:] == [44.0, 53.0]
    plt.close(fig)
    try:
        results.teacher_training_plot(TeacherInfo("shipped", 0.0, "abc", "offline", {}))
    except ValueError as error:
        assert "info.log" in str(error)
    else:
        raise AssertionError("an empty log must be refused")


def _legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_one_seed_plot_claims_no_interval_and_does_not_magnify_noise():
    """Issue 15: with one seed per group no '± 95% CI' legend, a note instead, and an axis of >= MIN_SPAN points."""
    one = _runs().query("seed == 0").assign(final_acc=[31.2, 31.9, 31.5])
    fig = results.accuracy_plot(one)
    ax = fig.axes[0]
    assert not any("CI" in t for t in _legend_texts(ax))
    assert any("one seed" in t.get_text() for t in ax.texts)
    low, high = ax.get_ylim()
    assert high - low >= results.MIN_SPAN and low <= 31.2 and high >= 31.9
    plt.close(fig)
    fig = results.accuracy_plot(_runs())  # three seeds: the interval is drawn and named
    assert any("95% CI" in t for t in _legend_texts(fig.axes[0]))
    assert not any("one seed" in t.get_text() for t in fig.axes[0].texts)
    plt.close(fig)


def test_figures_are_drawn_at_the_column_width():
    from igkd_lib.book.plots import WIDTH

    runs = _runs()
    curves = pd.DataFrame({"method": "kd", "seed": 0, "epoch": [1, 2, 3], "test_acc": [20.0, 30.0, 35.0]})
    for fig in (results.accuracy_plot(runs), results.knob_plot(runs, "p"), results.learning_curves_plot(curves),
                results.grid_heatmap(runs, "temperature", "alpha")):
        assert fig.get_figwidth() == WIDTH
        plt.close(fig)


def test_learning_curves_of_one_epoch_say_they_are_not_curves():
    curves = pd.DataFrame({"method": ["kd", "kd_ig"], "seed": 0, "epoch": [1, 1], "test_acc": [10.0, 10.0]})
    fig = results.learning_curves_plot(curves)
    assert any("not a curve" in t.get_text() for t in fig.axes[0].texts)
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())
    plt.close(fig)
