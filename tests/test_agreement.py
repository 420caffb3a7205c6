"""Tests of igkd_lib.evidence.agreement: rank correlation and top-10 % overlap of maps, and their summary."""
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from igkd_lib import models
from igkd_lib.data.cifar10 import load_splits
from igkd_lib.evidence.agreement import (
    agreement_rows,
    model_maps,
    probe_images,
    spearman_per_image,
    summarise_agreement,
    top_fraction_iou,
)


def test_spearman_matches_scipy_and_is_invariant_to_monotone_maps():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 4, 5, generator=g), torch.rand(3, 4, 5, generator=g)
    ours = spearman_per_image(a, b)
    for i in range(3):
        assert ours[i] == pytest.approx(spearmanr(a[i].flatten(), b[i].flatten()).statistic)
    assert np.allclose(spearman_per_image(a, a.pow(3) * 7), 1.0)
    assert np.allclose(spearman_per_image(a, -a), -1.0)
    assert np.isnan(spearman_per_image(a, torch.ones_like(a))).all()


def test_top_fraction_iou_counts_shared_top_pixels():
    a = torch.arange(100.0).view(1, 10, 10)
    assert top_fraction_iou(a, a)[0] == 1.0
    assert top_fraction_iou(a, -a)[0] == 0.0
    b = a.clone().flatten()
    b[95:] = -1  # half of the top 10 are displaced, replaced by the next five
    assert top_fraction_iou(a, b.view(1, 10, 10))[0] == pytest.approx(5 / 15)
    with pytest.raises(ValueError, match="fraction"):
        top_fraction_iou(a, a, fraction=0)
    with pytest.raises(ValueError, match="same shape"):
        top_fraction_iou(a, a[:, :5])


def test_summary_gives_intervals_over_images_and_seeds():
    rows = pd.DataFrame({"model": "kd", "seed": np.repeat([0, 1, 2], 4), "image": np.tile(range(4), 3),
                         "spearman": [0.1, 0.2, 0.3, 0.4, 0.2, 0.3, 0.4, 0.5, 0.3, 0.4, 0.5, 0.6]})
    table = summarise_agreement(rows).iloc[0]
    assert table["n_images"] == 4 and table["n_seeds"] == 3 and table["mean"] == pytest.approx(0.35)
    assert table["seeds_ci_low"] < 0.35 < table["seeds_ci_high"]
    one = summarise_agreement(rows[rows["seed"] == 0]).iloc[0]
    assert np.isnan(one["seeds_ci_low"]) and one["images_ci_low"] < one["mean"] < one["images_ci_high"]


def test_a_model_agrees_with_itself_and_probes_are_fixed(smoke_config):
    test = load_splits(smoke_config)[1]
    probes = probe_images(test, 4, seed=1)
    assert torch.equal(probes.indices, probe_images(test, 4, seed=1).indices)
    torch.manual_seed(0)
    student = models.student(17).eval()
    config = smoke_config.replace(ig_steps=2)
    maps = model_maps(student, probes, config)
    rows = agreement_rows(maps, maps, probes, model="self", seed=0)
    assert maps.shape == (4, 32, 32) and np.allclose(rows["spearman"], 1) and np.allclose(rows["iou"], 1)
    assert list(rows["image"]) == probes.indices.tolist()
