"""What a window writes under its output folder, atomically, after every epoch.

``runs.jsonl``: one line per run of the window, ``{"row": ..., "log": [...]}``; a row's ``status`` is
``complete`` once every epoch is done and ``partial`` before (partial runs are never merged or
counted). ``studies.jsonl``: the agreement and robustness of finished Table 1 students
(:mod:`igkd_lib.campaign.run_studies`). ``window.json``: the window's provenance, phases, calibration and
summary. All are rewritten whole through :mod:`igkd_lib.storage`, so a window killed at any moment leaves
readable files.
"""
from __future__ import annotations

import json
from pathlib import Path

from igkd_lib.campaign.ingest import LOG_FILE, RUNS_FILE, WINDOW_FILE
from igkd_lib.campaign.queue import Entry, entry_config
from igkd_lib.campaign.run_studies import STUDIES_FILE
from igkd_lib.evidence.experiments import _ROW_KNOBS
from igkd_lib.storage import atomic_path, atomic_write_json

__all__ = ["WindowResults", "RUNS_FILE", "WINDOW_FILE", "LOG_FILE", "summary_lines"]



class WindowResults:
    """The runs and the provenance of one window, mirrored to ``out`` on every change."""

    def __init__(self, out: Path, meta: dict):
        self.out, self.meta, self.runs, self.studies = Path(out), dict(meta), {}, {}
        self.out.mkdir(parents=True, exist_ok=True)
        self.write_meta()

    def start(self, entry: Entry, key: str, config, fields: dict) -> None:
        """Register a run about to train; ``fields`` are the row's shared fields (device, teacher, ...)."""
        c = entry_config(config, entry)
        from igkd_lib.training.student import method_config

        knobs = method_config(c, entry.method).key_fields(*_ROW_KNOBS)
        row = {"method": entry.method, "seed": entry.seed, "study": entry.study, "variant": entry.variant,
               "final_acc": None, "best_acc": None, "epochs": 0, "planned_epochs": c.student_epochs,
               "seconds": 0.0, "n_train": c.n_train, **knobs, **fields, "run_key": key, "status": "partial"}
        self.runs[key] = {"row": row, "log": []}

    def epoch(self, key: str, log_row: dict) -> None:
        run = self.runs[key]
        run["log"].append(dict(log_row))
        accuracies = [r["test_acc"] for r in run["log"]]
        row = run["row"]
        row.update(final_acc=accuracies[-1], best_acc=max(accuracies), epochs=len(run["log"]),
                   seconds=sum(r["seconds"] for r in run["log"]))
        if row["epochs"] >= row["planned_epochs"]:
            row["status"] = "complete"
        self.write_runs()

    def weights(self, key: str, sha256: str, info: dict | None = None) -> None:
        """The run's final student weights' SHA-256 (the weights are not returned) and what the trainer ran."""
        self.runs[key]["row"]["weights_sha256"] = sha256
        if info:
            self.runs[key]["row"]["trainer_info"] = json.dumps(info, sort_keys=True)
        self.write_runs()

    def study(self, key: str, record: dict) -> None:
        """Keep the run's agreement and robustness (igkd_lib.campaign.run_studies) in ``studies.jsonl``."""
        self.studies[key] = {"run_key": key, **record}
        with atomic_path(self.out / STUDIES_FILE) as tmp:
            tmp.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in self.studies.values()))

    def write_runs(self) -> None:
        with atomic_path(self.out / RUNS_FILE) as tmp:
            tmp.write_text("".join(json.dumps(run, sort_keys=True) + "\n" for run in self.runs.values()))

    def write_meta(self, **updates) -> None:
        self.meta.update(updates)
        atomic_write_json(self.out / WINDOW_FILE, self.meta)

    def counts(self) -> tuple[int, int]:
        """(complete runs, partial runs) of this window."""
        complete = sum(run["row"]["status"] == "complete" for run in self.runs.values())
        return complete, len(self.runs) - complete


def summary_lines(summary: dict) -> list[str]:
    """The table printed last: runs, throughput, seconds per run, and where the time went."""
    lines = ["", "campaign window summary", "-" * 52]
    for label, value in summary.items():
        text = f"{value:.1f}" if isinstance(value, float) else str(value)
        lines.append(f"{label:<34} {text:>17}")
    return lines
