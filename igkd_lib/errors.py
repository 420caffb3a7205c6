"""The library's own exceptions, so callers (and the command line) can tell failures apart.

``ConfigError`` (a value that is not allowed) lives in :mod:`igkd_lib.config`; the failures of a run
that started with valid values live here.
"""
from __future__ import annotations

__all__ = ["NonFiniteLossError", "WeightsError"]


class NonFiniteLossError(RuntimeError):
    """A training loss became inf or nan: the run stops, and is neither checkpointed nor cached as a result."""


class WeightsError(RuntimeError):
    """Model weights that are present but do not verify (SHA-256 mismatch, damaged or missing card), or
    shipped weights that are absent; the message names the file (and both hashes on a mismatch)."""
