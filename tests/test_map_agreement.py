"""igkd_lib.evidence.map_agreement: the agreement study's numbers without scipy (as a GPU window computes them)."""
import numpy as np
import pytest
import torch
from scipy.stats import rankdata, spearmanr

from igkd_lib.evidence.map_agreement import average_ranks, spearman_per_image


def test_average_ranks_are_scipys_with_ties():
    g = torch.Generator().manual_seed(1)
    values = torch.randint(0, 4, (5, 30), generator=g).double().numpy()  # many ties per row
    values[0] = 0.0  # one constant row
    assert np.array_equal(average_ranks(values), rankdata(values, axis=1))


def test_spearman_with_tied_zero_pixels_is_scipys():
    """Black pixels have exactly zero attribution against a black baseline: maps with many tied zeros."""
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(4, 8, 8, generator=g), torch.rand(4, 8, 8, generator=g)
    a[:, :3] = 0.0
    b[:, :, :2] = 0.0
    ours = spearman_per_image(a, b)
    for i in range(4):
        assert ours[i] == pytest.approx(spearmanr(a[i].flatten(), b[i].flatten()).statistic, abs=1e-12)
