"""igkd_lib.evidence.committed_predictions and chapter 7's reading of them: accuracies read from the robustness
study's committed predictions equal those measured here, and a file that disagrees with the students is not read."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from igkd_lib.config import make_config
from igkd_lib.evidence import committed_predictions, official

ACCURACY = ["n", "acc", "ci_low", "ci_high", "canonical_n", "canonical_acc", "canonical_ci_low", "canonical_ci_high"]
OFFLINE_LABEL = "CIFAR-10 offline copy (JPEG q75; exact pixels for ~10%) - not canonical CIFAR-10"


def _needs_checkpoints():
    if official.find_checkpoint_folder() is None or not committed_predictions.FOLDER.is_dir():
        pytest.skip("the official checkpoints or the committed robustness study are not beside this checkout")


def _copy_study(tmp_path):
    folder = tmp_path / "robustness"
    shutil.copytree(committed_predictions.FOLDER, folder)
    return folder


def test_clean_predictions_need_the_same_data_and_checkpoint(tmp_path):
    loadable = [c for c in official.checkpoints() if c.loads]
    found = committed_predictions.clean_predictions(loadable[0].sha256, OFFLINE_LABEL)
    assert found is not None and len(found.by_index) == 10_000 and "results/robustness/" in found.describe()
    assert found.predictions([0, 9_999]).shape == (2,) and found.predictions([10_000]) is None
    assert committed_predictions.clean_predictions(loadable[0].sha256, "CIFAR-10 (torchvision)") is None
    assert committed_predictions.clean_predictions("0" * 64, OFFLINE_LABEL) is None
    assert committed_predictions.clean_predictions(loadable[0].sha256, OFFLINE_LABEL, tmp_path / "absent") is None


def _fewer_exact_rows(monkeypatch):
    """The first 100 exact-pixel test images (of 1,017), so that measuring every image here stays short."""
    real = official.exact_rows
    monkeypatch.setattr(official, "exact_rows", lambda data: real(data)[:100])


@pytest.mark.slow
def test_read_accuracies_equal_those_measured_here(tmp_path, monkeypatch):
    _needs_checkpoints()
    _fewer_exact_rows(monkeypatch)
    config = make_config("smoke", cache_dir=str(tmp_path / "read"), n_test=100)
    read = official.measure_checkpoints(config)
    monkeypatch.setattr(official, "clean_predictions", lambda *args: None)
    here = official.measure_checkpoints(config.replace(cache_dir=str(tmp_path / "here")))
    read, here = read[read["note"] == ""], here[here["note"] == ""]
    assert len(read) == 6 and read["measured"].str.contains("64 images predicted here agree").all()
    assert (here["measured"] == "every image predicted here").all()
    assert np.array_equal(read[ACCURACY].to_numpy(float), here[ACCURACY].to_numpy(float))


def test_a_file_that_disagrees_with_a_student_is_not_read(tmp_path, monkeypatch):
    """A committed prediction changed inside the spot check: that student is predicted here, the others read."""
    _needs_checkpoints()
    _fewer_exact_rows(monkeypatch)
    folder = _copy_study(tmp_path)
    config = make_config("smoke", cache_dir=str(tmp_path / "cache"), n_test=64)
    first = official.measure_checkpoints(config.replace(cache_dir=str(tmp_path / "first")))
    target = first[first["note"] == ""].iloc[0]
    from igkd_lib.data.cifar10 import load_cifar10, stratified_subset

    index = int(stratified_subset(load_cifar10("test", config), 64, 0).indices[5])
    with np.load(folder / "official_students_images.npz") as raw:
        arrays = {name: raw[name] for name in raw.files}
    model_row = list(arrays["files"]).index(target["file"])
    row = list(arrays["indices"]).index(index)
    arrays["predictions"][model_row, 0, row] = (arrays["predictions"][model_row, 0, row] + 1) % 10  # 0: clean
    np.savez_compressed(folder / "official_students_images.npz", **arrays)
    real = committed_predictions.clean_predictions
    monkeypatch.setattr(official, "clean_predictions", lambda sha, source: real(sha, source, folder))
    table = official.measure_checkpoints(config).set_index("file")
    assert table.loc[target["file"], "measured"] == "every image predicted here"
    others = table[(table["note"] == "") & (table.index != target["file"])]
    assert len(others) == 5 and others["measured"].str.startswith("committed predictions").all()
    assert table.loc[target["file"], "acc"] == pytest.approx(target["acc"])  # measured, not the planted one
