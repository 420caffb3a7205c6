"""igkd_lib.attribution.ig: equal to captum, batched == one at a time, completeness, clear errors."""
import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from captum.attr._utils.approximation_methods import approximation_parameters

from igkd_lib import models
from igkd_lib.attribution.ig import (
    AUTO_CHUNK,
    METHODS,
    chunk_size,
    gradient_x_input,
    integrated_gradients,
    quadrature,
    reduce_map,
    resolve_baseline,
    smoothgrad,
)
from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import load_splits


def calibrated_teacher(seed: int = 0) -> torch.nn.Module:
    """A fresh teacher whose BatchNorm statistics come from one batch, with a scaled head, in eval mode.

    Weights do not matter for equality with captum, but a fresh teacher's logits barely depend on
    the input (float32 noise would dominate); calibrated statistics make them vary by several units.
    """
    torch.manual_seed(seed)
    model = models.teacher()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    with torch.no_grad():
        model.train()(torch.rand(16, 3, 8, 8))
        model.classifier[1].weight.mul_(30)
    return model.eval()


def smooth_model(seed: int = 0) -> torch.nn.Module:
    """A small smooth classifier (tanh): the integral is well behaved, so completeness can be checked."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.AdaptiveAvgPool2d(4),
                               torch.nn.Flatten(), torch.nn.Linear(128, 10), torch.nn.Tanh(),
                               torch.nn.Linear(10, 10)).eval()


@pytest.fixture(scope="module")
def teacher():
    return calibrated_teacher()


@pytest.fixture(scope="module")
def batch(smoke_config):
    """Three real training images, cropped to 8x8 to keep the tests fast, and their labels."""
    train = load_splits(smoke_config)[0]
    return train.images[:3, :, 12:20, 12:20].float() / 255, train.labels[:3]


def _relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("method", [m for m in METHODS if m != "riemann_trapezoid"])
def test_equal_to_captum(teacher, batch, method):
    x, y = batch[0][:2], batch[1][:2]
    ours = integrated_gradients(teacher, x, y, n_steps=6, method=method, chunk_size=5).attributions
    theirs = IntegratedGradients(teacher).attribute(x, target=y, n_steps=6, method=method)
    assert ours.dtype == torch.float32 and ours.shape == x.shape
    assert _relative_gap(ours, theirs) <= 1e-4


def test_trapezoid_weights_sum_to_one_where_captums_sum_to_n_minus_1_over_n():
    n = 50
    _, weights = quadrature("riemann_trapezoid", n)
    captum_steps, _ = approximation_parameters("riemann_trapezoid")
    assert weights.sum() == pytest.approx(1.0)
    assert sum(captum_steps(n)) == pytest.approx((n - 1) / n)


@pytest.mark.parametrize("method", METHODS)
def test_rules_integrate_a_line_exactly_where_they_should(method):
    alphas, weights = quadrature(method, 7)
    assert np.all((alphas >= 0) & (alphas <= 1))
    assert weights.sum() == pytest.approx(1.0)
    exact = method in ("gausslegendre", "riemann_middle", "riemann_trapezoid")
    assert (abs(float((weights * alphas).sum()) - 0.5) < 1e-6) == exact


@pytest.mark.parametrize("which", ["teacher", "smooth"])
def test_batched_equals_one_at_a_time(teacher, batch, which):
    x, y = batch
    teacher = teacher if which == "teacher" else smooth_model()
    # The untrained teacher is chaotic: a different batch size changes float32 rounding and ReLU6 kinks
    # amplify it, so its chunks hold one image each (same forwards as alone); the smooth model's chunks
    # straddle images.
    chunk = 3 if which == "teacher" else 4
    together = integrated_gradients(teacher, x, y, n_steps=3, chunk_size=chunk).attributions
    alone = torch.cat([integrated_gradients(teacher, x[i:i + 1], y[i:i + 1], n_steps=3, chunk_size=64).attributions
                       for i in range(len(x))])
    assert _relative_gap(together, alone) <= 1e-5


def test_completeness_gap_shrinks_and_is_small_with_enough_steps(batch):
    model, (x, y) = smooth_model(), batch
    coarse = integrated_gradients(model, x, y, n_steps=2, return_delta=True)
    fine = integrated_gradients(model, x, y, n_steps=16, return_delta=True)
    with torch.no_grad():
        gap = (model(x) - model(torch.zeros_like(x))).gather(1, y.view(-1, 1)).squeeze(1)
    assert fine.delta.shape == (3,) and coarse.delta is not None
    assert float(fine.delta.abs().max()) <= 1e-4 * float(gap.abs().max())
    assert float(fine.delta.abs().sum()) < float(coarse.delta.abs().sum())


def test_completeness_delta_is_sum_minus_output_gap_on_the_teacher(teacher, batch):
    x, y = batch[0][:1], batch[1][:1]
    result = integrated_gradients(teacher, x, y, n_steps=4, return_delta=True)
    with torch.no_grad():
        gap = (teacher(x) - teacher(torch.zeros_like(x)))[0, y[0]]
    assert float(result.delta[0]) == pytest.approx(float(result.attributions.sum() - gap), rel=1e-4, abs=1e-4)


def test_no_weight_gradients_and_parameters_restored(batch):
    teacher = smooth_model()
    flags = [p.requires_grad for p in teacher.parameters()]
    integrated_gradients(teacher, batch[0][:1], batch[1][:1], n_steps=2)
    assert [p.requires_grad for p in teacher.parameters()] == flags
    assert all(p.grad is None for p in teacher.parameters())


def test_mean_baseline_is_the_cifar_mean_colour(batch):
    base = resolve_baseline("mean", batch[0])
    assert torch.allclose(base.flatten(), torch.tensor(models.CIFAR_MEAN))
    assert resolve_baseline("black", batch[0]).abs().sum() == 0


def test_tensor_baseline_equals_named_one(batch):
    teacher = smooth_model()
    x, y = batch[0][:1], batch[1][:1]
    named = integrated_gradients(teacher, x, y, n_steps=3, baseline="mean").attributions
    tensor = integrated_gradients(teacher, x, y, n_steps=3,
                                  baseline=resolve_baseline("mean", x).expand_as(x)).attributions
    assert torch.allclose(named, tensor)


def test_gradient_x_input_is_input_times_gradient(batch):
    teacher = smooth_model()
    x, y = batch[0][:2], batch[1][:2]
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(teacher(xr).gather(1, y.view(-1, 1)).sum(), xr)
    assert _relative_gap(gradient_x_input(teacher, x, y).attributions, grad * x) <= 1e-5


def test_smoothgrad_does_not_depend_on_chunking_and_sigma_zero_is_the_gradient(batch):
    teacher = smooth_model()
    x, y = batch[0][:2], batch[1][:2]
    a = smoothgrad(teacher, x, y, n_samples=3, sigma=0.1, chunk_size=2).attributions
    b = smoothgrad(teacher, x, y, n_samples=3, sigma=0.1, chunk_size=16).attributions
    assert _relative_gap(a, b) <= 1e-5
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(teacher(xr).gather(1, y.view(-1, 1)).sum(), xr)
    assert _relative_gap(smoothgrad(teacher, x, y, n_samples=2, sigma=0.0).attributions, grad) <= 1e-5


def test_reduce_map_sums_absolute_values_over_channels():
    attributions = torch.tensor([1.0, -2.0, 3.0]).view(1, 3, 1, 1).expand(2, 3, 4, 5)
    reduced = reduce_map(attributions)
    assert reduced.shape == (2, 4, 5) and torch.all(reduced == 6.0)


@pytest.mark.parametrize("kwargs, words", [
    (dict(method="simpson"), "method"),
    (dict(n_steps=0), "n_steps"),
    (dict(method="riemann_trapezoid", n_steps=1), "n_steps"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(baseline="white"), "baseline"),
    (dict(baseline=torch.zeros(5, 3, 8, 8)), "baseline"),
])
def test_bad_options_give_clear_errors(teacher, batch, kwargs, words):
    with pytest.raises(ValueError, match=words):
        integrated_gradients(teacher, batch[0][:1], batch[1][:1], **kwargs)


def test_bad_inputs_give_clear_errors(teacher, batch):
    x, y = batch[0][:2], batch[1][:2]
    with pytest.raises(ValueError, match="images"):
        integrated_gradients(teacher, (x * 255).to(torch.uint8), y)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        integrated_gradients(teacher, x * 255, y)
    with pytest.raises(ValueError, match="targets"):
        integrated_gradients(teacher, x, y[:1])
    with pytest.raises(ValueError, match="targets"):
        integrated_gradients(teacher, x, y.float())
    fresh = models.teacher()  # train mode
    with pytest.raises(ValueError, match="eval mode"):
        integrated_gradients(fresh, x, y)


def test_auto_chunk_is_whole_images_and_the_override_wins(monkeypatch):
    cpu = torch.device("cpu")
    auto = make_config("smoke", ig_chunk=0, ig_steps=16)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert chunk_size(auto, cpu) == 64
    assert chunk_size(auto.replace(ig_steps=50), cpu) == 50  # one image, never a split one
    assert chunk_size(auto.replace(ig_steps=50), torch.device("cuda")) == 1000
    monkeypatch.setattr(torch, "get_num_threads", lambda: 64)
    assert chunk_size(auto, cpu) == AUTO_CHUNK["cpu_max"]
    assert chunk_size(auto.replace(ig_chunk=7), cpu) == 7
