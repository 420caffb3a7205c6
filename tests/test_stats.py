"""Statistics over seeds: the t-interval, summaries, Welch's test, and the n = 1 case."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from igkd_lib.evidence import stats


def _runs(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    centres = {"kd_ig": 92.0, "baseline": 90.0, "kd": 91.0, "ig": 90.5}  # deliberately out of order
    rows = [{"method": m, "seed": s, "final_acc": c + rng.normal(0, 0.4)} for m, c in centres.items() for s in range(5)]
    return pd.DataFrame(rows)


def test_t_interval_matches_the_formula():
    x = np.array([90.1, 90.7, 89.9, 90.4])
    mean, sd, low, high = stats.t_interval(x)
    half = scipy_stats.t.ppf(0.975, 3) * x.std(ddof=1) / 2
    assert mean == pytest.approx(x.mean()) and sd == pytest.approx(x.std(ddof=1))
    assert (low, high) == pytest.approx((x.mean() - half, x.mean() + half))
    with pytest.raises(ValueError, match="confidence"):
        stats.t_interval(x, confidence=95)


def test_summarise_in_method_order_with_best_run():
    runs = _runs()
    table = stats.summarise(runs)
    assert list(table["method"]) == list(stats.METHOD_ORDER)
    for row in table.itertuples():
        values = runs.loc[runs["method"] == row.method, "final_acc"]
        assert row.n == 5 and row.mean == pytest.approx(values.mean()) and row.best_of_n == values.max()
        assert row.ci_low < row.mean < row.ci_high and row.note == ""


def test_one_seed_gives_nan_spread_and_says_so():
    table = stats.summarise(_runs().query("seed == 0"))
    assert (table["n"] == 1).all() and table["sd"].isna().all() and table["ci_low"].isna().all()
    assert table["note"].str.contains("n=1").all()
    test = stats.welch(_runs().query("seed == 0"), "kd", "baseline")
    assert math.isnan(test["p"]) and "fewer than 2" in test["note"] and not math.isnan(test["difference"])


def test_welch_equals_scipy_and_is_signed():
    runs = _runs()
    test = stats.welch(runs, "kd_ig", "baseline")
    a = runs.loc[runs.method == "kd_ig", "final_acc"]
    b = runs.loc[runs.method == "baseline", "final_acc"]
    expected = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert test["t"] == pytest.approx(expected.statistic) and test["p"] == pytest.approx(expected.pvalue)
    assert test["difference"] == pytest.approx(a.mean() - b.mean()) and test["difference"] > 0
    assert stats.welch(runs, "baseline", "kd_ig")["difference"] < 0


def test_welch_degenerate_cases_are_nan_not_errors():
    same = pd.DataFrame({"method": ["a", "a", "b", "b"], "final_acc": [1.0, 1.0, 2.0, 2.0]})
    assert "no variance" in stats.welch(same, "a", "b")["note"]
    assert "no runs of c" in stats.welch(same, "a", "c")["note"]
    with pytest.raises(ValueError, match="final_acc"):
        stats.welch(same.drop(columns="final_acc"), "a", "b")


def test_compare_methods_against_baseline_and_kd():
    table = stats.compare_methods(_runs())
    assert len(table) == 3 + 3
    assert set(table.loc[table["b"] == "baseline", "a"]) == {"kd", "ig", "kd_ig"}
    assert set(table.loc[table["b"] == "kd", "a"]) == {"baseline", "ig", "kd_ig"}
    only = stats.compare_methods(_runs().query("method in ['baseline', 'ig']"))
    assert list(zip(only["a"], only["b"])) == [("ig", "baseline")]


def test_wilson_interval_known_values_and_bad_input():
    acc, low, high = stats.wilson_interval(81, 100)
    assert acc == 81 and (low, high) == pytest.approx((72.22, 87.49), abs=0.01)  # Wilson's textbook example
    assert stats.wilson_interval(0, 10)[1] == pytest.approx(0.0, abs=1e-9)  # never below 0
    assert stats.wilson_interval(10, 10)[2] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="correct"):
        stats.wilson_interval(11, 10)


def test_welch_difference_matches_scipy_and_reports_power():
    rng = np.random.default_rng(3)
    a, b = rng.normal(92, 0.3, 10), rng.normal(91.5, 0.5, 7)
    d = stats.welch_difference(a, b)
    test = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert d["p"] == pytest.approx(test.pvalue) and d["difference"] == pytest.approx(a.mean() - b.mean())
    interval = test.confidence_interval(0.95)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((interval.low, interval.high))
    assert d["detectable"] > (d["ci_high"] - d["ci_low"]) / 2  # 80% power needs more than the half-width
    one = stats.welch_difference([91.0], b)
    assert math.isnan(one["ci_low"]) and "fewer than 2" in one["note"] and one["difference"] == 91.0 - b.mean()
    none = stats.welch_difference([], [91.0, 92.0])
    assert none["note"] == "an arm has no runs" and none["n_a"] == 0 and math.isnan(none["difference"])


def test_interaction_is_the_double_difference_with_a_wider_interval():
    arms = {"baseline": [90.0, 90.4, 90.2], "kd": [91.0, 91.4, 91.2], "ig": [90.5, 90.9, 90.7],
            "kd_ig": [91.0, 91.4, 91.2]}
    d = stats.interaction(arms)
    assert d["difference"] == pytest.approx(91.2 - 91.2 - 90.7 + 90.2)  # -0.5: sub-additive
    simple = stats.welch_difference(arms["kd_ig"], arms["kd"])
    assert d["ci_high"] - d["ci_low"] > simple["ci_high"] - simple["ci_low"]
    assert math.isnan(stats.interaction({**arms, "ig": [90.5]})["ci_low"])
    with pytest.raises(ValueError, match="arms"):
        stats.interaction({"kd": [1.0]})


def test_holm_and_seeds_needed():
    adjusted = stats.holm([0.01, 0.04, math.nan, 0.03])
    assert adjusted[0] == pytest.approx(0.03) and adjusted[3] == pytest.approx(0.06)
    assert adjusted[1] == pytest.approx(0.06) and math.isnan(adjusted[2])  # monotone step-down
    # the textbook figure: sd 1, difference 1, 80% power, two-sided 5% -> 17 per arm with the t correction
    assert stats.seeds_needed(1.0, 1.0) == 17
    table = stats.power_table(0.35)
    assert list(table["runs per arm"]) == sorted(table["runs per arm"], reverse=True)
    with pytest.raises(ValueError, match="delta"):
        stats.seeds_needed(0.3, 0.0)


def test_difference_table_reads_as_text_with_its_interval():
    table = stats.difference_table([("iou", [0.50, 0.52, 0.54], [0.40, 0.41, 0.45]), ("one run", [0.5], [0.4])],
                                   ("KD + IG", "student"), "measure", decimals=3)
    assert list(table.columns) == ["measure", "n", "KD + IG", "student", "KD + IG − student [95% CI]", "p", "note"]
    first, second = table.to_dict("records")
    expected = stats.welch_difference([0.50, 0.52, 0.54], [0.40, 0.41, 0.45])
    assert first["n"] == "3 vs 3" and first["KD + IG"] == "0.520" and first["student"] == "0.420"
    assert first["KD + IG − student [95% CI]"] == f"+0.100 [{expected['ci_low']:+.3f}, {expected['ci_high']:+.3f}]"
    assert first["p"] == f"{expected['p']:.3f}" and first["note"] == ""
    assert second["KD + IG − student [95% CI]"] == "+0.100" and second["p"] == "-" and "no interval" in second["note"]
    assert stats.difference_table([("x", [91.434], [])], ("a", "b"), "case").loc[0, "b"] == "-"
