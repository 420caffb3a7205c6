"""igkd_lib.campaign.maps_check: the agreement of bf16 maps with fp32 ones, measured before bf16 is used."""
import torch

from igkd_lib import models
from igkd_lib.campaign.maps_check import bf16_agreement, spearman_rows
from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import Cifar10


def test_spearman_rows_is_one_for_the_same_order_and_minus_one_reversed():
    a = torch.rand(3, 50, dtype=torch.float64)
    assert torch.allclose(spearman_rows(a, a * 7 + 1), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(spearman_rows(a, -a), -torch.ones(3, dtype=torch.float64))


def test_bf16_agreement_compares_real_maps():
    torch.manual_seed(0)
    teacher = models.teacher().eval()
    data = Cifar10(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), torch.arange(4), torch.arange(4), "train",
                   "offline")
    result = bf16_agreement(make_config("smoke", ig_steps=4, ig_chunk=16), teacher, data, images=4)
    assert result["images"] == 4 and -1.0 <= result["spearman_min"] <= result["spearman_mean"] <= 1.0
    assert result["spearman_mean"] > 0.5 and 0.0 < result["max_rel_diff"] < 1.0  # close, not identical
