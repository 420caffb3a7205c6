"""The committed per-image predictions of the authors' students, read without running them.

The robustness study (:mod:`igkd_lib.evidence.robustness`) commits every published student's prediction for
every test image, clean and corrupted, under ``results/robustness/``. :func:`clean_predictions` returns one
student's clean predictions where the committed file was made on the same data and from the same checkpoint
(its SHA-256), so chapter 7 reads accuracies from them (after a spot check against the student itself,
:func:`igkd_lib.evidence.official.measure_checkpoints`) instead of measuring all over again.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from igkd_lib.paths import RESULTS_DIR
from igkd_lib.storage import read_json

__all__ = ["FOLDER", "STEM", "CommittedPredictions", "clean_predictions"]

FOLDER = RESULTS_DIR / "robustness"
STEM = "official_students"


@dataclass(frozen=True)
class CommittedPredictions:
    """One student's committed clean predictions: test index -> predicted class, and where they come from."""

    by_index: dict
    commit: str
    device: str
    command: str

    def predictions(self, indices) -> np.ndarray | None:
        """The predicted classes of these test indices; None if one of them was not predicted."""
        try:
            return np.array([self.by_index[int(i)] for i in indices], dtype=np.int64)
        except KeyError:
            return None

    def describe(self) -> str:
        return f"committed predictions of results/robustness/ (commit {self.commit}, {self.device})"


def clean_predictions(sha256: str, data_source: str, folder: str | Path = FOLDER,
                      stem: str = STEM) -> CommittedPredictions | None:
    """The clean predictions of the student whose weights hash to ``sha256``, if the committed study holds them
    and was made on ``data_source`` (a source label, :attr:`igkd_lib.data.cifar10.Cifar10.source_label`); else
    None."""
    study = _clean_study(Path(folder), stem)
    if study is None:
        return None
    provenance, hashes, clean, indices = study
    if provenance.get("data_source") != data_source or sha256 not in hashes:
        return None
    predicted = clean[hashes.index(sha256)]
    return CommittedPredictions(dict(zip(indices.tolist(), predicted.tolist())), str(provenance.get("commit", "?")),
                                str(provenance.get("device", "?")), str(provenance.get("command", "?")))


_MEMO: dict = {}


def _clean_study(folder: Path, stem: str) -> tuple | None:
    """(provenance, the students' hashes, their clean predictions (students, images), the test indices) of the
    committed study, or None where a file is missing or the clean version is not there once; read once per version
    of the files (chapter 7 asks for each of its six students)."""
    files = [folder / f"{stem}{suffix}" for suffix in (".json", "_models.csv", "_images.npz")]
    if not all(path.is_file() for path in files):
        return None
    key = tuple((str(path), path.stat().st_mtime_ns) for path in files)
    if key not in _MEMO:
        _MEMO.clear()
        _MEMO[key] = _read_clean_study(files)
    return _MEMO[key]


def _read_clean_study(files: list[Path]) -> tuple | None:
    provenance = read_json(files[0])
    with open(files[1], newline="") as handle:
        hashes = [row["sha256"] for row in csv.DictReader(handle)]
    with np.load(files[2]) as raw:
        clean = [i for i, kind in enumerate(raw["kinds"]) if kind == "clean"]
        if len(clean) != 1 or raw["predictions"].shape[0] != len(hashes):
            return None
        predictions = raw["predictions"][:, clean[0]].astype(np.int64)
        indices = raw["indices"].astype(np.int64)
    return provenance, hashes, predictions, indices
