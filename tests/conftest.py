"""Shared fixtures of the test suite.

The suite runs on CPU with the ``smoke`` profile; tests that take more than a few seconds are
marked ``slow`` (they still run in CI). Notebooks are validated separately with ``--nbval``
(see the Makefile's ``test`` target and ``tests/nbval_sanitize.cfg``).
"""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root folder."""
    return ROOT


@pytest.fixture(scope="session")
def smoke_config():
    """The smoke profile's config (shared caches, so teacher and data are reused across tests)."""
    from igkd_lib.config import make_config

    return make_config("smoke")


@pytest.fixture
def float64():
    """Tensors default to float64 for the test, float32 again after it."""
    import torch

    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def randomised_bn_teacher():
    """A small network with BatchNorm whose statistics and affine weights are random (so folding them is not
    trivial), in eval mode: the teacher of the GPU engine's equality tests."""
    import torch

    from igkd_lib import models

    torch.manual_seed(0)
    net = models.student(17, normalise=True)
    g = torch.Generator().manual_seed(5)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return net.eval()
