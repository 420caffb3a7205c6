"""One schema for a finished run's row, read by whoever merges or counts rows: ingest and the claims.

A row is one finished student run (``results/<profile>/runs.csv``, a window's ``runs.jsonl``, this
build's run cache). :func:`check_row` refuses a row that could not be a finished run, naming where it
came from and the field: a partial run, no epochs, an accuracy that is empty, not a number, not
finite or outside 0-100, a seed that is not an integer, an unknown method, a run key or teacher hash
of the wrong form. :func:`one_per_run` keeps one row per (method, variant, seed): the same run
trained twice (e.g. under two engines, so two run keys) is counted once, the first row kept.
"""
from __future__ import annotations

import math
import re

from igkd_lib.config import METHODS, PROFILES

__all__ = ["RUN_KEY", "SHA256", "ACCURACY_FIELDS", "check_row", "checked_rows", "one_per_run"]

RUN_KEY = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")  # never a path: no '/', no '..'

SHA256 = re.compile(r"^[0-9a-f]{64}$")
ACCURACY_FIELDS = ("final_acc", "best_acc", "best_epoch_acc")  # best_acc: the campaign's name, best_epoch_acc: run's
_SEED_MAX = 2**31 - 1
_EPOCHS_MAX = 10_000


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _integer(value, field: str, where: str, low: int, high: int) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d+(\.0+)?", text):
        raise ValueError(f"{where}: {field}={value!r} is not allowed; allowed: an integer from {low} to {high}")
    number = int(float(text)) if "." in text else int(text)
    if not low <= number <= high:
        raise ValueError(f"{where}: {field}={value!r} is not allowed; allowed: an integer from {low} to {high}")
    return number


def _accuracy(value, field: str, where: str) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and 0.0 <= number <= 100.0):
        raise ValueError(f"{where}: {field}={value!r} is not allowed; allowed: a finite accuracy in % from 0 to 100")
    return number


def check_row(row: dict, where: str) -> dict:
    """``row`` with its numbers typed, or ValueError naming ``where`` (file and row) and the field."""
    row = dict(row)
    key = row.get("run_key")
    if not (isinstance(key, str) and RUN_KEY.fullmatch(key)) and not _missing(key):
        raise ValueError(f"{where}: run_key={key!r} is not allowed; allowed: 1-64 letters, "
                             "digits, '.', '_' or '-' (no '..')")
    if row.get("method") not in METHODS:
        raise ValueError(f"{where}: method={row.get('method')!r} is not allowed; allowed: {', '.join(METHODS)}")
    row["seed"] = _integer(row.get("seed"), "seed", where, 0, _SEED_MAX)
    row["final_acc"] = _accuracy(row.get("final_acc"), "final_acc", where)
    for field in ACCURACY_FIELDS[1:]:
        if field in row:
            row[field] = _accuracy(row[field], field, where)
            if row[field] < row["final_acc"] - 1e-9:
                raise ValueError(f"{where}: {field}={row[field]!r} is below final_acc={row['final_acc']!r}; "
                                 "allowed: the best epoch's accuracy, at least the final one")
    if "status" in row and not _missing(row["status"]) and row["status"] != "complete":
        raise ValueError(f"{where}: status={row['status']!r} is not allowed; allowed: complete (partial runs are "
                         "never merged or counted)")
    if "epochs" in row:
        row["epochs"] = _integer(row["epochs"], "epochs", where, 1, _EPOCHS_MAX)
        if not _missing(row.get("planned_epochs")):
            planned = _integer(row["planned_epochs"], "planned_epochs", where, 1, _EPOCHS_MAX)
            if row["epochs"] != planned:
                raise ValueError(f"{where}: epochs={row['epochs']} of planned_epochs={planned} is not allowed; "
                                 "allowed: a finished run (every planned epoch done)")
    for field in ("teacher_sha256", "weights_sha256"):
        if not _missing(row.get(field)) and not SHA256.fullmatch(str(row[field])):
            raise ValueError(f"{where}: {field}={row[field]!r} is not allowed; allowed: 64 lowercase hex digits")
    if not _missing(row.get("profile")) and row["profile"] not in PROFILES:
        raise ValueError(f"{where}: profile={row['profile']!r} is not allowed; allowed: {', '.join(PROFILES)}")
    return row


def checked_rows(rows: list[dict], where: str) -> list[dict]:
    """Every row checked (:func:`check_row`), each error naming ``where`` and the row's position (1-based)."""
    return [check_row(row, f"{where}, row {i}") for i, row in enumerate(rows, start=1)]


def one_per_run(rows: list[dict]) -> tuple[list[dict], list[str]]:
    """(rows with one per (method, variant, seed), the first kept; a line per row set aside, saying which was kept)."""
    kept: dict = {}
    out, aside = [], []
    for row in rows:
        variant = row.get("variant")
        run = (row["method"], "default" if _missing(variant) else str(variant), int(row["seed"]))
        if run in kept:
            first = kept[run]
            aside.append(f"kept run_key {first.get('run_key', '?')} for {run[0]}, {run[1]}, seed {run[2]}; set aside "
                         f"run_key {row.get('run_key', '?')} (the same run again, final_acc {row['final_acc']:.2f})")
            continue
        kept[run] = row
        out.append(row)
    return out, aside
