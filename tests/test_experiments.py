"""The experiment runner: cache keys, cached runs, tidy tables, the CLI (with a fake trainer), and
one real smoke run (slow)."""
from __future__ import annotations

import dataclasses
import json
import types

import pandas as pd
import pytest
import torch

from igkd_lib.campaign import local_runs
from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.evidence import experiments
from igkd_lib.training import student
from igkd_lib.training.loop import TrainResult
from igkd_lib.training.teacher import TeacherInfo


def _fake_data(n: int, split: str) -> Cifar10:
    g = torch.Generator().manual_seed(n)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    return Cifar10(images, torch.arange(n) % 10, torch.arange(n) * 3, split, "offline")


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """A fake trainer whose accuracy depends on method, seed and p; counts its calls."""
    calls = []

    def train_student(config, method, seed, *, teacher, maps, train, test, checkpoint=None, progress=True):
        c = student.method_config(config, method)
        calls.append((method, seed, c.p, maps is not None))
        acc = 50 + 5 * student.METHODS.index(method) + seed + 10 * c.p + c.temperature
        log = [{"epoch": e + 1, "loss": 1.0 / (e + 1), "train_acc": acc - 1, "test_acc": acc - (1 - e),
                "seconds": 0.1, "images_per_s": 100.0} for e in range(c.student_epochs)]
        return TrainResult(model=None, log=log)

    experiments.clear_memo()
    monkeypatch.setattr(student, "train_student", train_student)
    monkeypatch.setattr(experiments, "_splits", lambda config: (_fake_data(40, "train"), _fake_data(20, "test")))
    info = TeacherInfo("trained", 80.0, "abc123", "offline", {})
    monkeypatch.setattr(experiments, "_teacher", lambda config, progress: (None, info))
    maps = types.SimpleNamespace(maps=torch.rand(40, 32, 32))
    monkeypatch.setattr(experiments, "_maps", lambda config, progress: maps)
    config = make_config("smoke", cache_dir=str(tmp_path), student_epochs=2, seeds=[0, 1])
    return types.SimpleNamespace(calls=calls, config=config, tmp=tmp_path, info=info)


def test_run_one_row_and_cache(fake):
    row = experiments.run_one(fake.config, "kd_ig", 1, progress=False)
    assert row["cached"] is False and len(fake.calls) == 1
    assert (row["final_acc"] == row["log"][-1]["test_acc"]
            and row["best_epoch_acc"] == max(r["test_acc"] for r in row["log"]))
    for name in ("method", "seed", "epochs", "seconds", "device", "data_source", "profile", "commit", "p", "blend",
                 "temperature", "alpha", "map_alignment", "shuffle_maps", "teacher_origin", "teacher_acc"):
        assert name in row, name
    assert fake.calls[0][3] is True  # kd_ig receives maps
    again = experiments.run_one(fake.config, "kd_ig", 1, progress=False)
    assert again["cached"] is True and len(fake.calls) == 1
    assert again["final_acc"] == row["final_acc"] and again["log"] == row["log"]
    assert (fake.tmp / "runs" / f"{row['run_key']}.json").is_file()


def test_methods_without_maps_get_none_and_record_their_own_knobs(fake):
    row = experiments.run_one(fake.config, "baseline", 0, progress=False)
    assert fake.calls[-1][3] is False
    assert row["alpha"] == 0 and row["p"] == 0


def test_key_covers_what_matters_and_nothing_else(fake):
    train, test = _fake_data(40, "train"), _fake_data(20, "test")

    def key(method, seed=0, sha="abc", config=fake.config, train=train):
        return experiments.run_key(config, method, seed, sha, train, test)

    assert key("kd") != key("kd", seed=1) != key("kd")
    assert key("kd") != key("kd_ig") and key("kd") != key("kd", sha="other")
    assert key("kd") != key("kd", train=train.subset(torch.arange(39)))
    assert key("kd") != key("kd", config=fake.config.replace(temperature=4.0))
    # each teacher signal is its own run
    signals = {key("kd_ig", config=fake.config.replace(teacher_logits=t)) for t in ("online", "online_clean", "cached")}
    assert len(signals) == 3
    assert key("kd", config=fake.config.replace(teacher_logits="online_clean")) == key("kd")  # no overlay: online
    # knobs a method does not use leave its key alone (so chapters share runs)
    assert key("baseline") == key("baseline", config=fake.config.replace(temperature=4.0, p=0.3, blend=0.2))
    assert key("kd") == key("kd", config=fake.config.replace(blend=0.2, shuffle_maps=True))
    assert key("kd") == key("kd", config=fake.config.replace(eval_batch_size=7, seeds=[5], num_threads=1))


def test_corrupt_cache_is_retrained(fake):
    row = experiments.run_one(fake.config, "kd", 0, progress=False)
    path = fake.tmp / "runs" / f"{row['run_key']}.json"
    path.write_text("{not json")
    again = experiments.run_one(fake.config, "kd", 0, progress=False)
    assert again["cached"] is False and len(fake.calls) == 2
    assert json.loads(path.read_text())["key"] == row["run_key"]


def test_run_grid_and_learning_curves(fake):
    variants = [{}, {"p": 0.5}]
    table = experiments.run_grid(fake.config, ["baseline", "kd_ig"], variants=variants, progress=False)
    assert len(table) == 2 * 2 * 2 and "log" not in table.columns
    assert set(table["variant"]) == {"default", "p=0.5"}
    # baseline ignores p: its two variants are the same cached run
    assert len(fake.calls) == 6
    curves = experiments.learning_curves(fake.config, ["kd_ig"], seeds=[0], progress=False)
    assert list(curves["epoch"]) == [1, 2] and set(curves["method"]) == {"kd_ig"}
    assert len(fake.calls) == 6  # all cached


def test_bad_input_names_the_parameter(fake):
    with pytest.raises(ValueError, match="method"):
        experiments.run_one(fake.config, "distill", 0)
    with pytest.raises(ValueError, match="seed"):
        experiments.run_one(fake.config, "kd", -1)
    with pytest.raises(ValueError, match="which"):
        experiments.ablation_variants(fake.config, "depth")


def test_ablation_variants(fake):
    assert experiments.ablation_variants(fake.config, "p", p_values=[0, 0.25]) == [{"p": 0.0}, {"p": 0.25}]
    grid = experiments.ablation_variants(fake.config, "temperature_alpha", temperatures=[1, 2], alphas=[0.1])
    assert grid == [{"temperature": 1.0, "alpha": 0.1}, {"temperature": 2.0, "alpha": 0.1}]
    assert {"map_alignment": "official"} in experiments.ablation_variants(fake.config, "controls")
    from igkd_lib.config import make_config
    quick = make_config("quick")
    assert experiments.ablation_variants(quick, "controls") == [{}]
    assert experiments.ablation_variants(quick, "controls", controls=("shuffled",)) == [{}, {"shuffle_maps": True}]
    with pytest.raises(ValueError, match="controls.*shuffled, official"):
        experiments.ablation_variants(quick, "controls", controls=("reversed",))


def test_cli_train_and_run(fake, capsys):
    args = types.SimpleNamespace(command="train", methods=None, seed=3)
    assert local_runs.cli(fake.config, args) == 0
    assert fake.calls == [("kd_ig", 3, fake.config.p, True)]
    args = types.SimpleNamespace(command="run", methods=None, seed=0)
    local_runs.cli(fake.config, args)
    out = capsys.readouterr().out
    assert all(m in out for m in student.METHODS) and "difference" in out and "profile=smoke" in out
    assert len(fake.calls) == 1 + 4 * 2


@pytest.mark.slow
def test_real_smoke_runs_are_cached_and_reproducible(smoke_config, monkeypatch, tmp_path):
    """Real teacher and maps from the shared smoke cache; the runs themselves go to a fresh folder."""
    experiments.clear_memo()
    monkeypatch.setattr(experiments, "_run_path", lambda config, key: tmp_path / f"{key}.json")
    config = smoke_config.replace(device="cpu")
    methods = ["baseline", "kd_ig"]
    first = experiments.run_grid(config, methods, progress=False)
    assert not first["cached"].any() and first["final_acc"].between(0, 100).all()
    second = experiments.run_grid(config, methods, progress=False)
    assert second["cached"].all()
    pd.testing.assert_series_equal(first["final_acc"], second["final_acc"])


def test_runs_with_the_same_effective_config_are_shared(fake):
    kd = experiments.run_one(fake.config, "kd", 0, progress=False)
    same = experiments.run_one(fake.config.replace(p=0.0), "kd_ig", 0, progress=False)
    assert same["cached"] is True and same["method"] == "kd_ig" and same["run_key"] == kd["run_key"]
    assert len(fake.calls) == 1


def test_cli_run_on_paper_profile_writes_committable_results(fake, monkeypatch, tmp_path, capsys):
    from igkd_lib import paths
    from igkd_lib.evidence import reference

    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    config = fake.config.replace(seeds=[0])
    paper = dataclasses.replace(config, profile="paper")  # the smoke sizes under the paper profile's name
    local_runs.cli(paper, types.SimpleNamespace(command="run", methods=None, seed=0))
    back = reference.committed_results("paper", folder=tmp_path / "results")
    assert sorted(back["method"]) == sorted(student.METHODS)
    assert back.attrs["provenance"]["profile"] == "paper" and "merged 4 new run(s)" in capsys.readouterr().out


def test_fault_ablation_size_follows_the_profile():
    """paper: every fault removed in turn; smoke: the two ends; quick: none (queued for the GPU)."""
    from igkd_lib.config import make_config
    from igkd_lib.training.faults import fault_ablation_variants

    assert experiments.ablation_variants(make_config("paper"), "faults") == fault_ablation_variants(full=True)
    assert experiments.ablation_variants(make_config("smoke"), "faults") == fault_ablation_variants(full=False)
    assert experiments.ablation_variants(make_config("quick"), "faults") == []
    with pytest.raises(ValueError, match="faults='some'"):
        experiments.ablation_variants(make_config("smoke"), "faults", faults="some")


def test_paper_run_merges_into_committed_results_never_overwrites(tmp_path, monkeypatch):
    from igkd_lib import paths
    from igkd_lib.campaign import ingest

    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    earlier = [{"run_key": "from-a-window", "method": "kd", "seed": 0, "final_acc": 91.0, "status": "complete"}]
    ingest.merge_results([{"row": earlier[0], "log": []}],
                         {"window": "20260101T000000Z-abc", "profile": "paper", "device": "GPU", "commit": "abc",
                          "precision": "bf16", "trainer": "wide", "torch": "2.11", "date": "2026-01-01"},
                         paths.RESULTS_DIR)
    config = make_config("paper", seeds=(3,))
    table = pd.DataFrame([{"run_key": "from-run", "method": "baseline", "seed": 3, "final_acc": 90.5,
                           "data_source": "offline", "commit": "def", "precision": "fp32", "cached": False}])
    local_runs._commit_results(config, table)
    local_runs._commit_results(config, table)  # the same row twice is one row
    rows = ingest.read_runs(tmp_path / "results" / "paper" / "runs.csv")
    assert sorted(r["run_key"] for r in rows) == ["from-a-window", "from-run"]
    provenance = json.loads((tmp_path / "results" / "paper" / "provenance.json").read_text())
    assert len(provenance["windows"]) >= 2 and "GPU" in provenance["devices"]
    with pytest.raises(ValueError, match="run_key=from-run"):
        local_runs._commit_results(config, table.assign(final_acc=80.0))
