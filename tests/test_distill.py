"""igkd_lib.training.distill: the KD loss against a hand computation."""
import math

import pytest
import torch
import torch.nn.functional as F

from igkd_lib.training.distill import kd_loss, soft_targets


def _hand_kd(s, t, y, temperature, alpha):
    total = 0.0
    for row in range(len(y)):
        ps = [math.exp(v) for v in s[row]]
        ce = -math.log(ps[y[row]] / sum(ps))
        qs = [math.exp(v / temperature) for v in s[row]]
        qt = [math.exp(v / temperature) for v in t[row]]
        qs = [q / sum(qs) for q in qs]
        qt = [q / sum(qt) for q in qt]
        kl = sum(b * math.log(b / a) for a, b in zip(qs, qt))
        total += (1 - alpha) * ce + alpha * temperature ** 2 * kl
    return total / len(y)


def test_kd_loss_matches_a_hand_computation():
    s = [[1.0, -0.5, 2.0], [0.3, 0.1, -1.2]]
    t = [[2.5, 0.0, 1.0], [-0.4, 1.7, 0.2]]
    y = [2, 1]
    got = kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), temperature=2.5, alpha=0.3)
    assert got.item() == pytest.approx(_hand_kd(s, t, y, 2.5, 0.3), rel=1e-5)


def test_alpha_zero_is_cross_entropy_and_needs_no_teacher():
    g = torch.Generator().manual_seed(0)
    s, y = torch.randn(16, 10, generator=g), torch.randint(0, 10, (16,), generator=g)
    assert torch.equal(kd_loss(s, None, y, temperature=4.0, alpha=0.0), F.cross_entropy(s, y))


def test_identical_logits_leave_only_the_hard_term():
    s, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    got = kd_loss(s, s.clone(), y, temperature=2.0, alpha=0.5)
    assert got.item() == pytest.approx(0.5 * F.cross_entropy(s, y).item(), abs=1e-6)


def test_soft_targets_sum_to_one_and_flatten_with_temperature():
    logits = torch.tensor([[3.0, 1.0, 0.0]])
    hot, warm = soft_targets(logits, 1.0), soft_targets(logits, 10.0)
    torch.testing.assert_close(hot.sum(1), torch.ones(1))
    assert warm.max() < hot.max()


@pytest.mark.parametrize("kwargs, name", [(dict(temperature=0.0, alpha=0.5), "temperature"),
                                          (dict(temperature=2.0, alpha=1.5), "alpha")])
def test_kd_loss_validates(kwargs, name):
    with pytest.raises(ValueError, match=name):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), **kwargs)


def test_kd_loss_needs_teacher_logits_when_alpha_positive():
    with pytest.raises(ValueError, match="teacher_logits"):
        kd_loss(torch.zeros(2, 3), None, torch.zeros(2, dtype=torch.long), temperature=2.0, alpha=0.5)
