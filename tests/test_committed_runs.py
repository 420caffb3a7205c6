"""igkd_lib.evidence.committed_runs and the runner: a chapter reads a committed run of the same key (under the
committed run's device type and trainer) instead of training it, and lists what is neither cached nor committed."""
from __future__ import annotations

import csv
import json

import pandas as pd
import pytest
import torch

from igkd_lib import paths
from igkd_lib.config import make_config
from igkd_lib.evidence import committed_runs, experiments
from igkd_lib.training.student import method_config

FIELDS = ["method", "seed", "study", "variant", "final_acc", "best_acc", "epochs", "planned_epochs", "n_train",
          "device", "device_type", "precision", "trainer", "data_source", "profile", "commit", "teacher_sha256",
          "teacher_acc", "window", "run_key", "status", "p", "temperature", "alpha"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A run cache of this module's own (empty of runs), shared by its tests: the data are decoded once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def setting(tmp_path, cache, monkeypatch):
    """A smoke config that trains nothing missing, its teacher and data, and an empty results folder."""
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    config = make_config("smoke", cache_dir=str(cache), train_missing=False)
    train, test = experiments._splits(config)
    _, info = experiments._teacher(config, False)
    return config, info.sha256, train, test, tmp_path / "results" / "smoke"


def _commit(folder, config, method, seed, key, status="complete", final=61.5):
    folder.mkdir(parents=True, exist_ok=True)
    c = method_config(config, method)
    row = {"method": method, "seed": seed, "study": "table1", "variant": "default", "final_acc": final,
           "best_acc": final + 1, "epochs": c.student_epochs, "planned_epochs": c.student_epochs,
           "n_train": c.n_train, "device": "NVIDIA H200", "device_type": "cuda", "precision": "bf16",
           "trainer": "wide", "data_source": "offline", "profile": config.profile, "commit": "abc123",
           "teacher_sha256": "0" * 64, "teacher_acc": 90.0, "window": "w1", "run_key": key, "status": status,
           "p": c.p, "temperature": c.temperature, "alpha": c.alpha}
    path = folder / committed_runs.RUNS_FILE
    rows = list(csv.DictReader(open(path))) if path.is_file() else []
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows([*rows, row])
    with open(folder / committed_runs.LOGS_FILE, "a") as handle:
        handle.write(json.dumps({"run_key": key, "log": [{"epoch": 1, "test_acc": final, "loss": 1.0}]}) + "\n")


def _key(config, method, seed, sha, train, test):
    return experiments.run_key(config, method, seed, sha, train, test, trainer="wide", device=torch.device("cuda"))


def test_nothing_committed_nothing_trained_everything_listed(setting):
    config, _, _, _, _ = setting
    runs = experiments.run_grid(config, ["baseline", "kd"], seeds=[0, 1], progress=False)
    assert runs.empty and runs.attrs["missing"] == [("default", m, s) for m in ("baseline", "kd") for s in (0, 1)]
    assert not list((experiments.Path(config.cache_dir) / "runs").glob("*.json"))  # nothing trained


def test_a_committed_run_is_read_by_its_key(setting):
    config, sha, train, test, folder = setting
    _commit(folder, config, "kd", 1, _key(config, "kd", 1, sha, train, test), final=61.5)
    runs = experiments.run_grid(config, ["baseline", "kd"], seeds=[0, 1], progress=False)
    assert list(zip(runs["method"], runs["seed"])) == [("kd", 1)] and runs["final_acc"].iloc[0] == 61.5
    assert runs["best_epoch_acc"].iloc[0] == 62.5 and runs["origin"].iloc[0].startswith("committed (results/smoke")
    assert runs.attrs["missing"] == [("default", "baseline", 0), ("default", "baseline", 1), ("default", "kd", 0)]
    curves = experiments.learning_curves(config, ["kd"], seeds=[1], progress=False)
    assert curves["test_acc"].tolist() == [61.5]


def test_a_run_of_another_teacher_setting_or_status_is_not_read(setting):
    config, sha, train, test, folder = setting
    _commit(folder, config, "kd", 0, _key(config, "kd", 0, "f" * 64, train, test))  # another teacher
    _commit(folder, config.replace(temperature=4.0), "kd", 1,
            _key(config.replace(temperature=4.0), "kd", 1, sha, train, test))  # another temperature
    _commit(folder, config, "baseline", 0, _key(config, "baseline", 0, sha, train, test), status="partial")
    runs = experiments.run_grid(config, ["baseline", "kd"], seeds=[0, 1], progress=False)
    assert runs.empty and len(runs.attrs["missing"]) == 4
    hotter = experiments.run_grid(config.replace(temperature=4.0), ["kd"], seeds=[1], progress=False)
    assert len(hotter) == 1 and hotter.attrs["missing"] == []


def test_a_damaged_committed_row_is_an_error_naming_the_file(setting):
    config, sha, train, test, folder = setting
    _commit(folder, config, "kd", 0, _key(config, "kd", 0, sha, train, test), final=101.0)
    with pytest.raises(ValueError, match=r"runs.csv row 2: final_acc=.*allowed: a finite accuracy"):
        experiments.run_grid(config, ["kd"], seeds=[0], progress=False)


def test_train_missing_is_a_runtime_field_of_every_profile():
    assert make_config("paper").train_missing is False and make_config("quick").train_missing is True
    assert make_config("paper", train_missing="true").train_missing is True
    with pytest.raises(ValueError, match="train_missing"):
        make_config("paper", train_missing="sometimes")


def test_coverage_says_what_the_figures_rest_on_and_what_is_missing(setting):
    from igkd_lib.book import coverage

    config, sha, train, test, folder = setting
    _commit(folder, config, "kd", 1, _key(config, "kd", 1, sha, train, test))
    runs = experiments.run_grid(config, ["baseline", "kd"], seeds=[0, 1, 2], progress=False)
    assert coverage.runs_line(runs) == "these figures rest on 1 run(s) (seeds per arm: kd: 1; 1 committed)"
    table = coverage.missing_table(runs)
    assert table.to_dict("records") == [
        {"variant": "default", "method": "baseline", "missing seeds": "0-2", "n missing": 3},
        {"variant": "default", "method": "kd", "missing seeds": "0, 2", "n missing": 2}]
    note = coverage.missing_note(config, runs, rate=100.0)  # 5 runs x 1 epoch x 256 images at 100 images/s
    assert note.startswith("5 run(s) of this chapter") and "train_missing=False" in note and "about 0.0 hours" in note
    assert coverage.missing_note(config, experiments.run_grid(config, ["kd"], seeds=[1], progress=False)) == ""
    assert coverage.seed_ranges([7, 0, 1, 2, 5, 8]) == "0-2, 5, 7-8"
    assert coverage.runs_line(runs.iloc[:0]) == "these figures rest on no run yet"


def test_an_empty_run_table_keeps_its_columns_and_summaries_work_on_it(setting):
    from igkd_lib.evidence import stats, studies

    config, _, _, _, _ = setting
    runs = experiments.run_grid(config, ["kd"], seeds=[0], progress=False)
    assert runs.empty and {"method", "seed", "final_acc", "data_source", "origin"} <= set(runs.columns)
    assert runs["final_acc"].dtype == float and stats.summarise(runs).empty
    by_cut = studies.compression_runs(config, (5, 17), seeds=[0])
    assert by_cut.empty and by_cut["student_cut"].dtype == int and len(by_cut.attrs["missing"]) == 4
    latency = pd.DataFrame({"student_cut": [5, 17], "latency_ms": [1.0, 0.5], "latency_iqr_ms": [0.1, 0.1]})
    assert studies.compression_points(by_cut, latency).empty


def test_show_coverage_prints_the_line_and_the_missing_runs(setting, capsys, monkeypatch):
    from igkd_lib.book import coverage

    config, _, _, _, _ = setting
    monkeypatch.setattr(coverage, "_rate", lambda config: 100.0)
    runs = experiments.run_grid(config, ["kd"], seeds=[0, 1], progress=False)
    coverage.show_coverage(config, runs, "the KD study", "tbl-test-missing")
    out = capsys.readouterr().out
    assert out.startswith("the KD study: these figures rest on no run yet")
    assert "Runs of the KD study that the queue still lacks" in out and "2 run(s) of this chapter" in out


def test_study_students_lists_the_students_that_are_not_here(setting):
    from igkd_lib.book.coverage import students_line
    from igkd_lib.evidence import studies

    config, _, _, _, _ = setting
    absent: list = []
    students = studies.study_students(config, methods=("baseline", "kd_ig"), seeds=[0, 3], official=False,
                                      missing=absent)
    assert students == {} and absent == [("baseline", 0), ("baseline", 3), ("kd_ig", 0), ("kd_ig", 3)]
    assert students_line(students, absent) == (
        "these studies examine 0 student(s): none. Not on this machine: the students of 4 run(s) (baseline seeds 0, 3; "
        "kd_ig seeds 0, 3); a committed run keeps its row and log, not its weights, so their maps and corrupted-image "
        "accuracies are not measured here (overrides={'train_missing': True} trains them here)")
    with pytest.raises(LookupError, match="train_missing=true"):  # without a list to note them in: an error
        studies.study_students(config, methods=("kd",), seeds=[0], official=False)
