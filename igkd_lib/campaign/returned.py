"""A window's returned folder read as untrusted input: names, sizes and fields checked before anything is used.

The folder came from another machine. :func:`read_returned` reads ``window.json``, ``runs.jsonl`` and
``studies.jsonl`` within :data:`LIMITS`, refuses a window or profile name that could name a path (:data:`WINDOW_NAME`,
``igkd_lib.config.PROFILES``), and checks every finished run's row (:mod:`igkd_lib.evidence.run_rows`) and log.
Every error names the file and the field. Nothing is written here.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from igkd_lib.campaign.run_studies import STUDIES_FILE, check_study
from igkd_lib.config import PROFILES
from igkd_lib.evidence.run_rows import RUN_KEY, SHA256, check_row

__all__ = ["WINDOW_NAME", "LIMITS", "Returned", "read_returned", "check_window_meta", "read_limited", "inside"]

# a window's name: its UTC start and the commit (with -dirty), or "run-..." for python -m igkd_lib run
WINDOW_NAME = re.compile(r"^(run-)?\d{8}T\d{6}Z-[A-Za-z0-9_-]{1,64}$")
# bytes a returned file may hold: a window of 540 s returns a few dozen runs (a 100-epoch run's row and
# log take ~20 kB), teacher weights ~9 MB, each resume file ~8 MB
LIMITS = {"window.json": 2**20, "runs.jsonl": 4 * 2**20, "teacher.json": 2**20, "teacher.pt": 16 * 2**20,
          STUDIES_FILE: 4 * 2**20}  # a student's studies line: ~5 kB
_LOG_FIELDS = ("epoch", "test_acc", "seconds")


def read_limited(path: Path, limit: int) -> bytes:
    """The bytes of a plain file of at most ``limit`` bytes; an error naming the file otherwise."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise ValueError(f"{path} is absent or not a plain file; allowed: the files a window wrote")
    size = path.stat().st_size
    if size > limit:
        raise ValueError(f"{path} holds {size / 2**20:.1f} MiB; allowed: at most {limit / 2**20:.0f} MiB")
    return path.read_bytes()


def _json(path: Path, limit: int, what: str = "a JSON object"):
    text = read_limited(path, limit)
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); allowed: {what} as a window writes it") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds a {type(value).__name__}; allowed: {what}")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not standard JSON")


def inside(base: Path, *parts: str) -> Path:
    """``base/parts...``, refused unless it stays under ``base`` (after resolving links and '..')."""
    path = Path(base).joinpath(*parts)
    if not path.resolve().is_relative_to(Path(base).resolve()):
        raise ValueError(f"{path} would leave {base}; allowed: paths under it")
    return path


def check_window_meta(meta: dict, where: str) -> dict:
    """The fields of a window's provenance that ingest uses to name paths and trust its contents."""
    name, profile = meta.get("window"), meta.get("profile")
    if not (isinstance(name, str) and WINDOW_NAME.fullmatch(name)):
        raise ValueError(f"{where}: window={name!r} is not allowed; allowed: <yyyymmddThhmmssZ>-<commit> "
                         "(letters, digits, '_' and '-')")
    if profile not in PROFILES:
        raise ValueError(f"{where}: profile={profile!r} is not allowed; allowed: {', '.join(PROFILES)}")
    if "tiny" in meta and not isinstance(meta["tiny"], bool):
        raise ValueError(f"{where}: tiny={meta['tiny']!r} is not allowed; allowed: true or false")
    for field in ("device", "commit", "date", "precision", "trainer", "torch"):
        if not isinstance(meta.get(field), str) or len(meta[field]) > 200:
            raise ValueError(f"{where}: {field}={meta.get(field)!r} is not allowed; allowed: a string "
                             "(the window's provenance)")
    teacher = meta.get("teacher", {})
    if not isinstance(teacher, dict):
        raise ValueError(f"{where}: teacher={teacher!r} is not allowed; allowed: an object")
    sha = teacher.get("sha256")
    if sha is not None and not (isinstance(sha, str) and SHA256.fullmatch(sha)):
        raise ValueError(f"{where}: teacher.sha256={sha!r} is not allowed; allowed: 64 lowercase hex digits")
    return meta


@dataclass(frozen=True)
class Returned:
    """A returned folder, checked: its provenance, finished runs (row + log) and partial runs' keys."""

    folder: Path
    meta: dict
    complete: list
    partial: list
    studies: list = ()  # the finished runs' agreement and robustness (igkd_lib.campaign.run_studies), checked


def _run(line: str, number: int, path: Path, meta: dict) -> dict:
    where = f"{path}, line {number}"
    try:
        run = json.loads(line)  # NaN and Infinity parse, so that the row's check names the field
    except ValueError as error:
        raise ValueError(f"{where} is not valid JSON ({error}); allowed: one run per line") from None
    if not (isinstance(run, dict) and isinstance(run.get("row"), dict) and isinstance(run.get("log"), list)):
        raise ValueError(f"{where}: a run is {{\"row\": {{...}}, \"log\": [...]}}; allowed: what a window writes")
    row = run["row"]
    if row.get("status") != "complete":
        key = row.get("run_key")
        if not (isinstance(key, str) and RUN_KEY.fullmatch(key)):
            raise ValueError(f"{where}: run_key={key!r} is not allowed; allowed: 1-64 letters, "
                             "digits, '.', '_' or '-' (no '..')")
        if row.get("status") != "partial":
            raise ValueError(f"{where}: status={row.get('status')!r} is not allowed; allowed: complete or partial")
        return {"row": row, "log": []}
    row = check_row(row, where)
    if not row.get("run_key"):
        raise ValueError(f"{where}: run_key is empty; allowed: the run's key")
    for field in ("profile", "window"):
        if field in row and row[field] != meta[field]:
            raise ValueError(f"{where}: {field}={row[field]!r} differs from window.json's {meta[field]!r}")
    log = run["log"]
    if len(log) != row["epochs"]:
        raise ValueError(f"{where}: its log has {len(log)} rows for epochs={row['epochs']}; allowed: one per epoch")
    for i, epoch in enumerate(log, start=1):
        if not (isinstance(epoch, dict) and epoch.get("epoch") == i and all(
                isinstance(epoch.get(k), (int, float)) and not isinstance(epoch.get(k), bool)
                and math.isfinite(epoch[k]) for k in _LOG_FIELDS)):
            raise ValueError(f"{where}: log row {i} is not allowed; allowed: epoch {i} with finite "
                             f"{', '.join(_LOG_FIELDS[1:])}")
    if abs(log[-1]["test_acc"] - row["final_acc"]) > 1e-9:
        raise ValueError(f"{where}: final_acc={row['final_acc']} differs from its log's last test_acc "
                         f"{log[-1]['test_acc']}")
    return {"row": row, "log": log}


def read_returned(folder: Path) -> Returned:
    """Read and check ``folder`` (see the module's docstring); nothing is written."""
    folder = Path(folder)
    if not (folder / "window.json").is_file():
        raise ValueError(f"folder={folder} holds no window.json; allowed: the folder a window's $OUT came back to")
    meta = check_window_meta(_json(folder / "window.json", LIMITS["window.json"]), str(folder / "window.json"))
    runs_path = folder / "runs.jsonl"
    runs = []
    if runs_path.exists():
        text = read_limited(runs_path, LIMITS["runs.jsonl"]).decode("utf-8", errors="replace")
        runs = [_run(line, i, runs_path, meta) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
    keys = [run["row"]["run_key"] for run in runs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"{runs_path}: run_key {repeated[0]!r} appears twice; allowed: one line per run")
    complete = [run for run in runs if run["row"].get("status") == "complete"]
    partial = [run["row"]["run_key"] for run in runs if run["row"].get("status") != "complete"]
    return Returned(folder, meta, complete, partial, _studies(folder / STUDIES_FILE, complete))


def _studies(path: Path, complete: list) -> list:
    """The checked lines of ``studies.jsonl`` (none when absent), each for a finished run of the window, once."""
    if not path.exists():
        return []
    text = read_limited(path, LIMITS[STUDIES_FILE]).decode("utf-8", errors="replace")
    keys, records = {run["row"]["run_key"] for run in complete}, []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_constant=_no_constant)
        except ValueError as error:
            raise ValueError(f"{path} line {number} is not valid JSON ({error}); allowed: one object per "
                             "line") from None
        records.append(check_study(record, keys, f"{path} line {number}"))
    seen = [record["run_key"] for record in records]
    repeated = sorted({key for key in seen if seen.count(key) > 1})
    if repeated:
        raise ValueError(f"{path}: run_key {repeated[0]!r} appears twice; allowed: one line per run")
    return records
