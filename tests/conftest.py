"""Shared fixtures of the test suite.

The suite runs on CPU with the ``smoke`` profile; tests that take more than a few seconds are
marked ``slow`` (they still run in CI). Notebooks are validated separately with ``--nbval``
(see the Makefile's ``test`` target and ``tests/nbval_sanitize.cfg``).
"""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# Files whose tests are independent and long: under pytest-xdist each of their tests may go to any worker.
SPREAD_FILES = ("tests/test_wide.py", "tests/test_bench_campaign.py")
# Files holding the longest tests (a CPU rehearsal of a GPU window each): collected first, so that a worker starts
# them at once instead of leaving them for last.
FIRST_FILES = ("tests/test_campaign_window.py", "tests/test_campaign_resume.py")


def pytest_collection_modifyitems(config, items):
    """:data:`FIRST_FILES` first, in that order, every other test after them in its collected order."""
    rank = {path: i for i, path in enumerate(FIRST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # a stable sort


def pytest_xdist_make_scheduler(config, log):
    """``make test``'s pytest-xdist workers take a file's tests together, in order (a notebook's cells share one
    kernel; a module's fixtures are built once), except those of :data:`SPREAD_FILES`, which go one by one."""
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if path in SPREAD_FILES else path

    return FileScheduling(config, log)


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


def run_differences(got, expected, rtol: float, atol: float) -> dict:
    """The largest differences of two training results in units of the tolerance (``atol + rtol * |expected|``):
    per log number (loss, train_acc, test_acc) and over the model's state; <= 1 means within tolerance."""
    import torch

    worst = {}
    for key in ("loss", "train_acc", "test_acc"):
        a = torch.tensor([row[key] for row in got.log], dtype=torch.float64)
        b = torch.tensor([row[key] for row in expected.log], dtype=torch.float64)
        worst[key] = float(((a - b).abs() / (atol + rtol * b.abs())).max())
    got_state, expected_state = got.model.state_dict(), expected.model.state_dict()
    assert list(got_state) == list(expected_state)
    worst["state"] = max(float(((got_state[k].double() - v.double()).abs() / (atol + rtol * v.double().abs())).max())
                         for k, v in expected_state.items())
    return worst
