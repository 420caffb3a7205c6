"""igkd_lib.evidence.study_claims: the verdicts of the studies beyond the paper, their storage and the findings list."""
import numpy as np
import pandas as pd
import pytest

from igkd_lib.config import make_config
from igkd_lib.evidence import study_claims
from igkd_lib.evidence.committed_studies import CommittedStudies


def _runs(column, arms: dict) -> pd.DataFrame:
    return pd.DataFrame([{column: arm, "method": "kd_ig", "seed": i, "final_acc": v}
                         for arm, values in arms.items() for i, v in enumerate(values)])


def _verdict(table, words):
    rows = table[table["claim"].str.contains(words, regex=False)]
    assert len(rows) == 1, words
    return rows.iloc[0]


def test_every_study_is_listed_and_untested_without_data():
    table = study_claims.study_table("nowhere")
    assert list(dict.fromkeys(table["study"])) == list(study_claims.STUDIES)
    assert set(table["verdict"]) == {"not tested"}


def test_sources_supported_contradicted_and_one_run_inconclusive():
    rng = np.random.default_rng(0)
    runs = _runs("map_source", {"ig": 80 + rng.normal(0, 0.1, 6), "sobel": 70 + rng.normal(0, 0.1, 6),
                                "constant": 90 + rng.normal(0, 0.1, 6)})
    table = study_claims.study_table("test", sources=runs,
                                     signals=_runs("teacher_logits", {"online": [50], "online_clean": [49]}))
    assert _verdict(table, "Sobel")["verdict"] == "supported"
    assert _verdict(table, "constant map")["verdict"] == "contradicted"
    assert _verdict(table, "untrained")["verdict"] == "not tested"
    clean = _verdict(table, "without the overlay")
    assert clean["verdict"] == "inconclusive" and clean["difference"] == pytest.approx(1.0) and clean["n"] == "1 vs 1"


def test_teacher_row_is_a_paired_difference_over_images():
    clean = np.ones(40)
    overlaid = np.r_[np.zeros(20), np.ones(20)]
    row = _verdict(study_claims.study_table("t", teacher={"clean": clean, "overlaid": overlaid}), "lowers the teacher")
    assert row["difference"] == pytest.approx(-50.0) and row["ci_high"] < 0 and row["verdict"] == "supported"
    assert row["n"] == "40 images"


def test_robustness_direction_and_compression_interaction():
    per_run = pd.DataFrame([{"method": m, "seed": s, "subset": "all", "drop": d + 0.01 * s}
                            for m, d in (("kd_ig", 2.0), ("baseline", 6.0)) for s in range(4)])
    runs = pd.DataFrame([{"method": m, "student_cut": c, "seed": s, "final_acc": base + gain * (m == "kd_ig") + 0.1 * s}
                         for c, base, gain in ((5, 80, 1.0), (15, 50, 5.0)) for m in ("baseline", "kd_ig")
                         for s in range(4)])
    table = study_claims.study_table("t", robustness=per_run, compression=runs)
    assert _verdict(table, "lose less accuracy")["verdict"] == "supported"  # smaller drop: the question's direction
    grows = _verdict(table, "grows as the student shrinks")
    assert grows["difference"] == pytest.approx(4.0) and grows["n"] == "4/4/4/4"
    assert _verdict(table, "at cut 15")["difference"] == pytest.approx(5.0)


def test_save_load_and_findings_rows(tmp_path):
    config = make_config("smoke", cache_dir=str(tmp_path))
    assert study_claims.load(config) is None
    assert set(study_claims.findings_rows(None)["status"]) == {"not tested"}
    table = study_claims.study_table("test", signals=_runs("teacher_logits", {"online": [50, 51], "cached": [40, 41]}))
    study_claims.save(config, table, {"caption": "provenance"})
    loaded, meta = study_claims.load(config)
    assert meta == {"caption": "provenance"} and list(loaded["verdict"]) == list(table["verdict"])
    rows = study_claims.findings_rows(loaded)
    assert list(rows.columns) == ["study", "question", "status", "source", "n", "result"] and len(rows) == len(table)


def test_committed_table_reads_the_queue_studies_beside_table_1():
    rows = [{"study": "table1", "variant": "default", "method": m, "seed": s, "final_acc": acc + s}
            for m, acc in (("baseline", 90.0), ("kd_ig", 92.0)) for s in range(3)]
    rows += [{"study": "overlay_source", "variant": "map_source=sobel", "method": "kd_ig", "seed": s,
              "final_acc": 80.0 + s}
             for s in range(3)]
    rows += [{"study": "compression", "variant": "student_cut=17", "method": m, "seed": s, "final_acc": acc + s}
             for m, acc in (("baseline", 40.0), ("kd_ig", 41.0)) for s in range(3)]
    table = study_claims.committed_table(pd.DataFrame(rows), measured=_NOTHING_MEASURED)
    assert _verdict(table, "Sobel")["difference"] == pytest.approx(12.0)
    assert _verdict(table, "at cut 17")["difference"] == pytest.approx(1.0)
    assert _verdict(table, "grows as the student shrinks")["difference"] == pytest.approx(-1.0)
    assert "untrained" not in " ".join(table["claim"])  # questions without runs are left to other sources
    empty = pd.DataFrame(columns=["method", "final_acc"])
    assert study_claims.committed_table(empty, measured=_NOTHING_MEASURED) is None


_NOTHING_MEASURED = CommittedStudies(pd.DataFrame(), pd.DataFrame(), "none")


def test_committed_table_reads_the_students_the_windows_measured():
    agreement = pd.DataFrame([{"model": m, "seed": s, "spearman": base + s / 100, "iou": base / 2}
                              for m, base in (("baseline", 0.5), ("kd_ig", 0.6)) for s in range(3)])
    robustness = pd.DataFrame([{"model": f"{m} s{s}", "method": m, "seed": s, "kind": kind, "severity": severity,
                                "subset": "all", "n": 10_000, "accuracy": accuracy + s}
                               for m, drop in (("baseline", 30.0), ("kd_ig", 25.0)) for s in range(3)
                               for kind, severity, accuracy in (("clean", 0, 90.0), ("contrast", 5, 90.0 - drop))])
    table = study_claims.committed_table(pd.DataFrame(), measured=CommittedStudies(agreement, robustness, "3 + 3"))
    assert _verdict(table, "(Spearman)")["difference"] == pytest.approx(0.1)
    assert _verdict(table, "lose less accuracy")["difference"] == pytest.approx(-5.0)
    assert set(table["source"]) == {"committed paper-profile runs"}
