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
