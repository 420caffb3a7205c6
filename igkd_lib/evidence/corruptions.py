"""Robustness under corruption: the accuracy corruptions of the test set cost, as tables.

The corrupted images (five families after CIFAR-10-C at severities 1-5, seeded and deterministic) are
:mod:`igkd_lib.evidence.corrupted_images`'; the offline copy's test images are themselves JPEG q75 except an
exact-pixel subset (:func:`exact_pixel_mask`): results are given for both subsets. See the chapter "Beyond the
paper".
"""
from __future__ import annotations

import pandas as pd

from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.evidence.corrupted_images import (
    CORRUPTIONS,
    SEVERITIES,
    accuracy_rows,
    correct_by_version,
    corrupt,
    exact_pixel_mask,
    subsets,
    versions,
)
from igkd_lib.evidence.stats import difference_table, t_interval

__all__ = ["CORRUPTIONS", "SEVERITIES", "corrupt", "exact_pixel_mask", "robustness_rows", "drop_table",
           "mean_drop_per_run", "drop_welch"]


def robustness_rows(models: dict, data: Cifar10, kinds=CORRUPTIONS, severities=(1, 3, 5), seed: int = 0,
                    batch_size: int = 500) -> pd.DataFrame:
    """Accuracy (%) of each model on clean and corrupted ``data``, per subset (all, exact pixels).

    ``models``: {label: (model, method, seed)}. Rows: model, method, seed, kind ("clean" or a
    corruption), severity (0 for clean), subset, n, accuracy.
    """
    masks = subsets(data)
    made = versions(data.images, kinds, severities, seed)
    rows = [{"model": label, "method": method, "seed": run_seed, **row,
             "accuracy": float("nan") if row["accuracy"] is None else row["accuracy"]}
            for label, (model, method, run_seed) in models.items()
            for row in accuracy_rows(made, correct_by_version(model, made, data.labels, batch_size), masks)]
    return pd.DataFrame(rows, columns=["model", "method", "seed", "kind", "severity", "subset", "n", "accuracy"])


def _with_drop(rows: pd.DataFrame) -> pd.DataFrame:
    clean = rows[rows["kind"] == "clean"].set_index(["model", "subset"])["accuracy"]
    corrupted = rows[rows["kind"] != "clean"].copy()
    corrupted["drop"] = clean.loc[list(zip(corrupted["model"], corrupted["subset"]))].to_numpy() - corrupted["accuracy"]
    return corrupted


def mean_drop_per_run(rows: pd.DataFrame) -> pd.DataFrame:
    """Each model's drop from clean (points) averaged over all corruptions and severities, per subset."""
    return _with_drop(rows).groupby(["model", "method", "seed", "subset"], as_index=False, dropna=False)["drop"].mean()


def drop_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Accuracy drop from clean (points) per method, corruption, severity and subset: mean over seeds,
    95 % t-interval."""
    out = []
    groups = _with_drop(rows).groupby(["method", "kind", "severity", "subset"], sort=False)
    for (method, kind, severity, subset), group in groups:
        mean, sd, low, high = t_interval(group["drop"])
        out.append({"method": method, "kind": kind, "severity": severity, "subset": subset, "n_seeds": len(group),
                    "n_images": int(group["n"].iloc[0]), "drop": mean, "ci_low": low, "ci_high": high})
    return pd.DataFrame(out)


def drop_welch(per_run: pd.DataFrame) -> pd.DataFrame:
    """KD + IG against the student alone on :func:`mean_drop_per_run`'s drops, per subset (Welch, one value per run)."""
    drops = lambda s, m: per_run.loc[(per_run["subset"] == s) & (per_run["method"] == m), "drop"]  # noqa: E731
    return difference_table([(s, drops(s, "kd_ig"), drops(s, "baseline")) for s in per_run["subset"].unique()],
                            ("KD + IG", "student alone"), "subset")
