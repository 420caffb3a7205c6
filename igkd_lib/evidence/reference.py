"""Numbers from elsewhere, each with its source: the paper's, the official code's, and committed runs.

- :func:`reference_table`: the paper's reported accuracies (arXiv 2503.13008, Table of results)
  and the official code's 10-run means ± sd, one row each with a ``source`` column.
- :func:`committed_results`: tidy run tables committed under ``results/<profile>/`` (with a
  ``provenance.json`` beside them), e.g. the ``paper`` profile run on a GPU; written only by
  :func:`igkd_lib.campaign.ingest.merge_results`.
- The claims and their verdicts are in :mod:`igkd_lib.evidence.claims`.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from igkd_lib import paths
from igkd_lib.evidence.stats import summarise
from igkd_lib.storage import read_json

__all__ = ["comparison_table", "PAPER_REPORTED", "OFFICIAL_MEANS", "PAPER_TEACHER", "PAPER_LATENCY_MS",
           "PAPER_DEFAULTS", "SOURCE_PAPER", "SOURCE_OFFICIAL", "reference_table", "committed_results"]

SOURCE_PAPER = "paper (reported, best run)"
SOURCE_OFFICIAL = "official code (10-run mean ± sd, results file of 2025-03-23)"
PAPER_REPORTED = {"baseline": 91.43, "kd": 92.29, "ig": 92.01, "kd_ig": 92.45}


def _official_means() -> dict:
    """Mean and sd of the official ten-run file's later version (2025-03-23), per method: computed from the data."""
    from igkd_lib.evidence.official import ten_run_accuracies

    runs = ten_run_accuracies("2025-03-23").groupby("method")["final_acc"]
    return {m: (float(runs.mean()[m]), float(runs.std()[m])) for m in PAPER_REPORTED}


OFFICIAL_MEANS = _official_means()
PAPER_TEACHER = 93.91
PAPER_LATENCY_MS = {"teacher": 140.0, "student": 13.0}
# The paper's chosen hyper-parameters (what "default" means in the claims).
PAPER_DEFAULTS = {"temperature": 2.5, "alpha": 0.01, "p": 0.1, "blend": 0.5}
_RUN_FILE = "runs.csv"


def reference_table() -> pd.DataFrame:
    """Columns method, mean, sd, n, source: the paper's numbers and the official code's 10-run means."""
    rows = [{"method": m, "mean": v, "sd": math.nan, "n": 1, "source": SOURCE_PAPER} for m, v in PAPER_REPORTED.items()]
    rows.append({"method": "teacher", "mean": PAPER_TEACHER, "sd": math.nan, "n": 1, "source": SOURCE_PAPER})
    rows += [{"method": m, "mean": mean, "sd": sd, "n": 10, "source": SOURCE_OFFICIAL}
             for m, (mean, sd) in OFFICIAL_MEANS.items()]
    return pd.DataFrame(rows)


def committed_results(profile: str = "paper", folder: Path | None = None) -> pd.DataFrame:
    """The run table committed for ``profile`` with a ``source`` column; empty when none is committed.

    ``frame.attrs["provenance"]`` holds the provenance JSON committed beside it.
    """
    path = Path(folder or paths.RESULTS_DIR) / profile / _RUN_FILE
    if not path.is_file():
        return pd.DataFrame(columns=["method", "seed", "final_acc", "best_epoch_acc", "source"])
    runs = pd.read_csv(path).rename(columns={"best_acc": "best_epoch_acc"})  # tables written before the rename
    runs["source"] = f"committed {profile}-profile runs"
    meta = path.with_name("provenance.json")
    runs.attrs["provenance"] = read_json(meta) if meta.is_file() else {}
    return runs


def comparison_table(runs: pd.DataFrame, label: str, value: str = "final_acc") -> pd.DataFrame:
    """Per method: ``label``'s mean ± sd [95% CI] (n) and best run, beside the paper's reported number
    and the official code's 10-run mean ± sd; each column says where its numbers come from."""
    summary = summarise(runs, value=value) if len(runs) else pd.DataFrame(columns=["method"])
    rows = []
    for method in [*summary["method"], *[m for m in PAPER_REPORTED if m not in set(summary["method"])]]:
        ours = summary[summary["method"] == method]
        row = {"method": method}
        if len(ours):
            o = ours.iloc[0]
            spread = ("; no spread" if math.isnan(o["sd"])
                      else f" ± {o['sd']:.2f} [{o['ci_low']:.2f}, {o['ci_high']:.2f}]")
            row[f"{label}: mean ± sd [95% CI] (n)"] = f"{o['mean']:.2f}{spread} (n={o['n']})"
            row[f"{label}: best of n"] = f"{o['best_of_n']:.2f}"
        row[SOURCE_PAPER] = f"{PAPER_REPORTED[method]:.2f}" if method in PAPER_REPORTED else ""
        official = OFFICIAL_MEANS.get(method)
        row[SOURCE_OFFICIAL] = f"{official[0]:.2f} ± {official[1]:.2f}" if official else ""
        rows.append(row)
    return pd.DataFrame(rows).fillna("not run")
