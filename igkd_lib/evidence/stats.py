"""Statistics over seeds: means with t-intervals, Welch differences, power, Holm, binomial intervals.

The primary number of the book is the final-epoch test accuracy averaged over seeds with its 95%
confidence interval; the paper's way (the best of n runs) is shown beside it, labelled. A comparison
is a Welch difference of means with its 95% interval, p-value and the smallest difference the design
could detect at 80% power (:func:`welch_difference`); the 2x2 interaction of KD and IG has its own
interval (:func:`interaction`). With one seed there is no spread: sd, CI and p-values are NaN and the
``note`` column says so (never an error). See chapter 4 ("Results"), the results summary and
:mod:`igkd_lib.evidence.claims`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

from igkd_lib.config import METHODS

__all__ = ["summarise", "welch", "method_pairs", "compare_methods", "t_interval", "METHOD_ORDER", "wilson_interval",
           "welch_difference", "difference_table", "interaction", "holm", "seeds_needed", "power_table",
           "detectable_difference"]

METHOD_ORDER = METHODS  # tables and figures list the methods in the paper's order
_ONE_RUN = "n=1: no spread, no interval"


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, sd, low, high)`` of ``values`` with a Student-t interval; sd/low/high NaN when n < 2."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} is not allowed; allowed: a number in (0, 1)")
    if len(x) == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(x.std(ddof=1))
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, len(x) - 1)) * sd / math.sqrt(len(x))
    return mean, sd, mean - half, mean + half


def _check_columns(df: pd.DataFrame, columns) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"df lacks column(s) {missing}; it has: {list(df.columns)}")


def summarise(df: pd.DataFrame, by=("method",), value: str = "final_acc") -> pd.DataFrame:
    """One row per group: n, mean, sd, ci_low, ci_high (95%, t), best_of_n (the paper's way: best of the n runs),
    note."""
    by = [by] if isinstance(by, str) else list(by)
    _check_columns(df, [*by, value])
    rows = []
    for key, group in df.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, sd, low, high = t_interval(group[value])
        n = int(group[value].notna().sum())
        rows.append({**dict(zip(by, key)), "n": n, "mean": mean, "sd": sd, "ci_low": low, "ci_high": high,
                     "best_of_n": float(group[value].max()) if n else math.nan, "note": _ONE_RUN if n == 1 else ""})
    table = pd.DataFrame(rows, columns=[*by, "n", "mean", "sd", "ci_low", "ci_high", "best_of_n", "note"])
    return _in_method_order(table) if "method" in by else table


def _in_method_order(table: pd.DataFrame) -> pd.DataFrame:
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    order = sorted(range(len(table)), key=lambda i: (rank.get(table["method"].iloc[i], len(rank)), i))
    return table.iloc[order].reset_index(drop=True)


def welch(df: pd.DataFrame, a: str, b: str, value: str = "final_acc", by: str = "method") -> dict:
    """Welch's t-test of group ``a`` against group ``b``: difference = mean(a) - mean(b), t, p, note.

    With fewer than two runs in a group, or no variance in either, t and p are NaN and ``note`` says why.
    """
    _check_columns(df, [by, value])
    xa = df.loc[df[by] == a, value].dropna().to_numpy(float)
    xb = df.loc[df[by] == b, value].dropna().to_numpy(float)
    result = {"a": a, "b": b, "n_a": len(xa), "n_b": len(xb),
              "mean_a": float(xa.mean()) if len(xa) else math.nan,
              "mean_b": float(xb.mean()) if len(xb) else math.nan,
              "t": math.nan, "p": math.nan, "note": ""}
    result["difference"] = result["mean_a"] - result["mean_b"]
    if len(xa) == 0 or len(xb) == 0:
        result["note"] = f"no runs of {a if len(xa) == 0 else b}"
    elif len(xa) < 2 or len(xb) < 2:
        result["note"] = "fewer than 2 runs in a group: no test"
    elif xa.std() == 0 and xb.std() == 0:
        result["note"] = "no variance in either group: no test"
    else:
        test = _scipy_stats.ttest_ind(xa, xb, equal_var=False)
        result["t"], result["p"] = float(test.statistic), float(test.pvalue)
    return result


def method_pairs(df: pd.DataFrame, references=("baseline", "kd")) -> list[tuple[str, str]]:
    """``(method, reference)`` for every method present against each reference present, in the paper's order."""
    _check_columns(df, ["method"])
    present = [m for m in METHOD_ORDER if m in set(df["method"])] + \
              [m for m in dict.fromkeys(df["method"]) if m not in METHOD_ORDER]
    return [(method, ref) for ref in references if ref in present for method in present if method != ref]


def compare_methods(df: pd.DataFrame, value: str = "final_acc", references=("baseline", "kd")) -> pd.DataFrame:
    """Welch t-tests of every method against each reference method present (baseline, KD)."""
    _check_columns(df, ["method", value])
    rows = [welch(df, method, ref, value) for method, ref in method_pairs(df, references)]
    columns = ["a", "b", "n_a", "n_b", "mean_a", "mean_b", "difference", "t", "p", "note"]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- inference
def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(accuracy, low, high)`` in percent: Wilson's binomial interval for ``correct`` of ``n`` (NaN when n = 0)."""
    if n < 0 or not 0 <= correct <= max(n, 0):
        raise ValueError(f"correct={correct}, n={n} are not allowed; allowed: 0 <= correct <= n")
    if n == 0:
        return (math.nan,) * 3
    z = float(_scipy_stats.norm.ppf(0.5 + confidence / 2))
    share = correct / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * share, 100 * (centre - half), 100 * (centre + half)


def detectable_difference(se: float, df: float, power: float = 0.8, level: float = 0.05) -> float:
    """The smallest true difference a two-sided test at ``level`` detects with ``power``: (t_{1-a/2} + t_power) se."""
    if not (se > 0 and df > 0):
        return math.nan
    return float((_scipy_stats.t.ppf(1 - level / 2, df) + _scipy_stats.t.ppf(power, df)) * se)


def _clean(values) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[~np.isnan(x)]


def welch_difference(a, b, confidence: float = 0.95, power: float = 0.8) -> dict:
    """mean(a) - mean(b) with Welch's t interval and p-value, and the detectable difference at ``power``.

    Keys: n_a, n_b, mean_a, mean_b, difference, se, df, ci_low, ci_high, p, detectable, note.
    Interval, p and detectable difference are NaN with fewer than two runs per arm or no variance.
    """
    xa, xb = _clean(a), _clean(b)
    out = {"n_a": len(xa), "n_b": len(xb), "mean_a": float(xa.mean()) if len(xa) else math.nan,
           "mean_b": float(xb.mean()) if len(xb) else math.nan, "se": math.nan, "df": math.nan,
           "ci_low": math.nan, "ci_high": math.nan, "p": math.nan, "detectable": math.nan, "note": ""}
    out["difference"] = out["mean_a"] - out["mean_b"]
    if min(len(xa), len(xb)) < 2:  # no runs at all in an arm: as interaction() says it (e.g. paper before its runs)
        out["note"] = "an arm has no runs" if min(len(xa), len(xb)) == 0 else "fewer than 2 runs in an arm: no interval"
        return out
    parts = [xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)]
    return {**out, **_t_summary(out["difference"], parts, [len(xa) - 1, len(xb) - 1], confidence, power)}


def difference_table(cases, names: tuple[str, str], label: str, decimals: int = 2) -> pd.DataFrame:
    """One row per ``(name, a values, b values)`` case: the means, mean(a) - mean(b) with Welch's 95 %
    interval (column "<a> − <b> [95% CI]"), and p (:func:`welch_difference`), as text with ``decimals``
    decimals (2 suit accuracies in %, 3 correlations), for reading.

    ``names``: the two arms' column titles; ``label``: the title of the cases' column.
    """
    def number(value: float, sign: str = "") -> str:
        return "-" if math.isnan(value) else f"{value:{sign}.{decimals}f}"

    rows = []
    for name, a, b in cases:
        d = welch_difference(a, b)
        interval = "" if math.isnan(d["ci_low"]) else f" [{number(d['ci_low'], '+')}, {number(d['ci_high'], '+')}]"
        rows.append({label: name, "n": f"{d['n_a']} vs {d['n_b']}", names[0]: number(d["mean_a"]),
                     names[1]: number(d["mean_b"]), f"{names[0]} − {names[1]} [95% CI]": number(d["difference"], "+")
                     + interval, "p": "-" if math.isnan(d["p"]) else f"{d['p']:.3f}", "note": d["note"]})
    columns = [label, "n", *names, f"{names[0]} − {names[1]} [95% CI]", "p", "note"]
    return pd.DataFrame(rows, columns=columns)


def _t_summary(estimate: float, parts: list, dofs: list, confidence: float, power: float) -> dict:
    """Interval, p and detectable difference of ``estimate`` whose variance is ``sum(parts)`` (Welch-Satterthwaite)."""
    variance = float(sum(parts))
    if variance == 0:
        return {"note": "no variance in any arm: no interval"}
    df = variance ** 2 / sum(v ** 2 / d for v, d in zip(parts, dofs))
    se = math.sqrt(variance)
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    p = float(2 * _scipy_stats.t.sf(abs(estimate) / se, df))
    return {"se": se, "df": df, "ci_low": estimate - half, "ci_high": estimate + half, "p": p,
            "detectable": detectable_difference(se, df, power, 1 - confidence)}


def interaction(arms: dict, confidence: float = 0.95, power: float = 0.8) -> dict:
    """The 2x2 interaction kd_ig - kd - ig + baseline of the arms' means, with a Welch-Satterthwaite interval.

    ``arms`` maps baseline, kd, ig, kd_ig to run accuracies. Negative: KD and IG together gain less
    than the sum of their gains (sub-additive). Keys as :func:`welch_difference` (difference = the interaction).
    """
    missing = [m for m in METHOD_ORDER if m not in arms]
    if missing:
        raise ValueError(f"arms lacks {missing}; allowed: a mapping with baseline, kd, ig, kd_ig")
    xs = {m: _clean(arms[m]) for m in METHOD_ORDER}
    signs = {"baseline": 1, "kd": -1, "ig": -1, "kd_ig": 1}
    n = {m: len(x) for m, x in xs.items()}
    out = {"n": n, "difference": math.nan, "se": math.nan, "df": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "p": math.nan, "detectable": math.nan, "note": ""}
    if min(n.values()) == 0:
        return {**out, "note": "an arm has no runs"}
    out["difference"] = float(sum(signs[m] * xs[m].mean() for m in METHOD_ORDER))
    if min(n.values()) < 2:
        return {**out, "note": "fewer than 2 runs in an arm: no interval"}
    parts = [xs[m].var(ddof=1) / n[m] for m in METHOD_ORDER]
    return {**out, **_t_summary(out["difference"], parts, [n[m] - 1 for m in METHOD_ORDER], confidence, power)}


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given; NaN stays NaN and is not counted)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def seeds_needed(sd: float, delta: float, power: float = 0.8, level: float = 0.05, max_n: int = 10_000) -> int:
    """Runs per arm for a two-arm Welch comparison (equal sd and n) to detect ``delta`` with ``power``."""
    if not (sd > 0 and delta > 0):
        raise ValueError(f"sd={sd}, delta={delta} are not allowed; allowed: both > 0")
    for n in range(2, max_n + 1):
        if detectable_difference(sd * math.sqrt(2 / n), 2 * n - 2, power, level) <= delta:
            return n
    return max_n


def power_table(sd: float, deltas=(0.2, 0.4, 0.8), power: float = 0.8) -> pd.DataFrame:
    """Runs per arm needed to detect each difference (points) at ``power`` when the seed-to-seed sd is ``sd``."""
    return pd.DataFrame([{"difference (points)": d, "sd (points)": sd, "power": power,
                          "runs per arm": seeds_needed(sd, d, power)} for d in deltas])
