"""igkd_lib.campaign.admission and budget: predictions from measured throughput, the clock."""
import time

import pytest
import torch

from igkd_lib.campaign.admission import SAFETY, Rate, calibrate, group_seconds
from igkd_lib.campaign.budget import Clock
from igkd_lib.campaign.window import _smaller
from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.training.wide import Member


def test_group_seconds_scales_with_members_epochs_and_images():
    rate = Rate(members=4, students_images_per_s=1000.0, overhead_s=10.0, calibration_s=1.0)
    one = group_seconds(rate, epochs=1, n_train=900, n_test=300)
    assert one == pytest.approx(SAFETY * (10.0 + 4 * (900 + 100) / 1000.0))
    assert group_seconds(rate, epochs=100, n_train=900, n_test=300) == pytest.approx(SAFETY * (10.0 + 400.0))


def test_smaller_group_sizes_skip_those_that_cannot_fit():
    assert _smaller(16, training_s=1600.0, maps_s=0.0, left=500.0) == 4  # 8 would need >= 800 s
    assert _smaller(16, training_s=1600.0, maps_s=450.0, left=500.0) == 0  # not even one run with the maps
    assert _smaller(1, training_s=10.0, maps_s=0.0, left=5.0) == 0


def test_calibrate_measures_a_positive_rate_on_real_training():
    torch.manual_seed(0)
    data = Cifar10(torch.randint(0, 256, (192, 3, 32, 32), dtype=torch.uint8), torch.arange(192) % 10,
                   torch.arange(192), "train", "offline")
    test = data.subset(torch.arange(20))
    config = make_config("smoke", student_batch_size=32, device="cpu", n_train=192, n_test=20)
    members = [Member(config, "baseline", 0), Member(config, "ig", 1)]
    rate = calibrate(members, teacher=None, maps=torch.rand(192, 32, 32), train=data, test=test,
                     device=torch.device("cpu"), steps=2, test_images=20)
    assert rate.members == 2 and rate.students_images_per_s > 0 and rate.overhead_s >= 0 and rate.calibration_s > 0
    with pytest.raises(ValueError, match="steps=3"):
        calibrate(members, teacher=None, maps=None, train=data, test=test, device=torch.device("cpu"), steps=3)


def test_clock_counts_down_and_adds_phases():
    clock = Clock(100.0)
    with clock.phase("a"):
        time.sleep(0.01)
    with clock.phase("a"):
        pass
    assert 0.01 <= clock.spent["a"] < 1.0 and 99.0 < clock.left() < 100.0
    with pytest.raises(ValueError, match="budget-s=0"):
        Clock(0)
