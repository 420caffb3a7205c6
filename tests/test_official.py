"""The authors' artifacts: the ten-run accuracies as data, checkpoint names, the verified loader."""
from __future__ import annotations

import shutil

import pytest
import torch

from igkd_lib.config import make_config
from igkd_lib.evidence import official, reference


def test_ten_run_accuracies_carry_both_versions_and_their_sources():
    table = official.ten_run_accuracies()
    assert len(table) == 2 * 8 * 10 and set(table["commit_date"]) == set(official.RESULT_VERSIONS)
    first = official.ten_run_accuracies("2025-03-18")
    best = first.groupby("method")["final_acc"].max()
    for method, reported in reference.PAPER_REPORTED.items():  # the paper's numbers are that version's maxima
        assert best[method] == pytest.approx(reported)
    later = official.ten_run_accuracies("2025-03-23").groupby("method")["final_acc"]
    for method, (mean, sd) in reference.OFFICIAL_MEANS.items():
        assert later.mean()[method] == pytest.approx(mean, abs=0.005)
        assert later.std()[method] == pytest.approx(sd, abs=0.005)
    assert first["source"].str.contains("09becede2ecd").all()
    with pytest.raises(ValueError, match="version"):
        official.ten_run_accuracies("2025-01-01")


def test_names_say_method_training_set_and_accuracy():
    parsed = official.parse_name("CIFAR10-Train80Rand_KD_IG_T2.5_alpha0.01_p0.1_gamma0_TestAcc91.39.pt")
    assert parsed == {"official_method": "KD_IG", "training_set": "random 80%", "reported_acc": 91.39,
                      "settings": "T=2.5, alpha=0.01, p=0.1, gamma=0"}
    assert official.parse_name("CIFAR10-Train80Rand_Student_TestAcc90.73.pt")["official_method"] == "Student"
    with pytest.raises(ValueError, match="name"):
        official.parse_name("teacher.pt")
    found = official.checkpoints()
    assert len(found) == 11 and sum(not c.loads for c in found) == 5
    assert {c.method for c in found if c.loads} == {"baseline", "kd", "ig", "kd_ig"}
    assert all(c.url.startswith("https://raw.githubusercontent.com/" + official.REPOSITORY) for c in found)


def _kd_checkpoint():
    return next(c for c in official.checkpoints() if c.official_method == "KD" and c.training_set == "full")


def test_fetch_verifies_and_errors_clearly(tmp_path, monkeypatch):
    checkpoint = _kd_checkpoint()
    bad = tmp_path / "offline"
    bad.mkdir()
    (bad / checkpoint.name).write_bytes(b"not the published file")
    monkeypatch.setenv("IGKD_OFFICIAL_CHECKPOINTS", str(bad))

    def no_internet(*args, **kwargs):
        raise OSError("no route to host")

    monkeypatch.setattr(official.urllib.request, "urlopen", no_internet)
    monkeypatch.setattr("igkd_lib.data.cifar10._internet_available", lambda host="": True)
    with pytest.raises(official.OfficialUnavailable, match="SHA-256 differs") as error:
        official.fetch_checkpoint(checkpoint, tmp_path / "cache")
    assert "no route to host" in str(error.value) and "IGKD_OFFICIAL_CHECKPOINTS" in str(error.value)
    assert not (tmp_path / "cache" / "official-checkpoints" / checkpoint.name).exists()  # nothing half-written


def test_published_students_load_into_the_default_student(monkeypatch, tmp_path):
    monkeypatch.delenv("IGKD_OFFICIAL_CHECKPOINTS", raising=False)
    folder = official.find_checkpoint_folder()
    if folder is None:
        pytest.skip("the offline copy of the official checkpoints is not beside this checkout")
    checkpoint = _kd_checkpoint()
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(folder / checkpoint.name, good / checkpoint.name)
    monkeypatch.setenv("IGKD_OFFICIAL_CHECKPOINTS", str(good))
    model = official.load_student(checkpoint, tmp_path / "cache")
    assert not model.training and not model.normalise
    x = torch.rand(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    at = next(c for c in official.checkpoints() if not c.loads)
    with pytest.raises(ValueError, match="another architecture"):
        official.load_student(at, tmp_path / "cache")


@pytest.mark.slow
def test_measured_accuracy_matches_the_name_on_exact_pixels():
    if official.find_checkpoint_folder() is None:
        pytest.skip("the offline copy of the official checkpoints is not beside this checkout")
    config = make_config("smoke")
    table = official.measure_checkpoints(config)
    measured = table[table["note"] == ""]
    assert len(measured) == 6 and (measured["n"] == config.n_test).all()
    # the authors measured on canonical CIFAR-10: their number lies in the exact-pixel interval (within 1 point)
    assert ((measured["reported_acc"] > measured["canonical_ci_low"] - 1)
            & (measured["reported_acc"] < measured["canonical_ci_high"] + 1)).all()


def test_unavailable_files_are_noted_not_measured(tmp_path, monkeypatch):
    monkeypatch.setenv("IGKD_OFFICIAL_CHECKPOINTS", str(tmp_path / "nowhere"))
    monkeypatch.setattr("igkd_lib.data.cifar10._internet_available", lambda host="": False)
    config = make_config("smoke", cache_dir=str(tmp_path / "cache"), n_test=20)
    monkeypatch.setattr(official, "exact_rows", lambda data: torch.arange(10))
    table = official.measure_checkpoints(config)
    loadable = table[~table["note"].str.startswith("skipped")]
    assert len(loadable) == 6 and loadable["note"].str.contains("internet is not reachable").all()
    assert loadable["acc"].isna().all() if "acc" in loadable else True
    assert not list((tmp_path / "cache" / "official-checkpoints").glob("measured-*.json"))  # not cached
