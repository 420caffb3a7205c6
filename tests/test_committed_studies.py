"""igkd_lib.evidence.committed_studies: the paper-scale students' agreement and robustness as windows committed them,
in chapter 8's shapes."""
import pandas as pd
import pytest

from igkd_lib.campaign.run_studies import AGREEMENT_FIELDS, ROBUSTNESS_FIELDS
from igkd_lib.evidence import agreement, corruptions
from igkd_lib.evidence.committed_studies import read_committed_studies, verdict_inputs


def _write(folder, runs):
    """runs: (run_key, method, seed, study, variant, spearman, clean accuracy, noisy accuracy)."""
    shared = {"data_source": "offline", "device": "NVIDIA H200", "window": "w1"}
    agreement_rows, robustness_rows = [], []
    for key, method, seed, study, variant, spearman, clean, noisy in runs:
        run = {"run_key": key, "method": method, "seed": seed, "study": study, "variant": variant}
        agreement_rows.append({**run, "n_images": 500, "spearman": spearman, "iou": spearman / 2, **shared})
        for kind, severity, accuracy in (("clean", 0, clean), ("gaussian_noise", 5, noisy)):
            robustness_rows += [{**run, "kind": kind, "severity": severity, "subset": subset, "n": n,
                                 "accuracy": accuracy, **shared} for subset, n in (("all", 10_000), ("exact pixels",
                                                                                                     1_017))]
    folder.mkdir(parents=True)
    pd.DataFrame(agreement_rows, columns=AGREEMENT_FIELDS).to_csv(folder / "studies_agreement.csv", index=False)
    pd.DataFrame(robustness_rows, columns=ROBUSTNESS_FIELDS).to_csv(folder / "studies_robustness.csv", index=False)


def test_table1_runs_come_back_in_the_chapters_shapes(tmp_path):
    _write(tmp_path / "paper", [("k1", "kd_ig", 0, "table1", "default", 0.60, 92.0, 60.0),
                                ("k2", "kd_ig", 1, "table1", "default", 0.62, 92.5, 62.0),
                                ("k3", "baseline", 0, "table1", "default", 0.50, 91.0, 55.0),
                                ("k4", "baseline", 1, "table1", "default", 0.52, 91.5, 57.0),
                                ("k5", "kd_ig", 0, "table1", "default", 0.99, 99.0, 99.0),  # a second run: left out
                                ("k6", "kd_ig", 2, "controls", "shuffle_maps=True", 0.99, 99.0, 99.0)])
    committed = read_committed_studies("paper", tmp_path)
    assert list(committed.agreement["model"]) == ["kd_ig", "kd_ig", "baseline", "baseline"]
    assert "4 Table 1 runs (baseline 2, kd 0, ig 0, kd_ig 2)" in committed.line and "windows w1" in committed.line
    assert "profile paper · seeds 0, 1 · data offline · device NVIDIA H200" in committed.line
    welch = agreement.welch_by_method(committed.agreement)
    assert welch.loc[0, "n"] == "2 vs 2" and welch.loc[0, "KD + IG"] == "0.610"
    drops = corruptions.drop_welch(corruptions.mean_drop_per_run(committed.robustness))
    assert list(drops["subset"]) == ["all", "exact pixels"] and drops.loc[0, "KD + IG"] == "31.25"  # 92.25 - 61
    per_seed = agreement.per_seed_means(pd.DataFrame(columns=["model", "seed", "spearman", "iou"]))
    at_paper, _ = verdict_inputs("paper", per_seed, pd.DataFrame(), committed)
    assert len(at_paper) == 4  # a CPU build at paper judges on the committed students
    assert verdict_inputs("quick", per_seed, pd.DataFrame(), committed)[0] is per_seed  # shown beside, not mixed


def test_nothing_committed_yet_says_so(tmp_path):
    committed = read_committed_studies("paper", tmp_path)
    assert committed.agreement.empty and committed.robustness.empty and "none yet" in committed.line
    assert list(committed.agreement.columns)[:4] == ["model", "seed", "spearman", "iou"]


def test_a_damaged_file_is_named(tmp_path):
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "studies_agreement.csv").write_bytes(b"\xff\xfe\x00broken")
    with pytest.raises(ValueError, match="studies_agreement.csv does not read as CSV"):
        read_committed_studies("paper", tmp_path)
