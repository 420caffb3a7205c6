"""The window's clock: a budget in seconds from the start of the command, and where the time went."""
from __future__ import annotations

import time

__all__ = ["Clock"]


class Clock:
    """``left()`` seconds of ``budget_s`` remain; ``phase(name)`` adds the time of a ``with`` block to ``spent``."""

    def __init__(self, budget_s: float, started: float | None = None):
        if not 0 < budget_s <= 86_400:  # inf would pass "> 0" and write non-standard JSON
            raise ValueError(f"--budget-s={budget_s!r} is not allowed; allowed: a number of seconds in (0, 86400]")
        self.budget_s = float(budget_s)
        self.started = time.monotonic() if started is None else started
        self.spent: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def phase(self, name: str):
        return _Phase(self, name)


class _Phase:
    def __init__(self, clock: Clock, name: str):
        self.clock, self.name = clock, name

    def __enter__(self):
        self.begun = time.monotonic()
        self.before = self.clock.spent.get(self.name, 0.0)
        return self

    def __exit__(self, *exc):
        self.clock.spent[self.name] = self.clock.spent.get(self.name, 0.0) + time.monotonic() - self.begun
        return False
