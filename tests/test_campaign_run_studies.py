"""igkd_lib.campaign.run_studies: a window measures each finished Table 1 student as chapter 8 does, and what comes back
is checked before it is committed."""
import pytest
import torch

from igkd_lib import models
from igkd_lib.campaign.run_studies import WindowStudies, check_study, csv_rows
from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import load_splits, stratified_subset
from igkd_lib.evidence import agreement, corruptions

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    config = make_config("smoke", n_train=64, n_test=200, cache_dir=str(tmp_path_factory.mktemp("cache")))
    test = load_splits(config)[1]
    torch.manual_seed(0)
    teacher, student = models.teacher().eval(), models.student(17).eval()
    studies = WindowStudies(config, teacher, test, CPU)
    assert studies.predicted_s(0) == 0.0 and studies.predicted_s(2) == 30.0 + 2 * 5.0  # guesses until measured
    record = studies.measure(student)
    return config, test, teacher, student, studies, record


@pytest.mark.slow
def test_a_students_record_is_what_chapter_8_computes(measured):
    config, test, teacher, student, studies, record = measured
    plan = config.plan("studies", "cpu")
    probes = agreement.probe_images(test, plan["n_probe"], seed=0)
    rows, _ = agreement.agreement_study(teacher, {"s": (student, "kd_ig", 0)}, probes, config)
    assert record["agreement"] == {"n_images": len(probes), "spearman": pytest.approx(rows["spearman"].mean()),
                                   "iou": pytest.approx(rows["iou"].mean())}
    robust = stratified_subset(test, plan["n_robust"], seed=1)
    expected = corruptions.robustness_rows({"s": (student, "kd_ig", 0)}, robust, severities=plan["severities"])
    got = [(r["kind"], r["severity"], r["subset"], r["n"], pytest.approx(r["accuracy"])) for r in record["robustness"]]
    assert got == list(expected[["kind", "severity", "subset", "n", "accuracy"]].itertuples(index=False, name=None))
    assert studies.summary()["n_probe"] == len(probes) and studies.student_s > 0 and studies.setup_s > 0
    assert studies.predicted_s(1) == pytest.approx(studies.student_s)  # built: no set-up any more


def test_a_returned_record_is_checked_field_by_field(measured):
    record = {"run_key": "abc", **measured[-1]}
    assert check_study(record, {"abc"}, "studies.jsonl line 1") is record
    with pytest.raises(ValueError, match="line 1: run_key 'abc' is not a finished run of this window"):
        check_study(record, {"other"}, "studies.jsonl line 1")
    bad = [{**record, "agreement": {**record["agreement"], "spearman": 1.5}},
           {**record, "agreement": {**record["agreement"], "n_images": 0}},
           {**record, "robustness": [{**record["robustness"][0], "kind": "fog"}]},
           {**record, "robustness": [{**record["robustness"][0], "severity": 3}]},  # clean at severity 3
           {**record, "robustness": [{**record["robustness"][1], "accuracy": float("nan")}]},
           {**record, "robustness": []}, {**record, "run_key": "../x"}]
    for wrong in bad:
        with pytest.raises(ValueError, match="is not allowed"):
            check_study(wrong, {"abc", "../x"}, "studies.jsonl line 1")


def test_a_record_becomes_rows_of_the_committed_files(measured):
    record = {"run_key": "abc", **measured[-1]}
    row = {"method": "kd_ig", "seed": 3, "study": "table1", "variant": "default", "data_source": "offline"}
    agreement_rows, robustness_rows = csv_rows(record, row, {"device": "NVIDIA H200", "window": "w1"})
    assert agreement_rows == [{"run_key": "abc", "method": "kd_ig", "seed": 3, "study": "table1",
                               "variant": "default", **record["agreement"], "data_source": "offline",
                               "device": "NVIDIA H200", "window": "w1"}]
    assert len(robustness_rows) == len(record["robustness"]) and robustness_rows[0]["kind"] == "clean"
