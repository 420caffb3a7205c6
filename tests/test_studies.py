"""Tests of igkd_lib.studies: the queue, the official students, the teacher on overlays, run weights."""
import pytest
import torch

from igkd_lib import experiments, models
from igkd_lib.config import STUDENT_CUTS, make_config
from igkd_lib.studies import beyond_paper_queue, official_students, teacher_on_overlays, trained_student


def test_queue_order_and_that_every_entry_is_a_valid_config():
    queue = beyond_paper_queue(seeds=(0, 1))
    studies = [e.study for e in queue]
    assert studies[0] == "overlay source" and studies[-1] == "compression"
    assert studies.index("attribution agreement") > studies.index("overlay source")
    assert {e.overrides.get("student_cut") for e in queue if e.study == "compression"} == set(STUDENT_CUTS) - {5}
    assert not any(e.trains for e in queue if e.study in ("attribution agreement", "robustness under corruption"))
    for entry in queue:
        make_config("paper", **entry.overrides)  # raises on a bad field
        assert entry.seeds == (0, 1)


def test_official_students_load_and_skip_other_layouts(smoke_config):
    found = official_students(smoke_config)
    if not found:
        pytest.skip("no official checkpoints beside this checkout")
    assert set(found) == {"official kd", "official ig", "official kd_ig"}
    model, accuracy = found["official kd_ig"]
    assert accuracy == pytest.approx(92.28) and models.count_parameters(model) == 543_498


def test_teacher_on_overlays_blend_zero_is_the_clean_accuracy():
    torch.manual_seed(0)
    net = models.student(17).eval()
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(6)
    table = teacher_on_overlays(net, images, labels, torch.rand(6, 32, 32), blends=(0.0, 1.0))
    clean = float((net(images.float() / 255).argmax(1) == labels).float().mean() * 100)
    assert table["accuracy"].iloc[0] == pytest.approx(clean)
    assert (table["entropy"] <= table["entropy_max"] + 1e-6).all() and len(table) == 2


@pytest.mark.slow
def test_trained_student_keeps_and_restores_the_weights(smoke_config, tmp_path):
    config = smoke_config.replace(cache_dir=str(tmp_path), n_train=64, n_test=32)
    model, row = trained_student(config, "baseline", 0)
    _, weights = experiments.run_files(config, row["run_key"])
    assert weights.is_file() and not row["cached"]
    weights.unlink()  # a run cached before weights were kept: trained again, same numbers
    again, row2 = trained_student(config, "baseline", 0)
    assert weights.is_file() and row2["final_acc"] == row["final_acc"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
