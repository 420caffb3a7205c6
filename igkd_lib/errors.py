"""The library's own exceptions, so callers (and the command line) can tell failures apart.

``ConfigError`` (a value that is not allowed) lives in :mod:`igkd_lib.config`; the failures of a run
that started with valid values live here.
"""
from __future__ import annotations

__all__ = ["NonFiniteLossError"]


class NonFiniteLossError(RuntimeError):
    """A training loss became inf or nan: the run stops, and is neither checkpointed nor cached as a result."""
