"""igkd_lib.book.plots.beyond: the accuracy-latency Pareto figure."""
import matplotlib

matplotlib.use("Agg")
import math  # noqa: E402

import pandas as pd  # noqa: E402

from igkd_lib.book.plots.beyond import pareto_plot  # noqa: E402


def test_pareto_plot_draws_one_line_per_method_and_the_front():
    points = pd.DataFrame({"method": ["baseline", "baseline", "kd_ig", "kd_ig"], "student_cut": [5, 15, 5, 15],
                           "mean": [60.0, 40.0, 62.0, 39.0], "ci_low": [59.0, math.nan, 61.0, math.nan],
                           "ci_high": [61.0, math.nan, 63.0, math.nan], "latency_ms": [4.0, 1.0, 4.0, 1.0],
                           "front": [False, True, True, False]})
    figure = pareto_plot(points)
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert sorted(labels) == ["Pareto front", "baseline", "kd_ig"]
    assert sorted(t.get_text() for t in figure.axes[0].texts) == ["cut 15", "cut 5"]  # one label per cut
    assert figure.axes[0].get_xscale() == "log"
