"""The checks of bad input, in one place: each names the parameter, its value and what is allowed.

Every public function of the library validates its arguments with these (the private function it
calls then only computes); :mod:`igkd_lib.config` uses them with ``error=ConfigError``. A failed
check raises ``error`` (``ValueError`` by default) with ``"{name}={value!r} is not allowed; allowed: ..."``.
Booleans are never numbers here (``True`` is not 1 epoch).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

__all__ = ["require", "check_int", "check_number", "check_choice"]


def require(ok: bool, name: str, value: Any, allowed: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming ``name``, ``value`` and what is ``allowed`` unless ``ok``."""
    if not ok:
        raise error(f"{name}={value!r} is not allowed; allowed: {allowed}")


def _bounds(kind: str, low, high, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"{kind} in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {high:g}"
    return kind


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None,
              error: type[Exception] = ValueError) -> int:
    """``value`` as an int when it is a whole number (not a bool) in ``[low, high]`` (either end optional)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    require(ok, name, value, _bounds("an integer", low, high), error)
    return int(value)


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False, error: type[Exception] = ValueError) -> float:
    """``value`` as a float when it is a finite real number (not a bool) between ``low`` and ``high``
    (closed ends unless ``low_open`` / ``high_open``; either end optional)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    require(ok, name, value, _bounds("a number", low, high, low_open, high_open), error)
    return float(value)


def check_choice(name: str, value: Any, allowed: Iterable, error: type[Exception] = ValueError) -> Any:
    """``value`` when it is one of ``allowed``."""
    allowed = tuple(allowed)
    require(value in allowed, name, value, ", ".join(map(str, allowed)), error)
    return value
