"""Which runs a window can finish: the wide trainer's measured throughput against the time left.

:func:`calibrate` times two short calls of the members' engine (:func:`igkd_lib.training.graph_step.train_members`)
of the same N members on ``k`` and ``3k`` training images; the difference gives students·images/s free of start-up costs
(compilation, autotuning, the first evaluation), and the rest of the first call gives the fixed cost
of a call. :func:`group_seconds` then predicts a whole group; a group is admitted only when that
prediction, with a safety margin, fits in the time left.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from igkd_lib.timing import Stopwatch
from igkd_lib.training.graph_step import train_members
from igkd_lib.training.wide import Member

__all__ = ["Rate", "calibrate", "group_seconds", "SAFETY", "EVAL_COST"]

SAFETY = 1.15  # predicted seconds are multiplied by this before they are compared with the time left
EVAL_COST = 1 / 3  # evaluating an image costs about a third of training on it (forward only)


@dataclass(frozen=True)
class Rate:
    """Measured on ``members`` runs at once: students·images/s while training, and seconds a call costs anyway."""

    members: int
    students_images_per_s: float
    overhead_s: float
    calibration_s: float


def group_seconds(rate: Rate, epochs: int, n_train: int, n_test: int) -> float:
    """Predicted wall seconds of one group of ``rate.members`` runs (training and per-epoch evaluation)."""
    images = rate.members * (n_train + EVAL_COST * n_test)
    return SAFETY * (rate.overhead_s + epochs * images / rate.students_images_per_s)


def calibrate(members: list[Member], *, teacher, maps: torch.Tensor | None, train, test, device: torch.device,
              steps: int, test_images: int = 500) -> Rate:
    """Time ``members`` for one epoch on ``steps`` and on ``3 * steps`` batches of ``train`` (seeded rows)."""
    batch = members[0].config.student_batch_size
    small, large = batch * steps, 3 * batch * steps
    if large > len(train):
        raise ValueError(f"steps={steps} is not allowed for {len(train)} training images of batch {batch}; "
                         "allowed: steps with 3 * steps * batch <= the training images")
    probe_test = test.subset(torch.arange(min(test_images, len(test))))
    watch = Stopwatch()
    first = _timed(members, small, teacher, maps, train, probe_test, device)
    second = _timed(members, large, teacher, maps, train, probe_test, device)
    n = len(members)
    rate = n * (large - small) / (second - first) if second > first else n * large / second
    overhead = max(0.0, first - n * (small + EVAL_COST * len(probe_test)) / rate)
    return Rate(n, rate, overhead, watch.seconds)


def _timed(members, rows: int, teacher, maps, train, test, device) -> float:
    """Seconds of one train_group call of one epoch on the first ``rows`` training rows."""
    subset = train.subset(torch.arange(rows))
    probe = [Member(m.config.replace(student_epochs=1, n_train=rows, n_test=len(test)), m.method, m.seed)
             for m in members]
    probe_maps = None if maps is None else maps[:rows]
    watch = Stopwatch(device)
    train_members(probe, teacher=teacher, maps=probe_maps, train=subset, test=test, device=device, progress=False)
    return watch.seconds
