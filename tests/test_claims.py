"""Claims and verdicts: supported / contradicted / inconclusive / not tested, Holm, like-with-like, the sources."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from igkd_lib.evidence import claim_sources, claims

_KNOBS = {"baseline": (0.0, 0.0), "kd": (0.01, 0.0), "ig": (0.0, 0.1), "kd_ig": (0.01, 0.1)}


def _runs(centres: dict, seeds: int, sd: float = 0.2, p_values=(), source="offline") -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []

    def add(method, alpha, p, centre, key, **extra):
        rows.extend(dict(method=method, seed=s, final_acc=centre + rng.normal(0, sd), alpha=alpha, p=p,
                         temperature=2.5, blend=0.5, map_alignment="aligned", shuffle_maps=False,
                         run_key=f"{key}-{s}", data_source=source, profile="paper", **extra) for s in range(seeds))

    for method, centre in centres.items():
        add(method, *_KNOBS[method], centre, method)
    for p, centre in p_values:
        add("kd_ig", 0.01, p, centre, "kd" if p == 0 else f"p{p}")  # p = 0 is the KD run: same key
    return pd.DataFrame(rows)


def _verdict(table: pd.DataFrame, start: str) -> str:
    return table.loc[table["claim"].str.startswith(start), "verdict"].item()


def test_supported_contradicted_inconclusive_and_not_tested():
    good = claims.claims_table(_runs({"baseline": 90, "kd": 91, "ig": 90.8, "kd_ig": 92}, 6), "test")
    assert set(good["verdict"]) <= set(claims.VERDICTS) and list(good.columns) == claims.COLUMNS
    assert _verdict(good, "KD beats") == "supported" and _verdict(good, "KD + IG beats KD") == "supported"
    bad = claims.claims_table(_runs({"baseline": 92, "kd": 91, "ig": 90.8, "kd_ig": 90}, 6), "test")
    assert _verdict(bad, "KD beats") == "contradicted"
    flat = claims.claims_table(_runs({"baseline": 91, "kd": 91, "ig": 91, "kd_ig": 91}, 40, sd=0.1), "test")
    assert _verdict(flat, "KD beats") == "contradicted"  # the interval excludes any gain of 0.2 points
    noisy = claims.claims_table(_runs({"baseline": 91, "kd": 91.3, "ig": 91, "kd_ig": 91}, 3, sd=1.0), "test")
    assert _verdict(noisy, "KD beats") == "inconclusive"
    one = claims.claims_table(_runs({"baseline": 90, "kd": 91, "ig": 90.8, "kd_ig": 92}, 1), "test")
    assert _verdict(one, "KD beats") == "not tested"
    assert (claims.claims_table(pd.DataFrame(), "test")["verdict"] == "not tested").all()
    with pytest.raises(ValueError, match="final_acc"):
        claims.claims_table(pd.DataFrame({"method": ["kd"]}), "test")


def test_holm_can_turn_a_nominal_result_inconclusive():
    runs = _runs({"baseline": 91.0, "kd": 91.25, "ig": 91.0, "kd_ig": 91.0}, 10, sd=0.25)
    table = claims.claims_table(runs, "test")
    row = table[table["claim"].str.startswith("KD beats")].iloc[0]
    assert row["p_holm"] >= row["p"]
    assert (row["verdict"] == "supported") == (row["p_holm"] < claims.LEVEL)


def test_the_p_sweep_keeps_its_p0_arm_that_shares_the_kd_run():
    runs = _runs({"baseline": 90, "kd": 91, "ig": 90.8, "kd_ig": 92}, 4, p_values=[(0.0, 91.0), (0.5, 90.0)])
    table = claims.claims_table(runs, "test")
    row = table[table["claim"].str.startswith("p = 0.1")].iloc[0]
    assert row["verdict"] == "supported" and "p=0.0" in row["evidence"]  # the runner-up is the p = 0 arm
    assert row["n"] == "4 vs 4"  # each run once: the KD run and the kd_ig p=0 run are the same run


def test_interaction_claim_on_means():
    additive = _runs({"baseline": 90, "kd": 91, "ig": 91, "kd_ig": 92}, 8, sd=0.1)
    assert _verdict(claims.claims_table(additive, "t"), "KD and IG combine") == "contradicted"
    sub = _runs({"baseline": 90, "kd": 91, "ig": 91, "kd_ig": 91.2}, 8, sd=0.1)
    assert _verdict(claims.claims_table(sub, "t"), "KD and IG combine") == "supported"


def test_absolute_claim_like_with_like_and_only_on_canonical_data():
    theirs_mean = claims._official_arm("kd_ig").mean()
    close = _runs({"kd_ig": theirs_mean}, 10, sd=0.1, source="torchvision")
    assert _verdict(claims.claims_table(close, "t", canonical=True), "the KD + IG student reaches") == "supported"
    far = _runs({"kd_ig": theirs_mean - 3}, 10, sd=0.1, source="torchvision")
    assert _verdict(claims.claims_table(far, "t", canonical=True), "the KD + IG student reaches") == "contradicted"
    jpeg = claims.claims_table(close, "t", canonical=False)
    assert _verdict(jpeg, "the KD + IG student reaches") == "not tested"
    assert "not comparable" in jpeg.loc[jpeg["claim"].str.startswith("the KD + IG student"), "evidence"].item()


def test_official_claims_both_versions():
    table = claims.official_claims()
    assert table["source"].nunique() == 2
    assert (table.loc[table["claim"].str.startswith("KD + IG beats the student"), "verdict"] == "supported").all()
    best = table[table["claim"].str.startswith("the KD + IG student reaches")]
    assert (best["verdict"] == "supported").all() and best["evidence"].str.contains("best of 10: 92.45").any()


def test_size_latency_and_teacher_claims():
    assert claims.size_claim()["verdict"] == "supported"
    assert claims.latency_claim(None)["verdict"] == "not tested"
    assert claims.teacher_claim(90.16, 10_000, False, "t")["verdict"] == "not tested"
    assert claims.teacher_claim(90.16, 10_000, True, "t")["verdict"] == "contradicted"
    assert claims.teacher_claim(93.9, 10_000, True, "t")["verdict"] == "supported"


def test_findings_name_the_deciding_source():
    runs = _runs({"baseline": 90, "kd": 91, "ig": 90.8, "kd_ig": 92}, 3)
    table = claim_sources.evidence(runs=runs.assign(teacher_acc=90.16, teacher_origin="shipped", profile="quick"),
                            committed=pd.DataFrame())
    found = claim_sources.findings(table)
    assert found["claim"].is_unique and set(found["status"]) <= set(claims.VERDICTS)
    row = found[found["claim"].str.startswith("KD + IG beats the student")].iloc[0]
    assert row["status from"].startswith("authors' ten-run file, 2025-03-23")
    assert any(col.startswith("this build") for col in found.columns)
    power = claims.power_by_source(runs, "t")
    assert list(power["difference (points)"]) == [0.2, 0.4, 0.8]


def test_checkpoint_claim_from_measured_files():
    rows = pd.DataFrame({"note": ["", "", "skipped"], "reported_acc": [92.3, 91.4, 92.0],
                         "canonical_acc": [92.8, 91.9, np.nan], "canonical_ci_low": [91.1, 90.0, np.nan],
                         "canonical_ci_high": [94.2, 93.5, np.nan], "canonical_n": [1017, 1017, np.nan]})
    row = claims.checkpoint_claim(rows)
    assert row["verdict"] == "supported" and row["n"] == "2 files" and "2 of 2" in row["evidence"]
    assert claims.checkpoint_claim(rows.assign(canonical_ci_high=[92.0, 93.5, np.nan]))["verdict"] == "contradicted"
    assert claims.checkpoint_claim(None)["verdict"] == "not tested"


def test_command_line_prints_both_versions_and_a_power_table(capsys, tmp_path, monkeypatch):
    from igkd_lib import cli

    assert cli.main(["claims", "--source", "official"]) == 0
    out = capsys.readouterr().out
    assert "2025-03-18" in out and "2025-03-23" in out and "runs per arm" in out and "[   supported]" in out
    monkeypatch.setattr(claim_sources, "committed_results", lambda profile: pd.DataFrame())
    assert cli.main(["claims", "--source", "paper"]) == 1
    assert "no results/paper/runs.csv" in capsys.readouterr().out


def test_campaign_study_runs_never_count_as_table_1():
    """Overlay-source and compression runs of the GPU queue share Table 1's knobs but not its student or maps."""
    table1 = _runs({"baseline": 90, "kd": 91, "ig": 90.8, "kd_ig": 92}, 6).assign(study="table1", variant="default")
    studies = table1[table1["method"].isin(["baseline", "kd_ig"])].assign(
        final_acc=40.0, run_key=lambda t: t["run_key"] + "-s", study="compression", variant="student_cut=17")
    sobel = table1[table1["method"] == "kd_ig"].assign(final_acc=10.0, run_key=lambda t: t["run_key"] + "-sobel",
                                                       study="overlay_source", variant="map_source=sobel")
    both = pd.concat([table1, studies, sobel], ignore_index=True)
    alone, mixed = claims.claims_table(table1, "t"), claims.claims_table(both, "t")
    pd.testing.assert_frame_equal(alone, mixed)
    assert claims.variant_overrides("student_cut=7, p=0.1") == {"student_cut": "7", "p": "0.1"}
    assert claims.variant_overrides("default") == {}


def test_findings_flag_a_claim_on_which_paper_scale_sources_differ():
    claim = "KD beats the student trained alone"  # inconclusive in both versions of the authors' ten-run file
    alone = claim_sources.findings(claim_sources.evidence(runs=None, committed=pd.DataFrame())).set_index("claim")
    assert alone.loc[claim, "paper-scale sources differ"] == ""  # the two versions agree
    strong = _runs({"baseline": 90, "kd": 91.5, "ig": 90.8, "kd_ig": 92}, 10, sd=0.1)  # KD: +1.5 at sd 0.1
    found = claim_sources.findings(claim_sources.evidence(runs=None, committed=strong)).set_index("claim")
    flag = found.loc[claim, "paper-scale sources differ"]
    assert "committed paper-profile runs" in flag and ": supported" in flag and ": inconclusive" in flag
    # a small-profile build that differs is no paper-scale source: not flagged
    quick = strong.assign(profile="quick", teacher_acc=90.0, teacher_origin="shipped")
    found = claim_sources.findings(claim_sources.evidence(runs=quick, committed=pd.DataFrame())).set_index("claim")
    assert found.loc[claim, "paper-scale sources differ"] == ""


def test_rows_read_from_the_committed_runs_count_once():
    committed = _runs({"baseline": 90, "kd": 91, "ig": 90.8, "kd_ig": 92}, 3)
    read_back = committed.assign(origin="committed (results/paper, window w1)", teacher_acc=90.0,
                                 teacher_origin="paper")
    sources = set(claim_sources.evidence(runs=read_back, committed=committed)["source"])
    assert any(s.startswith("committed paper-profile") for s in sources)
    assert not any(s.startswith("this build (paper") for s in sources)
