"""Merge what a window returned into the committed results: ``results/<profile>/``.

- ``runs.csv``: one row per finished run, keyed by ``run_key`` (idempotent: the same row twice is one
  row; a different row under a key already there is an error). Partial runs are never merged.
- ``logs.jsonl``: each merged run's per-epoch log.
- ``windows/<window>.json``: the window's provenance (GPU, torch, CUDA, commit, date, data source,
  precision, trainer, what it ran); ``provenance.json`` sums them up for the book.
- The teacher: a finished one is installed (verified, accuracy measured again here); an unfinished
  one's two resume files go to the folder the next window carries.
Student weights are not returned or committed; their SHA-256 is in each row.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

from igkd_lib.campaign.engine import keep_engine
from igkd_lib.paths import RESULTS_DIR
from igkd_lib.storage import atomic_path, atomic_write_json, read_json, sha256_file

__all__ = ["RUNS_FILE", "WINDOW_FILE", "LOG_FILE", "done_keys", "read_runs", "merge_rows", "merge_results", "ingest"]

# the files a window returns (igkd_lib.campaign.results writes them, ingest reads them)
RUNS_FILE, WINDOW_FILE, LOG_FILE = "runs.jsonl", "window.json", "log.txt"
_RUNS, _LOGS = "runs.csv", "logs.jsonl"
_LEADING = ("method", "seed", "study", "variant", "final_acc", "best_acc", "epochs", "status", "run_key")


def read_runs(path: Path) -> list[dict]:
    """The rows of a ``runs.csv`` as dicts of strings (empty when absent)."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def done_keys(results_dir: Path | None, profile: str) -> set[str]:
    """Run keys already in ``results_dir/<profile>/runs.csv``."""
    if results_dir is None:
        return set()
    return {row["run_key"] for row in read_runs(Path(results_dir) / profile / _RUNS) if row.get("run_key")}


def _cell(value) -> str:
    """A value as ``runs.csv`` stores it (floats round-trip exactly)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    return repr(value) if isinstance(value, float) else str(value)


def merge_rows(existing: list[dict], new: list[dict]) -> tuple[list[dict], int]:
    """``existing`` (strings) plus the ``new`` rows not already there; (rows, number added).

    A new row whose key is present with different values is an error naming the key and the fields.
    """
    by_key = {row["run_key"]: row for row in existing}
    merged, added = list(existing), 0
    for row in new:
        cells = {name: _cell(value) for name, value in row.items()}
        old = by_key.get(cells["run_key"])
        if old is None:
            merged.append(cells)
            by_key[cells["run_key"]] = cells
            added += 1
            continue
        differ = sorted(k for k in set(old) | set(cells) if old.get(k, "") != cells.get(k, ""))
        if differ:
            raise ValueError(f"run_key={cells['run_key']} is already in runs.csv with other values "
                             f"({', '.join(differ)}); allowed: the same row again, or a new key")
    return merged, added


def _write_csv(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys([*_LEADING, *(name for row in rows for name in row)]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


def _returned_runs(folder: Path) -> list[dict]:
    path = folder / RUNS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _merge_logs(path: Path, runs: list[dict]) -> None:
    text = path.read_text() if path.is_file() else ""
    have = {json.loads(line)["run_key"] for line in text.splitlines() if line.strip()}
    lines = [json.dumps({"run_key": r["row"]["run_key"], "log": r["log"]}, sort_keys=True) + "\n"
             for r in runs if r["row"]["run_key"] not in have]
    if lines:
        with atomic_path(path) as tmp:
            tmp.write_text(text + "".join(lines))


def _record_window(target: Path, meta: dict, partial: list[str]) -> None:
    record = {**{k: v for k, v in meta.items() if k != "config"}, "partial_runs_not_merged": partial}
    path = target / "windows" / f"{meta['window']}.json"
    if path.is_file() and read_json(path) != json.loads(json.dumps(record, default=str)):
        raise ValueError(f"window {meta['window']} was ingested before with other contents ({path}); "
                         "allowed: the same folder again")
    atomic_write_json(path, record)
    windows = [read_json(p) for p in sorted((target / "windows").glob("*.json"))]
    atomic_write_json(target / "provenance.json", {
        "profile": meta["profile"], "windows": [w["window"] for w in windows],
        "devices": sorted({w["device"] for w in windows}), "commits": sorted({w["commit"] for w in windows}),
        "data_source": sorted({w.get("data_source", "") for w in windows}),
        "precision": sorted({w["precision"] for w in windows}), "trainer": sorted({w["trainer"] for w in windows}),
        "torch": sorted({w["torch"] for w in windows}), "date": max(w["date"] for w in windows)})


def merge_results(runs: list[dict], meta: dict, results_dir: Path = RESULTS_DIR, partial: list[str] = ()) -> int:
    """Merge finished ``runs`` (``{"row": ..., "log": [...]}``) into ``results_dir/<profile>/``: rows into
    ``runs.csv`` (:func:`merge_rows`), logs into ``logs.jsonl``, ``meta`` as ``windows/<window>.json``
    and the summed-up ``provenance.json``. Returns the number of rows added. Every writer of committed
    results goes through here, so nothing overwrites what earlier windows or runs left."""
    target = Path(results_dir) / meta["profile"]
    merged, added = merge_rows(read_runs(target / _RUNS), [r["row"] for r in runs])
    if merged:
        _write_csv(target / _RUNS, merged)
        _merge_logs(target / _LOGS, runs)
    _record_window(target, meta, list(partial))
    return added


def ingest(folder: Path, results_dir: Path = RESULTS_DIR, teacher_weights: Path | None = None,
           resume_dir: Path | None = None, test=None) -> dict:
    """Merge one window's returned ``folder``; returns what was done (counts, teacher)."""
    folder = Path(folder)
    if not (folder / WINDOW_FILE).is_file():
        raise ValueError(f"folder={folder} holds no {WINDOW_FILE}; allowed: the folder a window's $OUT came back to")
    meta = read_json(folder / WINDOW_FILE)
    runs = _returned_runs(folder)
    complete = [r for r in runs if r["row"]["status"] == "complete"]
    partial = [r["row"]["run_key"] for r in runs if r["row"]["status"] != "complete"]
    added = merge_results(complete, meta, Path(results_dir), partial)
    report = {"window": meta["window"], "runs_added": added, "runs_returned": len(runs),
              "partial": len(runs) - len(complete),
              "teacher": _teacher(folder, meta, teacher_weights, resume_dir, test)}
    if meta.get("engine"):
        report["engine"] = keep_engine(Path(results_dir), meta["profile"], meta["engine"])
    return report


def _teacher(folder: Path, meta: dict, weights: Path | None, resume_dir: Path | None, test) -> str:
    """Install a finished teacher, or keep an unfinished one's resume files for the next window."""
    from igkd_lib.campaign.paper_teacher import RESUME_FILES, install

    state = meta.get("teacher", {}).get("status")
    if state == "finished" and weights is not None:
        card = install(folder / "teacher.pt", test, weights)
        return (f"installed {weights} ({card['test_accuracy']:.2f}% measured here, "
                f"{card['device_test_accuracy']:.2f}% on the device)")
    if state == "unfinished" and resume_dir is not None and meta["teacher"].get("resume_sha256"):
        hashes = meta["teacher"]["resume_sha256"]
        for name in RESUME_FILES:
            if sha256_file(folder / name) != hashes[name]:
                raise ValueError(f"{folder / name} does not match the SHA-256 its window recorded")
            Path(resume_dir).mkdir(parents=True, exist_ok=True)
            with atomic_path(Path(resume_dir) / name) as tmp:
                shutil.copyfile(folder / name, tmp)
        atomic_write_json(Path(resume_dir) / "manifest.json", {"sha256": hashes, "window": meta["window"]})
        return f"unfinished ({meta['teacher']['epochs_done']} epochs): resume files kept in {resume_dir}"
    return state or "none"
