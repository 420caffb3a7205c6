"""The one timer of the library: wall-clock seconds of a piece of work, CUDA work waited for.

``watch = Stopwatch(device)`` starts it; ``watch.seconds`` reads it (``time.perf_counter``). With a
CUDA ``device`` it waits for the work queued on that device at the start and at each reading, so
asynchronous kernels are counted where they run. Latency of single calls (CUDA events) is
:func:`igkd_lib.bench.latency.measure`'s own concern.
"""
from __future__ import annotations

import time

import torch

__all__ = ["Stopwatch", "synchronize"]


def synchronize(device: torch.device | None) -> None:
    """Wait for the work queued on a CUDA ``device``; nothing elsewhere."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Seconds since it was made; ``device``: a CUDA device is synchronised at the start and each reading."""

    def __init__(self, device: torch.device | None = None):
        self.device = device
        synchronize(device)
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        synchronize(self.device)
        return time.perf_counter() - self.started
