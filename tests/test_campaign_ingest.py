"""igkd_lib.campaign.ingest: merging returned rows is idempotent, conflicts are errors, partial runs stay out."""
import json

import pytest

from igkd_lib.campaign.ingest import done_keys, ingest, merge_rows, read_runs
from igkd_lib.campaign.queue import Entry
from igkd_lib.campaign.results import WindowResults
from igkd_lib.config import make_config


def _window(out, name="20261126T000000Z-abc", runs=((0, 2), (1, 1))):
    """A returned folder with runs of (seed, epochs done) for kd, planned epochs 2."""
    config = make_config("smoke", student_epochs=2)
    results = WindowResults(out, {"window": name, "profile": "paper", "device": "NVIDIA H200", "commit": "abc",
                                  "precision": "bf16", "trainer": "wide", "torch": "2.11", "date": "2026-11-26",
                                  "data_source": "offline", "tiny": False})
    for seed, epochs in runs:
        key = f"key{seed}"
        results.start(Entry("table1", "kd", seed), key, config, {"device": "NVIDIA H200", "window": name})
        for epoch in range(epochs):
            results.epoch(key, {"epoch": epoch + 1, "loss": 1.0, "train_acc": 50.0,
                                "test_acc": 40.0 + epoch + seed / 10, "seconds": 1.5, "images_per_s": 100.0})
    return results


def test_merge_adds_new_rows_once_and_refuses_a_changed_row():
    rows, added = merge_rows([], [{"run_key": "a", "final_acc": 91.25, "seed": 0, "shuffle_maps": False}])
    assert added == 1 and rows[0]["final_acc"] == "91.25" and rows[0]["shuffle_maps"] == "False"
    again, added = merge_rows(rows, [{"run_key": "a", "final_acc": 91.25, "seed": 0, "shuffle_maps": False}])
    assert added == 0 and again == rows
    with pytest.raises(ValueError, match="run_key=a .*final_acc"):
        merge_rows(rows, [{"run_key": "a", "final_acc": 91.5, "seed": 0, "shuffle_maps": False}])


def test_ingest_merges_complete_runs_only_and_is_idempotent(tmp_path):
    _window(tmp_path / "out")
    results = tmp_path / "results"
    report = ingest(tmp_path / "out", results)
    assert report["runs_added"] == 1 and report["partial"] == 1
    rows = read_runs(results / "paper" / "runs.csv")
    assert [r["run_key"] for r in rows] == ["key0"] and rows[0]["status"] == "complete"
    assert float(rows[0]["final_acc"]) == 41.0 and float(rows[0]["best_acc"]) == 41.0
    assert done_keys(results, "paper") == {"key0"}
    before = (results / "paper" / "runs.csv").read_text()
    assert ingest(tmp_path / "out", results)["runs_added"] == 0
    assert (results / "paper" / "runs.csv").read_text() == before
    logs = [json.loads(line) for line in (results / "paper" / "logs.jsonl").read_text().splitlines()]
    assert [(entry["run_key"], len(entry["log"])) for entry in logs] == [("key0", 2)]
    window = json.loads((results / "paper" / "windows" / "20261126T000000Z-abc.json").read_text())
    assert window["partial_runs_not_merged"] == ["key1"] and window["device"] == "NVIDIA H200"
    provenance = json.loads((results / "paper" / "provenance.json").read_text())
    assert provenance["devices"] == ["NVIDIA H200"] and provenance["commits"] == ["abc"]


def test_a_second_window_with_another_row_under_the_same_key_is_an_error(tmp_path):
    _window(tmp_path / "one")
    ingest(tmp_path / "one", tmp_path / "results")
    _window(tmp_path / "two", name="20261127T000000Z-abc", runs=((0, 2),))  # same key, another window
    with pytest.raises(ValueError, match="run_key=key0"):
        ingest(tmp_path / "two", tmp_path / "results")


def test_ingest_of_a_folder_without_a_window_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="window.json"):
        ingest(tmp_path, tmp_path / "results")
