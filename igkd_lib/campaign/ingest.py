"""Merge what a window returned into the committed results: ``results/<profile>/``, all or nothing.

- ``runs.csv``: one row per finished run, keyed by ``run_key`` (idempotent: the same row twice is one
  row; a different row under a key already there is an error). Partial runs are never merged.
- ``logs.jsonl``: each merged run's per-epoch log.
- ``studies_agreement.csv`` / ``studies_robustness.csv``: chapter 8's agreement and robustness of finished Table 1
  students, measured in the window that trained them (:mod:`igkd_lib.campaign.run_studies`), one run once.
- ``windows/<window>.json``: the window's provenance (GPU, torch, CUDA, commit, date, data source,
  precision, trainer, the probe's figures, what it ran); ``provenance.json`` sums them up for the book.
- The teacher: a finished one is installed (verified, accuracy measured again here); an unfinished
  one's resume files are committed in ``teacher_resume/`` (:mod:`igkd_lib.campaign.resume_files`),
  which travels with the checkout to the next window, and removed once a finished teacher is installed.

The folder is untrusted (:mod:`igkd_lib.campaign.returned`): every check runs first, and only when all
pass is anything written, so a refused folder leaves ``results/`` and the teacher's files as they were.
Student weights are not returned or committed; their SHA-256 is in each row.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from igkd_lib.campaign.engine import ENGINE_FILE, check_engine, read_engine
from igkd_lib.campaign.resume_files import RESUME_DIR
from igkd_lib.campaign.returned import check_window_meta, inside, read_returned
from igkd_lib.evidence.run_rows import checked_rows
from igkd_lib.paths import RESULTS_DIR
from igkd_lib.storage import atomic_path, read_json

__all__ = ["RUNS_FILE", "WINDOW_FILE", "LOG_FILE", "RESUME_DIR", "done_keys", "read_runs", "merge_rows",
           "merge_results", "check_mode", "ingest"]

# the files a window returns (igkd_lib.campaign.results writes them, ingest reads them)
RUNS_FILE, WINDOW_FILE, LOG_FILE = "runs.jsonl", "window.json", "log.txt"
_RUNS, _LOGS = "runs.csv", "logs.jsonl"
_LEADING = ("method", "seed", "study", "variant", "final_acc", "best_acc", "epochs", "status", "run_key")


def read_runs(path: Path) -> list[dict]:
    """The rows of a ``runs.csv`` as dicts of strings (empty when absent); a damaged file is an error naming it."""
    rows = _keyed_rows(Path(path))
    # every row as the schema wants it (a cell left empty is a field the row's writer did not have)
    checked_rows([{k: v for k, v in row.items() if v != ""} for row in rows], str(path))
    return rows


def _keyed_rows(path: Path) -> list[dict]:
    """The rows of a committed CSV keyed by ``run_key``, as dicts of strings (none when absent); a file that does not
    read, or a row with more or fewer cells than the header or without a run_key column, is an error naming it."""
    if not path.is_file():
        return []
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path} does not read as CSV ({type(error).__name__}: {error}); restore it "
                         "(git checkout -- <file>)") from None
    if any(None in row or None in row.values() or "run_key" not in row for row in rows):
        raise ValueError(f"{path} has rows with more or fewer cells than its header, or no run_key column; restore "
                         "it (git checkout -- <file>)")
    return rows


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


def _csv_text(rows: list[dict]) -> str:
    columns = list(dict.fromkeys([*_LEADING, *(name for row in rows for name in row)]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _logs_text(path: Path, runs: list[dict]) -> str | None:
    """``logs.jsonl`` with the runs' logs not already there appended; None when nothing is new."""
    text = path.read_text() if path.is_file() else ""
    try:
        have = {json.loads(line)["run_key"] for line in text.splitlines() if line.strip()}
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is damaged ({type(error).__name__}: {error}); restore it "
                         "(git checkout -- <file>)") from None
    lines = [json.dumps({"run_key": r["row"]["run_key"], "log": r["log"]}, sort_keys=True) + "\n"
             for r in runs if r["row"]["run_key"] not in have]
    return text + "".join(lines) if lines else None


def _record(meta: dict, partial: list[str]) -> dict:
    """What ``windows/<window>.json`` keeps: the provenance and the probe's figures, not the whole config."""
    return json.loads(json.dumps({**{k: v for k, v in meta.items() if k != "config"},
                                  "partial_runs_not_merged": partial}, default=str))


def _provenance(records: list[dict], profile: str) -> dict:
    return {"profile": profile, "windows": [w["window"] for w in records],
            "devices": sorted({w["device"] for w in records}), "commits": sorted({w["commit"] for w in records}),
            "data_source": sorted({w.get("data_source", "") for w in records}),
            "precision": sorted({w["precision"] for w in records}),
            "trainer": sorted({w["trainer"] for w in records}), "torch": sorted({w["torch"] for w in records}),
            "cuda": sorted({str(w.get("cuda")) for w in records if w.get("cuda")}),
            "date": max(w["date"] for w in records)}


def _plan_results(runs: list[dict], meta: dict, results_dir: Path, partial: list[str]) -> tuple[dict, int]:
    """The files to write (path -> text) for ``runs`` and ``meta``, and the rows added; writes nothing."""
    check_window_meta(meta, "the window's provenance")
    target = inside(results_dir, meta["profile"])
    merged, added = merge_rows(read_runs(target / _RUNS), [r["row"] for r in runs])
    plan = {}
    if added:
        plan[target / _RUNS] = _csv_text(merged)
        logs = _logs_text(target / _LOGS, runs)
        if logs is not None:
            plan[target / _LOGS] = logs
    record = _record(meta, list(partial))
    path = inside(target, "windows", f"{meta['window']}.json")
    if path.is_file() and read_json(path) != record:
        raise ValueError(f"window {meta['window']} was ingested before with other contents ({path}); "
                         "allowed: the same folder again")
    records = {p.name: read_json(p) for p in sorted((target / "windows").glob("*.json"))}
    records[path.name] = record
    plan[path] = json.dumps(record, indent=2, sort_keys=True)
    plan[target / "provenance.json"] = json.dumps(_provenance([records[k] for k in sorted(records)],
                                                              meta["profile"]), indent=2, sort_keys=True)
    return plan, added


def _plan_studies(plan: dict, returned, target: Path) -> int:
    """Add the window's studies (agreement and robustness of finished students) to ``plan`` as rows of
    ``studies_agreement.csv`` and ``studies_robustness.csv`` (runs already there are kept as they are); returns the
    runs added."""
    from igkd_lib.campaign.run_studies import AGREEMENT_FIELDS, ROBUSTNESS_FIELDS, csv_rows

    rows = {run["row"]["run_key"]: run["row"] for run in returned.complete}
    new = {"agreement": [], "robustness": []}
    have = {name: {row["run_key"] for row in _keyed_rows(target / f"studies_{name}.csv")} for name in new}
    added = 0
    for record in returned.studies:
        if record["run_key"] in have["agreement"] | have["robustness"]:
            continue
        agreement, robustness = csv_rows(record, rows[record["run_key"]], returned.meta)
        new["agreement"] += agreement
        new["robustness"] += robustness
        added += 1
    for name, fields in (("agreement", AGREEMENT_FIELDS), ("robustness", ROBUSTNESS_FIELDS)):
        if new[name]:
            path = target / f"studies_{name}.csv"
            plan[path] = _study_text(path, fields, new[name])
    return added


def _study_text(path: Path, fields: tuple, rows: list[dict]) -> str:
    """The committed file's text with ``rows`` appended (the header written when the file is new)."""
    old = path.read_text() if path.is_file() else ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), restval="", lineterminator="\n")
    if not old:
        writer.writeheader()
    writer.writerows(rows)
    return old + buffer.getvalue()


def _write(plan: dict) -> None:
    for path, content in plan.items():
        with atomic_path(path) as tmp:
            tmp.write_text(content) if isinstance(content, str) else tmp.write_bytes(content)


def merge_results(runs: list[dict], meta: dict, results_dir: Path = RESULTS_DIR, partial: list[str] = ()) -> int:
    """Merge finished ``runs`` (``{"row": ..., "log": [...]}``) into ``results_dir/<profile>/``: rows into
    ``runs.csv`` (:func:`merge_rows`), logs into ``logs.jsonl``, ``meta`` as ``windows/<window>.json``
    and the summed-up ``provenance.json``. Returns the number of rows added. Every writer of committed
    results goes through here, so nothing overwrites what earlier windows or runs left; every row is
    checked first (:mod:`igkd_lib.evidence.run_rows`) and nothing is written unless all pass."""
    checked_rows([r["row"] for r in runs], f"rows for {Path(results_dir) / str(meta.get('profile'))}")
    plan, added = _plan_results(runs, meta, Path(results_dir), partial)
    _write(plan)
    return added


def ingest(folder: Path, results_dir: Path = RESULTS_DIR, teacher_weights: Path | None = None,
           resume_dir: Path | None = None, test=None, tiny: bool = False, config=None) -> dict:
    """Merge one window's returned ``folder``; returns what was done (counts, teacher, engine).

    ``tiny``: the command's ``--tiny`` (never the folder's claim, which must agree); ``config``: the command's
    (the teacher's recipe is checked against it; default: the profile's). ``teacher_weights``:
    where a finished teacher is installed; ``resume_dir``: where an unfinished one's resume files are
    committed (default ``results_dir/<profile>/teacher_resume``). Everything is checked before anything
    is written (see the module's docstring).
    """
    from igkd_lib.campaign.teacher_ingest import plan_teacher

    returned = check_mode(read_returned(folder), tiny)
    meta, results_dir = returned.meta, Path(results_dir)
    resume_dir = Path(resume_dir) if resume_dir is not None else inside(results_dir, meta["profile"], RESUME_DIR)
    plan, added = _plan_results(returned.complete, meta, results_dir, returned.partial)
    studied = _plan_studies(plan, returned, inside(results_dir, meta["profile"]))
    teacher_plan = plan_teacher(returned, teacher_weights, resume_dir, test, config)
    engine_note = _plan_engine(plan, meta, results_dir)
    _travel_check(plan, teacher_plan, results_dir)
    teacher_plan.write()
    _write(plan)
    report = {"window": meta["window"], "runs_added": added, "runs_returned": len(returned.complete) +
              len(returned.partial), "partial": len(returned.partial), "studies_added": studied,
              "teacher": teacher_plan.report}
    if engine_note:
        report["engine"] = engine_note
    return report


def check_mode(returned, tiny: bool):
    """``returned`` when its window ran as this command says (``tiny``: its ``--tiny``); the folder's own claim
    decides nothing, it must agree (a --tiny window runs ``smoke`` on a CPU, a device window ``paper``)."""
    meta, where = returned.meta, returned.folder / WINDOW_FILE
    if meta.get("tiny", False) != tiny:
        mode = "with" if tiny else "without"
        raise ValueError(f"{where}: tiny={meta.get('tiny')!r} does not match this command ({mode} --tiny); "
                         "allowed: a --tiny window ingested with --tiny --results DIR, a device window "
                         "without it")
    expected = "smoke" if tiny else "paper"
    if meta["profile"] != expected:
        raise ValueError(f"{where}: profile={meta['profile']!r} is not allowed here; allowed: {expected} "
                         f"({'--tiny windows' if tiny else 'device windows'} run it)")
    return returned


def _plan_engine(plan: dict, meta: dict, results_dir: Path) -> str | None:
    """Add the window's engine choice to ``plan`` unless one is committed (the first probe's stays); says which."""
    engine = meta.get("engine")
    if not engine:
        return None
    check_engine(engine, f"{WINDOW_FILE}: engine")
    kept = read_engine(results_dir, meta["profile"])
    if kept is not None:
        same = kept["settings"] == engine["settings"]
        return (f"kept the engine of window {kept['window']}"
                + ("" if same else f" (this one chose {engine['settings']})"))
    plan[inside(results_dir, meta["profile"], ENGINE_FILE)] = json.dumps(engine, indent=2, sort_keys=True)
    return f"engine {engine['settings'] or 'defaults'} from window {engine['window']}"


def _travel_check(plan: dict, teacher_plan, results_dir: Path) -> None:
    """Into the checkout's own results: what travels to the device must stay under its 64 MiB after the write."""
    from igkd_lib.campaign.prepare import LIMIT_BYTES, carried_bytes, travelling_bytes
    from igkd_lib.paths import CHECKOUT

    if Path(results_dir).resolve() != RESULTS_DIR.resolve() or not (CHECKOUT / ".git").exists():
        return
    change = sum(len(text.encode()) - (path.stat().st_size if path.is_file() else 0) for path, text in plan.items())
    change += teacher_plan.bytes_change()
    after = travelling_bytes(CHECKOUT, carry=()) + carried_bytes() + change
    if after > LIMIT_BYTES:
        raise ValueError(f"after this ingest {after / 2**20:.1f} MiB would travel to the device; allowed: at most "
                         f"{LIMIT_BYTES / 2**20:.0f} MiB (nothing was written)")
