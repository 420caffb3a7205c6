"""igkd_lib.evidence.robustness / robustness_tables: deterministic versions, paired statistics that use the pairing, the
committed study's files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as scipy_stats
from torch import nn

from igkd_lib.cli import build_parser
from igkd_lib.config import make_config
from igkd_lib.data import Cifar10
from igkd_lib.evidence import robustness, robustness_tables


class _Brightness(nn.Module):
    """Predicts a class from the image's mean brightness (deterministic, sensitive to every corruption)."""

    def forward(self, x):
        level = (x.mean(dim=(1, 2, 3)) * 10).clamp(0, 9.99).floor().long()
        return nn.functional.one_hot(level, 10).float()


def _data(n=40):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return Cifar10(images, torch.arange(n) % 10, torch.arange(n), "test", "torchvision")


def test_every_version_is_deterministic_and_cached_versions_are_reused(tmp_path):
    config = make_config("smoke", eval_batch_size=16, device="cpu")
    models = {"a": _Brightness(), "b": _Brightness()}
    first = robustness.predict_versions(models, _data(), config, tmp_path / "cache", progress=False)
    again = robustness.predict_versions(models, _data(), config, None, progress=False)
    assert first.shape == (2, 1 + 5 * len(robustness.SEVERITIES), 40) and np.array_equal(first, again)
    assert len(list((tmp_path / "cache").glob("pred_*.npy"))) == first.shape[1]
    other_noise = robustness.predict_versions(models, _data(), config, None, seed=1, progress=False)
    kinds = [k for k, _, _ in robustness.versions()]
    noise = [i for i, k in enumerate(kinds) if k == "gaussian_noise"]
    assert not np.array_equal(first[:, noise], other_noise[:, noise])  # the seed is the noise's
    assert np.array_equal(np.delete(first, noise, 1), np.delete(other_noise, noise, 1))
    with pytest.raises(ValueError, match="severities"):
        robustness.versions((0, 3))


def _store(right: np.ndarray, overlay=(True, True, True, False, False, False), exact_every=4) -> dict:
    """A store from correctness (models, versions, images): prediction = label where right, else label + 1."""
    n = right.shape[2]
    labels = np.arange(n) % 10
    predictions = np.where(right, labels, (labels + 1) % 10).astype(np.uint8)
    methods = ["IG", "KD_IG", "KD_IG", "KD", "KD", "Student"]
    models = pd.DataFrame({"label": [f"m{i}" for i in range(len(overlay))], "file": [f"m{i}.pt" for i in range(6)],
                           "sha256": ["0" * 64] * 6, "method": methods, "official_method": methods,
                           "training_set": ["full", "full", "random 80%", "full", "random 80%", "random 80%"],
                           "overlay": list(overlay)})
    kinds = pd.DataFrame({"kind": ["clean", "jpeg", "contrast"], "severity": [0, 3, 3]})
    return {"predictions": predictions, "labels": labels, "indices": np.arange(n),
            "exact": np.arange(n) % exact_every == 0, "models": models, "versions": kinds, "agreement": None}


def _correlated(n=4000, seed=0):
    """Both arms fail on the same hard images under corruption; the overlay arm a little less often."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.3
    right = np.ones((6, 3, n), bool)
    for m in range(6):
        miss = 0.10 if m < 3 else 0.14
        right[m, 1:] = ~(hard & (rng.random((2, n)) < 0.8)) & ~(rng.random((2, n)) < miss)
    return right


def test_shuffling_one_arms_per_image_results_changes_the_interval():
    right = _correlated()
    paired = robustness_tables.paired_table(_store(right))
    shuffled_right = right.copy()
    order = np.random.default_rng(1).permutation(right.shape[2])
    shuffled_right[3:] = right[3:][:, :, order]  # the non-overlay arm's images in another order
    shuffled = robustness_tables.paired_table(_store(shuffled_right, exact_every=1))
    pick = lambda t: t[(t["contrast"] == robustness_tables.OVERLAY_CONTRAST) & (t["kind"] == "jpeg")  # noqa: E731
                       & (t["subset"] == "all")].iloc[0]
    before, after = pick(paired), pick(shuffled)
    assert before["mean_a"] == pytest.approx(after["mean_a"]) and before["mean_b"] == pytest.approx(after["mean_b"])
    assert before["difference"] == pytest.approx(after["difference"])
    width = lambda r: r["ci_high"] - r["ci_low"]  # noqa: E731
    assert width(before) < 0.8 * width(after)  # pairing removes the shared hard images' variance
    assert before["boot_high"] - before["boot_low"] < 0.8 * (after["boot_high"] - after["boot_low"])


def test_paired_difference_matches_mcnemar_and_its_bootstrap_the_t_interval():
    rng = np.random.default_rng(2)
    a = rng.random(3000) < 0.90
    b = np.where(rng.random(3000) < 0.95, a, ~a)  # 5 % discordant, tilted towards b wrong
    b[np.flatnonzero(a & ~b)[:20]] = True
    d = robustness_tables.paired_difference(a.astype(float), b.astype(float), n_boot=4000)
    discordant_a, discordant_b = int((a & ~b).sum()), int((~a & b).sum())
    chi2 = (discordant_a - discordant_b) ** 2 / (discordant_a + discordant_b)
    mcnemar_p = float(scipy_stats.chi2.sf(chi2, 1))
    assert d["p"] == pytest.approx(mcnemar_p, rel=0.05)
    exact = scipy_stats.binomtest(discordant_a, discordant_a + discordant_b).pvalue
    assert (d["p"] < 0.05) == (exact < 0.05)
    assert d["difference"] == pytest.approx((discordant_a - discordant_b) / 3000)
    assert d["boot_low"] == pytest.approx(d["ci_low"], abs=0.002) and d["boot_high"] == pytest.approx(d["ci_high"],
                                                                                                     abs=0.002)
    with pytest.raises(ValueError, match="same length"):
        robustness_tables.paired_difference([1.0, 2.0], [1.0])


def test_rows_name_their_checkpoint_and_drops_hold_per_subset():
    right = _correlated(400)
    rows = robustness_tables.accuracy_rows(_store(right))
    assert len(rows) == 6 * 3 * 2 and set(rows["subset"]) == {"all", "exact pixels"}
    assert rows["file"].str.endswith(".pt").all() and (rows["sha256"].str.len() == 64).all()
    one = rows[(rows["label"] == "m0") & (rows["kind"] == "jpeg") & (rows["subset"] == "all")].iloc[0]
    assert one["drop"] == pytest.approx(100 * (1 - right[0, 1].mean()))
    assert one["ci_low"] < one["accuracy"] < one["ci_high"] and one["drop_ci_low"] < one["drop"]
    assert rows.loc[rows["kind"] == "clean", "drop"].isna().all()


def test_findings_supported_over_images_but_not_over_three_students():
    store = _store(_correlated(6000))
    table = robustness_tables.findings_table(store)
    over_images = table[table["claim"].str.contains("paired over images") & table["claim"].str.contains("all")]
    assert over_images["verdict"].tolist() == ["supported"]
    assert table["p_holm"].notna().all() and (table["source"] == robustness_tables.SOURCE).all()
    assert set(table.loc[table["claim"].str.contains("Welch"), "n"]) == {"3 vs 3 students"}
    contradicted = robustness_tables.findings_table(_store(_correlated(6000)[[3, 4, 5, 0, 1, 2]]))
    assert contradicted.loc[contradicted["claim"].str.contains("paired over images"), "verdict"].eq(
        "contradicted").all()


def test_save_and_load_round_trip(tmp_path):
    store = _store(_correlated(200))
    store["agreement"] = pd.DataFrame([{"model": "x", "label": f"m{m}", "image": i, "iou": 0.2,
                                        "spearman": 0.1 * m + 0.01 * i * (m % 2)} for m in range(6) for i in range(12)])
    store["provenance"] = {"commit": "abc"}
    robustness.save(store, tmp_path)
    back = robustness.load(tmp_path)
    assert np.array_equal(back["predictions"], store["predictions"]) and back["provenance"] == {"commit": "abc"}
    agreement = back["paired"][back["paired"]["measure"] == "Spearman ρ"]
    assert len(agreement) == 3 and agreement["difference"].iloc[0] == pytest.approx(0.1 - 0.4 - 0.055 / 3)
    assert robustness.load(tmp_path / "absent") is None


def test_the_command_has_its_flags():
    args = build_parser().parse_args(["official", "--robustness", "--recompute"])
    assert args.robustness and args.recompute


def test_the_committed_study_measured_the_six_published_files():
    from igkd_lib.evidence.official import checkpoints

    store = robustness.load()
    if store is None:
        pytest.skip("results/robustness/ holds no committed study")
    published = {c.name: c.sha256 for c in checkpoints()}
    rows = store["rows"]
    assert len(store["models"]) == 6 and all(published[f] == s for f, s in zip(rows["file"], rows["sha256"]))
    assert store["predictions"].shape == (6, len(robustness.versions()), len(store["labels"]))
    assert set(rows["subset"]) == {"all", "exact pixels"} and store["exact"].sum() == rows.loc[
        rows["subset"] == "exact pixels", "n"].iloc[0]
    assert len(store["agreement"]) == 6 * store["provenance"]["n_probes"] >= 6 * 256
    for key in ("command", "commit", "data_source", "device", "precision", "written", "seeds"):
        assert store["provenance"][key]


def test_the_figure_draws_one_line_per_student_coloured_by_the_overlay():
    import matplotlib

    matplotlib.use("Agg")
    from igkd_lib.book.plots.robustness import OVERLAY_COLOURS, accuracy_by_severity

    store = _store(_correlated(200))
    figure = accuracy_by_severity(robustness_tables.accuracy_rows(store))
    axes = [ax for ax in figure.axes if ax.lines]
    assert len(axes) == 2 * 2  # subsets x corruption families (jpeg, contrast)
    colours = [line.get_color() for line in axes[0].lines]
    assert colours == [OVERLAY_COLOURS[bool(o)] for o in store["models"]["overlay"]]
    assert [list(line.get_xdata()) for line in axes[0].lines][0] == [0, 3]
