"""igkd_lib.models: the paper's exact architectures, pixel-space inputs, MACs."""
import pytest
import torch

from igkd_lib import models


def test_teacher_has_the_papers_parameter_count():
    assert models.count_parameters(models.teacher()) == 2_236_682


@pytest.mark.parametrize("cut, expected", sorted(models.STUDENT_PARAMETERS.items()))
def test_student_parameter_counts(cut, expected):
    assert models.count_parameters(models.student(cut)) == expected


def test_paper_student_is_the_teachers_first_blocks():
    t, s = models.teacher(), models.student(5)
    assert len(s.features) == len(t.features) - 5
    assert s.classifier[1].in_features == 96
    for a, b in zip(s.features.state_dict().values(), list(t.features.state_dict().values())):
        assert a.shape == b.shape


def test_macs_match_the_paper():
    assert models.count_macs(models.teacher()) == pytest.approx(88.0e6, rel=0.005)
    assert models.count_macs(models.student(5)) == pytest.approx(58.7e6, rel=0.005)


def test_stem_and_second_stage_keep_resolution():
    t = models.teacher().eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        h = t.features[:4](x)
    assert h.shape[-1] == 32  # stride 1 stem and stride 1 second stage


def test_models_normalise_inside():
    t = models.teacher().eval()
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(models.CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(models.CIFAR_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        pooled = torch.nn.functional.adaptive_avg_pool2d(t.features((x - mean) / std), 1)
        manual = t.classifier(torch.flatten(pooled, 1))
        assert torch.allclose(t(x), manual, atol=1e-5)
    assert "mean" not in t.state_dict()  # not saved: one rule, not a weight


def test_bad_cut():
    with pytest.raises(ValueError, match="cut=0"):
        models.student(0)


def test_student_defaults_are_the_official_students():
    """No dropout and raw [0, 1] pixels by default; the teacher keeps its normalisation."""
    s = models.student(5)
    assert not s.normalise and s.classifier[0].p == 0.0
    assert models.teacher().normalise
    variant = models.student(5, dropout=0.2, normalise=True)
    assert variant.normalise and variant.classifier[0].p == 0.2
    with pytest.raises(ValueError, match="dropout"):
        models.student(5, dropout=1.0)
