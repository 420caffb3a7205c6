"""Several student runs trained together (PROVISIONAL: replaced by the wide trainer at merge).

This stand-in has the wide trainer's interface and trains the members one after another with the
single-run trainer (:func:`igkd_lib.student.train_student`), so the campaign can be built and
tested before the wide trainer lands; its numbers are those of single runs.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from .config import Config
from .data import Cifar10
from .student import METHODS, train_student
from .train import TrainResult

__all__ = ["Member", "train_group"]


@dataclass(frozen=True)
class Member:
    """One run of a group: the profile's ``config`` (``method_config`` is applied inside), ``method``, ``seed``."""

    config: Config
    method: str
    seed: int


def train_group(members: Sequence[Member], *, teacher: nn.Module | None, maps: torch.Tensor | None,
                train: Cifar10, test: Cifar10, device: torch.device | None = None, progress: bool = True,
                on_epoch: Callable[[int, dict], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> list[TrainResult]:
    """Train every member; ``on_epoch(member_index, row)`` after each epoch; ``should_stop()`` between epochs.

    Returns one :class:`TrainResult` per member (partial logs when stopped early). Each member runs
    epoch by epoch through the single-run trainer's own checkpoint (``stop_after=1``).
    """
    _check(members)
    results: list[TrainResult] = []
    with tempfile.TemporaryDirectory(prefix="igkd-group-") as folder:
        for index, member in enumerate(members):
            config = member.config if device is None else member.config.replace(device=str(device))
            result = TrainResult(model=None, log=[])
            while len(result.log) < config.student_epochs and not (should_stop is not None and should_stop()):
                result = train_student(config, member.method, member.seed, teacher=teacher, maps=maps, train=train,
                                       test=test, checkpoint=Path(folder) / f"member{index}.pt", progress=progress,
                                       stop_after=1)
                if on_epoch is not None:
                    on_epoch(index, dict(result.log[-1]))
            results.append(result)
    return results


def _check(members: Sequence[Member]) -> None:
    if not members:
        raise ValueError("members is empty; allowed: one or more Member")
    for member in members:
        if member.method not in METHODS:
            raise ValueError(f"method={member.method!r} is not allowed; allowed: {', '.join(METHODS)}")
    shared = {(m.config.student_cut, m.config.student_epochs, m.config.student_batch_size, m.config.n_train,
               m.config.n_test, m.config.data_source, m.config.subset_seed) for m in members}
    if len(shared) > 1:
        raise ValueError("members differ in student_cut/student_epochs/student_batch_size/data; allowed: "
                         "members that share them")
