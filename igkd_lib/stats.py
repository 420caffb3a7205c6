"""Statistics over seeds: mean, sd, 95% t-interval, best run, and Welch t-tests between methods.

The primary number of the book is the final-epoch test accuracy averaged over seeds with its 95%
confidence interval; the paper's way (the best run) is shown beside it, labelled. With one seed
there is no spread: sd, CI and p-values are NaN and the ``note`` column says so (never an error).
See chapter 4 ("Results") and the results summary.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

__all__ = ["summarise", "welch", "compare_methods", "t_interval", "METHOD_ORDER"]

METHOD_ORDER = ("baseline", "kd", "ig", "kd_ig")
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
    """One row per group: n, mean, sd, ci_low, ci_high (95%, t), best (the paper's way: best run), note."""
    by = [by] if isinstance(by, str) else list(by)
    _check_columns(df, [*by, value])
    rows = []
    for key, group in df.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, sd, low, high = t_interval(group[value])
        n = int(group[value].notna().sum())
        rows.append({**dict(zip(by, key)), "n": n, "mean": mean, "sd": sd, "ci_low": low, "ci_high": high,
                     "best": float(group[value].max()) if n else math.nan, "note": _ONE_RUN if n == 1 else ""})
    table = pd.DataFrame(rows, columns=[*by, "n", "mean", "sd", "ci_low", "ci_high", "best", "note"])
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


def compare_methods(df: pd.DataFrame, value: str = "final_acc", references=("baseline", "kd")) -> pd.DataFrame:
    """Welch t-tests of every method against each reference method present (baseline, KD)."""
    _check_columns(df, ["method", value])
    present = [m for m in METHOD_ORDER if m in set(df["method"])] + \
              [m for m in dict.fromkeys(df["method"]) if m not in METHOD_ORDER]
    rows = [welch(df, method, ref, value) for ref in references if ref in present
            for method in present if method != ref]
    columns = ["a", "b", "n_a", "n_b", "mean_a", "mean_b", "difference", "t", "p", "note"]
    return pd.DataFrame(rows, columns=columns)
