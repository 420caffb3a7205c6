"""Issue 29: what a window hands back is untrusted until verified; ingest commits all or nothing.

Each test plants one crafted folder (traversal, pickle payload, swapped teacher, bad rows, oversized
log) and checks that it is refused with a message naming the file and the field, and that the
results folder and the teacher's files are byte-identical afterwards.
"""
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from igkd_lib import models, storage
from igkd_lib.campaign.ingest import ingest
from igkd_lib.campaign.queue import Entry
from igkd_lib.campaign.results import WindowResults
from igkd_lib.config import make_config
from igkd_lib.data import Cifar10

SHA = "a" * 64  # the installed teacher the rows name
KEY = "0123456789abcdef"


def _snapshot(*folders) -> dict:
    """Every file under ``folders``, by path, with its bytes (absent folders are empty)."""
    return {p: p.read_bytes() for folder in folders if Path(folder).exists()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def _window(out, name="20261204T155918Z-0237e365af62", profile="paper", runs=((0, 2),), teacher=None, **meta):
    """A returned folder: kd runs of (seed, epochs done), planned epochs 2, trained with teacher SHA."""
    config = make_config("smoke", student_epochs=2)
    results = WindowResults(out, {"window": name, "profile": profile, "device": "NVIDIA H200", "commit": "0237e365af62",
                                  "precision": "bf16", "trainer": "wide", "torch": "2.11", "date": "2026-12-04",
                                  "cuda": "13.0", "data_source": "offline", "tiny": False,
                                  "teacher": teacher or {"status": "installed", "sha256": SHA,
                                                         "measured_accuracy": 93.0}, **meta})
    for seed, epochs in runs:
        key = f"{KEY[:-2]}{seed:02d}"
        results.start(Entry("table1", "kd", seed), key, config, {"device": "NVIDIA H200", "window": name,
                                                                 "teacher_sha256": SHA})
        for epoch in range(epochs):
            results.epoch(key, {"epoch": epoch + 1, "loss": 1.0, "train_acc": 50.0,
                                "test_acc": 40.0 + epoch + seed / 10, "seconds": 1.5, "images_per_s": 100.0})
    return results


def _rewrite_rows(out: Path, **fields) -> None:
    lines = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    for line in lines:
        line["row"].update(fields)
    (out / "runs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def _refused(folder, results, words, **options):
    before = _snapshot(results, *options.get("watch", ()))
    options.pop("watch", None)
    with pytest.raises(ValueError) as caught:
        ingest(folder, results, **options)
    for word in words:
        assert word in str(caught.value), str(caught.value)
    assert _snapshot(results) == {p: b for p, b in before.items() if str(p).startswith(str(results))}
    return str(caught.value)


# --------------------------------------------------------------------------- 1: path traversal
@pytest.mark.parametrize("field, value", [("window", "../../../escaped"), ("window", "20261204T155918Z-../../x"),
                                          ("profile", "/tmp/elsewhere"), ("profile", "../paper")])
def test_window_and_profile_names_cannot_leave_the_results_folder(tmp_path, field, value):
    _window(tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "window.json").read_text())
    meta[field] = value
    (tmp_path / "out" / "window.json").write_text(json.dumps(meta))
    results = tmp_path / "deep" / "er" / "results"
    _refused(tmp_path / "out", results, ["window.json", field])
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        p.name for p in (tmp_path / "out").iterdir())  # nothing written anywhere


# --------------------------------------------------------------------------- 2: no pickle from elsewhere
class _Payload:
    """Unpickling this runs ``Path(marker).touch()``: what a crafted file could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _crafted(path: Path, marker: Path) -> None:
    torch.save({"model": _Payload(marker), "optimizer": _Payload(marker), "epoch": 0, "log": []}, path)


def test_a_pickle_payload_in_returned_resume_files_is_refused_and_never_run(tmp_path):
    from igkd_lib.campaign.paper_teacher import RESUME_FILES

    out, marker = tmp_path / "out", tmp_path / "ran"
    out.mkdir()
    for name in RESUME_FILES:
        _crafted(out / name, marker)
    _window(out, runs=(), teacher={"status": "unfinished", "epochs_done": 1,
                                   "resume_sha256": {n: storage.sha256_file(out / n) for n in RESUME_FILES}})
    _refused(out, tmp_path / "results", ["teacher_resume_model.pt"], resume_dir=tmp_path / "results" / "resume")
    assert not marker.exists()


def test_a_window_never_runs_a_pickle_from_resume_files_without_a_manifest(tmp_path):
    from igkd_lib.campaign.paper_teacher import RESUME_FILES, join_checkpoint

    marker = tmp_path / "ran"
    (tmp_path / "resume").mkdir()
    for name in RESUME_FILES:
        _crafted(tmp_path / "resume" / name, marker)
    with pytest.raises(ValueError, match="resume"):
        join_checkpoint(tmp_path / "resume", tmp_path / "checkpoint.pt", None)
    assert not marker.exists() and not (tmp_path / "checkpoint.pt").exists()


def test_a_pickle_payload_as_a_cached_checkpoint_is_moved_aside_unrun(tmp_path, capsys):
    marker, checkpoint = tmp_path / "ran", tmp_path / "run.pt"
    _crafted(checkpoint, marker)
    assert storage.load_checkpoint(checkpoint) is None
    assert not marker.exists() and list(tmp_path.glob("run.pt.corrupt-*"))


# --------------------------------------------------------------------------- 3: teacher trust
def _test_split(n=20):
    return Cifar10(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8), torch.arange(n) % 10, torch.arange(n),
                   "test", "offline")


def _returned_teacher(out: Path, profile="smoke") -> str:
    """A finished teacher of ``profile``'s recipe as a window writes it; returns its SHA-256."""
    import dataclasses

    from igkd_lib.training.teacher import recipe_from_config

    torch.manual_seed(0)
    torch.save(models.teacher().state_dict(), out / "teacher.pt")
    sha = storage.sha256_file(out / "teacher.pt")
    recipe = dataclasses.asdict(recipe_from_config(make_config(profile)))
    card = {"sha256": sha, "test_accuracy": 10.0, "data_source": "offline", "recipe": recipe, "stages": [recipe],
            "status": "complete", "log": [{"epoch": e + 1, "test_acc": 10.0} for e in range(recipe["epochs"])],
            "trained_on": "cpu", "commit": "abc"}
    (out / "teacher.json").write_text(json.dumps(card))
    return sha


def test_a_cpu_teacher_claiming_not_tiny_is_never_installed_as_the_paper_teacher(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    sha = _returned_teacher(out, "smoke")  # a smoke-recipe teacher, window.json says "tiny": false
    _window(out, runs=(), teacher={"status": "finished", "sha256": sha, "measured_accuracy": 10.0})
    weights = tmp_path / "package" / "paper.pt"
    _refused(out, tmp_path / "results", ["teacher.json", "recipe"], teacher_weights=weights, test=_test_split())
    assert not weights.exists()


def test_a_teacher_other_than_the_one_the_window_recorded_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _returned_teacher(out, "paper")
    _window(out, runs=(), teacher={"status": "finished", "sha256": "b" * 64, "measured_accuracy": 90.0})
    weights = tmp_path / "package" / "paper.pt"
    _refused(out, tmp_path / "results", ["teacher", "sha256"], teacher_weights=weights, test=_test_split())
    assert not weights.exists()


def test_rows_trained_with_another_teacher_than_the_returned_one_are_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    sha = _returned_teacher(out, "paper")
    _window(out, teacher={"status": "finished", "sha256": sha, "measured_accuracy": 90.0})  # rows name SHA
    weights = tmp_path / "package" / "paper.pt"
    _refused(out, tmp_path / "results", ["runs.jsonl", "teacher_sha256"], teacher_weights=weights,
             test=_test_split())
    assert not weights.exists()


# --------------------------------------------------------------------------- 4: all or nothing
def test_a_late_failure_leaves_the_results_byte_identical(tmp_path):
    _window(tmp_path / "first")
    results = tmp_path / "results"
    ingest(tmp_path / "first", results)
    # the same window name with other contents (its record conflicts: checked after the rows) and a new run
    _window(tmp_path / "out", runs=((0, 2), (1, 2)), budget_s=100.0)
    _refused(tmp_path / "out", results, ["window", "other contents"])


# --------------------------------------------------------------------------- 5: rows
@pytest.mark.parametrize("field, value", [("epochs", 0), ("final_acc", ""), ("final_acc", "abc"),
                                          ("final_acc", float("nan")), ("seed", "x"), ("final_acc", 250.0),
                                          ("best_acc", None), ("run_key", "../x"), ("method", "evil")])
def test_a_bad_row_is_refused_naming_the_file_and_the_field(tmp_path, field, value):
    _window(tmp_path / "out")
    _rewrite_rows(tmp_path / "out", **{field: value})
    _refused(tmp_path / "out", tmp_path / "results", ["runs.jsonl", field])


def _committed(rows):
    import pandas as pd

    base = {"method": "kd", "variant": "default", "final_acc": 90.0, "best_acc": 99.0, "epochs": 100,
            "planned_epochs": 100, "status": "complete", "data_source": "offline", "profile": "paper"}
    return pd.DataFrame([{**base, "run_key": f"{i:016x}", **row} for i, row in enumerate(rows)])


def test_claims_refuse_a_committed_row_that_is_partial_or_not_a_number():
    from igkd_lib.evidence.claims import claims_table

    for bad in ({"final_acc": float("nan")}, {"status": "partial"}, {"epochs": 0}):
        runs = _committed([{"seed": s, **(bad if s == 1 else {})} for s in range(5)])
        with pytest.raises(ValueError, match=next(iter(bad))):
            claims_table(runs, "committed paper-profile runs")


def test_claims_count_one_run_per_method_variant_and_seed_and_say_which_they_kept():
    from igkd_lib.evidence.claims import claims_table

    seeds = [{"method": m, "seed": s, "final_acc": 90.0 + s / 10 + (m == "kd")} for m in ("kd", "baseline")
             for s in range(5)]
    twice = [{**row, "final_acc": row["final_acc"] + 0.01} for row in seeds]  # the same runs under other keys
    table = claims_table(_committed(seeds + twice), "committed paper-profile runs")
    row = table[table["claim"] == "KD beats the student trained alone"].iloc[0]
    assert row["n"] == "5 vs 5"
    assert len(table.attrs["set_aside"]) == 10 and "kept" in table.attrs["set_aside"][0]


# --------------------------------------------------------------------------- 6: size
def test_an_oversized_runs_log_is_refused_before_anything_is_read(tmp_path):
    _window(tmp_path / "out")
    with open(tmp_path / "out" / "runs.jsonl", "a") as handle:
        handle.write(" " * (5 * 2**20) + "\n")
    _refused(tmp_path / "out", tmp_path / "results", ["runs.jsonl", "MiB"])


# --------------------------------------------------------------------------- 7: the book's freshness
def test_a_summary_page_is_stale_after_results_change(tmp_path, monkeypatch):
    import time

    from igkd_lib.book import build as book

    (tmp_path / "book").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/findings\n")
    nb = {"cells": [], "metadata": {"papermill": {"parameters": {"profile": "smoke"}}}, "nbformat": 4,
          "nbformat_minor": 5}
    (tmp_path / "book" / "findings.ipynb").write_text(json.dumps(nb))
    executed = tmp_path / "_build" / "executed" / "smoke" / "book" / "findings.ipynb"
    executed.parent.mkdir(parents=True)
    ran = []
    monkeypatch.setattr(book, "_execute", lambda source, target, params, progress: ran.append(source))
    time.sleep(0.05)
    executed.write_text(json.dumps(nb))
    future = time.time() + 5
    os.utime(executed, (future, future))
    book.execute_chapters("smoke", root=tmp_path, progress=False)
    assert ran == []  # up to date
    (tmp_path / "results" / "paper").mkdir(parents=True)
    (tmp_path / "results" / "paper" / "runs.csv").write_text("method\n")
    os.utime(tmp_path / "results" / "paper" / "runs.csv", (future + 5, future + 5))
    book.execute_chapters("smoke", root=tmp_path, progress=False)
    assert ran == [tmp_path / "book" / "findings.ipynb"]


# --------------------------------------------------------------------------- 8: chapter 7 without the files
def test_chapter_7_shows_unavailable_checkpoints_and_goes_on(tmp_path, monkeypatch):
    import nbformat

    from igkd_lib.evidence import official

    def unavailable(checkpoint, cache_dir):
        raise official.OfficialUnavailable(f"the official checkpoint {checkpoint.name} is not available")

    monkeypatch.setattr(official, "fetch_checkpoint", unavailable)
    monkeypatch.setattr(official, "load_cifar10", lambda split, config: _test_split(400))
    monkeypatch.setattr(official, "exact_rows", lambda data: torch.arange(10))
    config = make_config("smoke", cache_dir=str(tmp_path))
    measured = official.measure_checkpoints(config)
    assert measured["note"].str.startswith(("unavailable", "skipped")).all()
    notebook = nbformat.read(Path(__file__).resolve().parent.parent / "notebooks" / "07_authors_artifacts.ipynb", 4)
    cells = [c.source for c in notebook.cells if c.cell_type == "code" and "measured" in c.source]
    namespace = {"official": official, "config": config}
    exec("import pandas as pd\nfrom IPython.display import Markdown, display\n"
         "from igkd_lib.evidence import claims, stats\nfrom igkd_lib.book import caption, table_note", namespace)
    for source in cells:
        exec(source, namespace)  # raises on today's code: KeyError 'n'


def test_the_payload_really_runs_when_unpickled(tmp_path):  # so the tests above could fail
    pickle.loads(pickle.dumps(_Payload(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()


# --------------------------------------------------------------------------- should fix: bounds and reasons
@pytest.mark.parametrize("overrides, field", [({"crop_padding": 10_000}, "crop_padding"),
                                              ({"student_batch_size": 10**9}, "student_batch_size"),
                                              ({"num_threads": 10**6}, "num_threads"),
                                              ({"ig_chunk": 10**9}, "ig_chunk"), ({"seeds": (10**20,)}, "seeds")])
def test_sizes_that_could_only_fail_later_are_refused_up_front(overrides, field):
    from igkd_lib.config import ConfigError

    with pytest.raises(ConfigError, match=field):
        make_config("smoke", **overrides)


@pytest.mark.parametrize("budget", [float("inf"), float("nan"), 0.0, 10**7])
def test_a_window_budget_must_be_a_finite_number_of_seconds(budget):
    from igkd_lib.campaign.budget import Clock

    with pytest.raises(ValueError, match="budget-s"):
        Clock(budget)


def test_official_without_any_checkpoint_says_why_and_fails(monkeypatch, capsys, tmp_path):
    from igkd_lib.evidence import official

    def unavailable(checkpoint, cache_dir):
        raise official.OfficialUnavailable(f"the official checkpoint {checkpoint.name} is not available")

    monkeypatch.setattr(official, "fetch_checkpoint", unavailable)
    monkeypatch.setattr(official, "load_cifar10", lambda split, config: _test_split(400))
    monkeypatch.setattr(official, "exact_rows", lambda data: torch.arange(10))
    assert official.cli(make_config("smoke", cache_dir=str(tmp_path)), None) == 1
    assert "no published checkpoint could be measured" in capsys.readouterr().err


@pytest.mark.parametrize("name, content", [("window.json", '{"window": "2026'), ("runs.jsonl", '{"row": {"run_k')])
def test_a_truncated_returned_file_is_refused_naming_it(tmp_path, name, content):
    _window(tmp_path / "out")
    (tmp_path / "out" / name).write_text(content)
    _refused(tmp_path / "out", tmp_path / "results", [name, "not valid JSON"])


def test_a_damaged_committed_runs_csv_is_named(tmp_path):
    _window(tmp_path / "out")
    (tmp_path / "results" / "paper").mkdir(parents=True)
    (tmp_path / "results" / "paper" / "runs.csv").write_text('run_key,method\n"x,kd\n0,1,2\n')
    _refused(tmp_path / "out", tmp_path / "results", ["runs.csv"])


def test_prepare_outside_a_checkout_fails_before_copying(tmp_path):
    from igkd_lib.campaign import prepare

    (tmp_path / ".gitignore").write_text("/.window/\n")
    with pytest.raises(ValueError, match="git commit"):
        prepare.prepare(tmp_path)
    assert not (tmp_path / ".window").exists()
    with pytest.raises(ValueError, match=".gitignore"):
        prepare.prepare(tmp_path / "elsewhere")


def test_an_edited_accuracy_in_the_measured_checkpoints_cache_is_measured_again(tmp_path, monkeypatch):
    import pandas as pd

    from igkd_lib.evidence import official

    calls = []

    def measure(config, full, progress):
        calls.append(1)
        return pd.DataFrame([{"method": "kd", "acc": 91.0, "note": ""}])

    monkeypatch.setattr(official, "_measure", measure)
    monkeypatch.setattr(official, "load_cifar10", lambda split, config: _test_split(400))
    config = make_config("smoke", cache_dir=str(tmp_path))
    assert official.measure_checkpoints(config)["acc"].tolist() == [91.0] and len(calls) == 1
    assert official.measure_checkpoints(config)["acc"].tolist() == [91.0] and len(calls) == 1  # from the cache
    cached = next((tmp_path / "official-checkpoints").glob("measured-*.json"))
    cached.write_text(cached.read_text().replace("91.0", "99.0"))
    assert official.measure_checkpoints(config)["acc"].tolist() == [91.0] and len(calls) == 2


# --------------------------------------------------------------------------- studies of the window's students
def _study(key, **agreement):
    return {"run_key": key, "agreement": {"n_images": 500, "spearman": 0.5, "iou": 0.3, **agreement},
            "robustness": [{"kind": "clean", "severity": 0, "subset": "all", "n": 10_000, "accuracy": 91.0}]}


@pytest.mark.parametrize("record, words", [
    (_study(f"{KEY[:-2]}01"), ["studies.jsonl line 1", "not a finished run of this window"]),  # the partial run
    (_study(f"{KEY[:-2]}00", spearman=3.0), ["studies.jsonl line 1", "agreement="]),
    ({**_study(f"{KEY[:-2]}00"), "robustness": [{"kind": "clean", "severity": 0, "subset": "../x", "n": 1,
                                                 "accuracy": 90.0}]}, ["studies.jsonl line 1", "robustness row"]),
])
def test_a_crafted_studies_line_is_refused_naming_it(tmp_path, record, words):
    results = _window(tmp_path / "out", runs=((0, 2), (1, 1)))
    results.study(record["run_key"], {k: v for k, v in record.items() if k != "run_key"})
    _refused(tmp_path / "out", tmp_path / "results", words)


def test_the_studies_of_finished_runs_are_committed_once(tmp_path):
    results = _window(tmp_path / "out", runs=((0, 2),))
    key = f"{KEY[:-2]}00"
    results.study(key, {k: v for k, v in _study(key).items() if k != "run_key"})
    assert ingest(tmp_path / "out", tmp_path / "results")["studies_added"] == 1
    assert ingest(tmp_path / "out", tmp_path / "results")["studies_added"] == 0
    rows = (tmp_path / "results" / "paper" / "studies_agreement.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith(f"{key},kd,0,table1,default,500,0.5,0.3,offline,NVIDIA H200,")
