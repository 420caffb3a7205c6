"""Chapter 8's agreement and robustness of Table 1's paper-scale students, as the GPU windows that trained them measured
them (:mod:`igkd_lib.campaign.run_studies`; committed by ingest under ``results/<profile>/``).

A committed run keeps no weights, so these numbers are the only paper-scale evidence of the two studies: per run,
the mean Spearman correlation and top-10 % IoU of its IG maps with the teacher's over the window's probe images,
and its accuracy on each clean and corrupted version of the window's test images. :func:`read_committed_studies`
gives them in the chapter's own shapes (the per-seed agreement table; :func:`igkd_lib.evidence.corruptions.
robustness_rows`' rows), one run per method and seed, with a line saying what they rest on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from igkd_lib.config import METHODS
from igkd_lib.paths import RESULTS_DIR

__all__ = ["CommittedStudies", "read_committed_studies", "verdict_inputs"]

_AGREEMENT_COLUMNS = ["model", "seed", "spearman", "iou", "n_images", "label", "data_source", "window"]
_ROBUSTNESS_COLUMNS = ["model", "method", "seed", "kind", "severity", "subset", "n", "accuracy"]


@dataclass(frozen=True)
class CommittedStudies:
    """``agreement``: one row per run (model = its method, seed, spearman, iou: means over its probe images);
    ``robustness``: rows as :func:`igkd_lib.evidence.corruptions.robustness_rows` gives them (model = the run's
    label); ``line``: what they rest on."""

    agreement: pd.DataFrame
    robustness: pd.DataFrame
    line: str


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path) if path.is_file() else pd.DataFrame()
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} does not read as CSV ({type(error).__name__}: {error}); restore it "
                         "(git checkout -- <file>)") from None


def _table1(rows: pd.DataFrame) -> pd.DataFrame:
    """Table 1's default-variant rows of the four methods, one run per method and seed (the first committed)."""
    if rows.empty:
        return rows
    rows = rows[(rows["study"] == "table1") & (rows["variant"] == "default") & rows["method"].isin(METHODS)]
    first = rows.drop_duplicates(["method", "seed"])[["run_key"]]
    return rows[rows["run_key"].isin(first["run_key"])]


def _label(rows: pd.DataFrame) -> pd.Series:
    return rows["method"] + " seed " + rows["seed"].astype(int).astype(str) + " (GPU window)"


def read_committed_studies(profile: str = "paper", results_dir: Path = RESULTS_DIR) -> CommittedStudies:
    """The committed studies of ``profile`` (empty tables and a line saying so before any window measured one)."""
    folder = Path(results_dir) / profile
    agreement = _table1(_read(folder / "studies_agreement.csv"))
    robustness = _table1(_read(folder / "studies_robustness.csv"))
    if agreement.empty:
        return CommittedStudies(pd.DataFrame(columns=_AGREEMENT_COLUMNS), pd.DataFrame(columns=_ROBUSTNESS_COLUMNS),
                                "paper-scale students measured in GPU windows: none yet (a window measures each "
                                "Table 1 student it finishes: results/paper/studies_*.csv)")
    devices = ", ".join(sorted(agreement["device"].astype(str).unique()))
    seeds = ", ".join(str(int(seed)) for seed in sorted(agreement["seed"].unique()))
    agreement = agreement.assign(model=agreement["method"], label=_label(agreement))[_AGREEMENT_COLUMNS]
    robustness = robustness.assign(model=_label(robustness))[_ROBUSTNESS_COLUMNS]
    counts = ", ".join(f"{m} {int((agreement['model'] == m).sum())}" for m in METHODS)
    images = ", ".join(sorted({str(int(n)) for n in agreement["n_images"]}))
    versions = robustness[robustness["kind"] != "clean"][["kind", "severity"]].drop_duplicates()
    tested = robustness.loc[robustness["subset"] == "all", "n"]
    sources, windows = (", ".join(sorted(agreement[name].astype(str).unique())) for name in ("data_source", "window"))
    line = (f"paper-scale students measured in GPU windows: {len(agreement)} Table 1 runs ({counts}); agreement on "
            f"{images} probe images each, robustness on {int(tested.max()) if len(tested) else 0} test images in "
            f"{len(versions)} corrupted versions · profile {profile} · seeds {seeds} · data {sources} · device "
            f"{devices} · windows {windows}")
    return CommittedStudies(agreement.reset_index(drop=True), robustness.reset_index(drop=True), line)


def verdict_inputs(profile: str, per_seed: pd.DataFrame, per_run: pd.DataFrame,
                   committed: CommittedStudies) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the studies' verdicts rest on: at ``paper``, this build's students with seeds and the committed
    paper-scale ones together (a CPU build examines no Table 1 student of its own); elsewhere this build's only
    (the committed ones are shown beside them, labelled)."""
    if profile != "paper" or committed.agreement.empty:
        return per_seed, per_run
    from igkd_lib.evidence.corruptions import mean_drop_per_run

    committed_seed = committed.agreement[["model", "seed", "spearman", "iou"]]
    return (pd.concat([per_seed, committed_seed], ignore_index=True),
            pd.concat([per_run, mean_drop_per_run(committed.robustness)], ignore_index=True))
