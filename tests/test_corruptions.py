"""Tests of igkd_lib.evidence.corruptions: deterministic corruptions, the exact-pixel subset, accuracy drops."""
import numpy as np
import pytest
import torch
from torch import nn

from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.evidence.corruptions import CORRUPTIONS, corrupt, drop_table, exact_pixel_mask, robustness_rows


def _data(n=8, source="torchvision"):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return Cifar10(images, torch.arange(n) % 10, torch.arange(n), "test", source)


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corruptions_are_deterministic_and_grow_with_severity(kind):
    x = _data().images
    low, high = corrupt(x, kind, 1, seed=3), corrupt(x, kind, 5, seed=3)
    assert low.dtype == torch.uint8 and low.shape == x.shape
    assert torch.equal(high, corrupt(x, kind, 5, seed=3))
    def distance(y):
        return (y.float() - x.float()).abs().mean()

    assert 0 < distance(low) < distance(high)


def test_noise_depends_on_the_seed_and_contrast_keeps_the_mean():
    x = _data().images
    assert not torch.equal(corrupt(x, "gaussian_noise", 3, seed=0), corrupt(x, "gaussian_noise", 3, seed=1))
    flat = torch.full((1, 3, 4, 4), 100, dtype=torch.uint8)
    assert torch.equal(corrupt(flat, "contrast", 5), flat)


def test_bad_arguments_are_refused():
    x = _data().images
    with pytest.raises(ValueError, match="kind"):
        corrupt(x, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(x, "jpeg", 6)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(x.float(), "jpeg", 1)


def test_exact_pixel_mask_all_for_torchvision():
    assert exact_pixel_mask(_data()).all()


class _Mean(nn.Module):
    """Predicts class 1 when the image is bright, else 0."""

    def forward(self, x):
        bright = (x.mean(dim=(1, 2, 3)) > 0.5).float()
        return torch.stack([1 - bright, bright] + [torch.zeros_like(bright)] * 8, 1)


def test_robustness_rows_and_drops():
    images = torch.cat([torch.full((4, 3, 32, 32), 200), torch.full((4, 3, 32, 32), 80)]).to(torch.uint8)
    data = Cifar10(images, torch.tensor([1] * 4 + [0] * 4), torch.arange(8), "test", "torchvision")
    rows = robustness_rows({"m": (_Mean(), "baseline", 0)}, data, kinds=("brightness",), severities=(5,))
    assert set(rows["kind"]) == {"clean", "brightness"} and (rows["subset"] == "all").all()
    assert rows.loc[rows["kind"] == "clean", "accuracy"].item() == 100
    # brightness +0.3 lifts the dark half (80/255 + 0.3 > 0.5): they become "bright" (wrong)
    assert rows.loc[rows["kind"] == "brightness", "accuracy"].item() == 50
    drops = drop_table(rows)
    assert drops["drop"].item() == 50 and np.isnan(drops["ci_low"].item()) and drops["n_seeds"].item() == 1
