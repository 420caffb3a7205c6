"""Tests of igkd_lib.evidence.studies: the queue, the official students, the teacher on overlays, run weights."""
import pytest
import torch

from igkd_lib import models
from igkd_lib.config import STUDENT_CUTS, make_config
from igkd_lib.evidence import experiments
from igkd_lib.evidence.studies import (
    SOURCE_STUDY,
    beyond_paper_queue,
    official_students,
    teacher_on_overlays,
    trained_student,
)


def test_queue_order_and_that_every_entry_is_a_valid_config():
    queue = beyond_paper_queue(seeds=(0, 1))
    studies = [e.study for e in queue]
    assert studies[0] == "overlay source" and studies[-1] == "compression"
    assert studies.index("overlay source") < studies.index("teacher signal") < studies.index("attribution agreement")
    signals = {e.overrides["teacher_logits"]: e.methods for e in queue if e.study == "teacher signal"}
    assert signals == {"online_clean": ("kd_ig",), "cached": ("kd", "kd_ig")}  # online: Table 1; official: controls
    assert {e.overrides["map_source"] for e in queue if e.study == "overlay source"} == set(SOURCE_STUDY) - {"ig"}
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


def test_pareto_front_keeps_the_points_nothing_beats():
    from igkd_lib.evidence.studies import pareto_front

    cost = [1.0, 2.0, 3.0, 2.5, float("nan")]
    value = [50.0, 60.0, 55.0, 60.0, 99.0]
    assert pareto_front(cost, value).tolist() == [True, True, False, False, False]


def test_compression_points_join_sizes_latency_and_the_front():
    import pandas as pd

    from igkd_lib.evidence.studies import compression_points

    runs = pd.DataFrame([{"method": m, "student_cut": c, "seed": 0, "final_acc": acc, "parameters": p, "macs": 10 * p}
                         for m, c, acc, p in (("baseline", 5, 60.0, 500), ("kd_ig", 5, 62.0, 500),
                                              ("baseline", 15, 40.0, 16), ("kd_ig", 15, 39.0, 16))])
    latency = pd.DataFrame({"student_cut": [5, 15], "latency_ms": [4.0, 1.0], "latency_iqr_ms": [0.1, 0.1]})
    points = compression_points(runs, latency).set_index(["method", "student_cut"])
    assert points.loc[("kd_ig", 5), "latency_ms"] == 4.0 and points.loc[("baseline", 15), "macs"] == 160
    assert points["front"].to_dict() == {("baseline", 5): False, ("kd_ig", 5): True, ("baseline", 15): True,
                                         ("kd_ig", 15): False}


def test_latency_by_cut_reads_chapter_6_or_measures(smoke_config, monkeypatch):
    from igkd_lib.bench import latency
    from igkd_lib.evidence import studies

    committed = latency.load_results()
    if committed is not None:
        table, note = studies.latency_by_cut(smoke_config, (15, 5))
        expected = committed["sweep"].query("batch_size == 1 and cut == 15")["median_ms"].iloc[0]
        assert table["student_cut"].tolist() == [5, 15] and table["latency_ms"].iloc[1] == expected
        assert "committed" in note
    monkeypatch.setattr(latency, "load_results", lambda *a, **k: None)
    table, note = studies.latency_by_cut(smoke_config, (17,), repeats=2)
    assert table["student_cut"].tolist() == [17] and table["latency_ms"].iloc[0] > 0 and "measured here" in note

