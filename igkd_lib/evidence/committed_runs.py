"""The student runs committed under ``results/<profile>/`` (GPU windows, merged by the campaign's ingest), found by
run key, so a chapter reads a finished paper-scale run instead of training it.

A committed row carries the key its window computed (:func:`igkd_lib.evidence.experiments.run_key` with the window's
device type and trainer). The runner computes the same key for a chapter's run under each (device type, trainer)
the committed rows hold, with this book's teacher and data (:meth:`CommittedRuns.trainers`), so a committed run is
read only where every field that changes the run agrees, the teacher included.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from igkd_lib import paths
from igkd_lib.evidence.run_rows import check_row

__all__ = ["RUNS_FILE", "LOGS_FILE", "ORIGIN", "CommittedRuns", "load", "is_committed"]

RUNS_FILE, LOGS_FILE = "runs.csv", "logs.jsonl"
ORIGIN = "committed"  # how a read row's ``origin`` starts: "committed (results/<profile>, window ...)"
_MEMO: dict = {}


@dataclass(frozen=True)
class CommittedRuns:
    """The finished runs of one profile's committed results, by run key, with their per-epoch logs."""

    rows: dict
    logs: dict
    folder: str

    def trainers(self) -> list[tuple[str, str]]:
        """The (device type, trainer) pairs the committed rows were trained under, in a fixed order."""
        return sorted({(row["device_type"], row["trainer"]) for row in self.rows.values()})

    def run(self, key: str) -> dict | None:
        """The committed run ``key`` as the runner returns a run: its row (``best_epoch_acc`` named so, ``origin``
        saying where it was read) and its per-epoch ``log``; None when it is not committed."""
        row = self.rows.get(key)
        if row is None:
            return None
        row = {**row, "origin": f"{ORIGIN} ({self.folder}, window {row.get('window', '?')})"}
        row["best_epoch_acc"] = row.pop("best_acc", row.get("best_epoch_acc"))
        return {**row, "log": self.logs.get(key, [])}


def is_committed(origin) -> bool:
    """Whether a run row's ``origin`` says it was read from the committed results (not trained here or cached)."""
    return isinstance(origin, str) and origin.startswith(ORIGIN)


def load(profile: str, folder: str | Path | None = None) -> CommittedRuns:
    """The complete runs of ``folder/<profile>/runs.csv`` (each checked, :func:`igkd_lib.evidence.run_rows.check_row`)
    and their logs from ``logs.jsonl``; empty when nothing is committed. ``folder``: ``results/`` by default. Read
    once per file version."""
    path = Path(folder or paths.RESULTS_DIR) / profile / RUNS_FILE
    logs_path = path.with_name(LOGS_FILE)
    stamp = tuple(p.stat().st_mtime_ns if p.is_file() else 0 for p in (path, logs_path))
    memo_key = (str(path), stamp)
    if memo_key not in _MEMO:
        _MEMO.clear()
        _MEMO[memo_key] = _read(path, logs_path, f"results/{profile}")
    return _MEMO[memo_key]


def _read(path: Path, logs_path: Path, label: str) -> CommittedRuns:
    rows = {}
    if path.is_file():
        with open(path, newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                if (row.get("status") or "complete") != "complete":
                    continue
                row = check_row({k: v for k, v in row.items() if v not in (None, "")}, f"{path} row {number}")
                if "run_key" not in row:
                    continue
                # rows merged by `python -m igkd_lib run` carry no device type or trainer: theirs (precision_name:
                # bf16 on CUDA only) and the single-run trainer
                row.setdefault("trainer", "single")
                row.setdefault("device_type", "cuda" if row.get("precision") == "bf16" else "cpu")
                for name in ("seconds", "teacher_acc"):
                    row[name] = float(row[name]) if name in row else float("nan")
                if "n_train" in row:
                    row["n_train"] = int(float(row["n_train"]))
                rows[row["run_key"]] = row
    logs = {}
    if logs_path.is_file():
        for line in logs_path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                logs[entry["run_key"]] = entry["log"]
    return CommittedRuns(rows, logs, label)
