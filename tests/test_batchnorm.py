"""igkd_lib.training.batchnorm: running statistics recomputed exactly, nothing else changed."""
import pytest
import torch

from igkd_lib import models
from igkd_lib.training.batchnorm import batchnorm_layers, recalibrate


def images(n: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_statistics_become_the_clean_images_averages_and_the_weights_stay():
    torch.manual_seed(0)
    model = models.student(15).train()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "batches" not in k}
    x = images()
    used = recalibrate(model, x, batch_size=40)
    first = batchnorm_layers(model)[0]
    with torch.no_grad():  # the first BatchNorm's input: the stem convolution of the [0, 1] pixels
        h = model.features[0][0](x.float() / 255)
    assert used == 40 and model.training and first.momentum == 0.1
    assert torch.allclose(first.running_mean, h.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(first.running_var, h.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-6)
    for key, value in model.state_dict().items():
        if key in weights:
            assert torch.equal(value, weights[key]), key


def test_it_fixes_statistics_that_lag_the_weights():
    torch.manual_seed(0)
    model = models.student(15)
    for layer in batchnorm_layers(model):  # stale statistics, as after a few steps with momentum 0.1
        layer.running_mean.fill_(3.0)
        layer.running_var.fill_(0.01)
    x = images(64)
    with torch.no_grad():
        batch_mode = model.train()(x.float() / 255)
        stale = model.eval()(x.float() / 255)
        recalibrate(model, x, batch_size=64)
        fresh = model.eval()(x.float() / 255)
    assert (fresh - batch_mode).abs().max() < 1e-3 * batch_mode.abs().max() + 1e-4
    assert (stale - batch_mode).abs().max() > 10 * (fresh - batch_mode).abs().max()


def test_limit_batches_and_dropout():
    torch.manual_seed(0)
    model = models.student(15, dropout=0.5).eval()
    x = images(50)
    recalibrate(model, x, batch_size=7, limit=21)
    once = [layer.running_mean.clone() for layer in batchnorm_layers(model)]
    recalibrate(model, x[:21], batch_size=7)
    assert not model.training
    assert all(torch.equal(a, layer.running_mean) for a, layer in zip(once, batchnorm_layers(model)))
    assert recalibrate(torch.nn.Linear(3, 2), x) == 0


@pytest.mark.parametrize("kwargs, words", [(dict(batch_size=0), "batch_size"), (dict(limit=0), "limit")])
def test_bad_arguments_name_the_parameter(kwargs, words):
    with pytest.raises(ValueError, match=words):
        recalibrate(models.student(15), images(4), **kwargs)
    with pytest.raises(ValueError, match="uint8"):
        recalibrate(models.student(15), images(4).float())
