"""The campaign's queue: the paper-profile runs the book wants, in the order GPU windows should run them.

Each :class:`Entry` is one student run (study, method, seed, config overrides); its run key
(:func:`igkd_lib.evidence.experiments.run_key` with the wide trainer, the device and its precision) says
whether it is already in ``results/paper/runs.csv``. Order: Table 1 (four methods, seeds 0-19,
interleaved by seed so every window adds balanced seeds), then the controls, then the studies that
later issues append to :data:`LATER_STUDIES`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from igkd_lib.attribution.maps import MAPS_FIELDS
from igkd_lib.config import METHODS, Config
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.evidence.experiments import run_key, variant_label
from igkd_lib.training import faults, wide
from igkd_lib.training.student import method_config

__all__ = ["Entry", "TABLE1_SEEDS", "CONTROL_SEEDS", "CONTROLS", "LATER_STUDIES", "paper_queue", "entry_config",
           "entry_key", "TRAINER", "uses_maps", "group_signature", "maps_signature", "compatible_runs"]

TRAINER = "wide"  # every campaign run goes through igkd_lib.training.wide.train_group
TABLE1_SEEDS = tuple(range(20))
CONTROL_SEEDS = tuple(range(10))
# Chapter 5's controls of the overlay (igkd_lib.training.faults.CONTROLS), each a KD + IG run with one fault
# switched on.
CONTROLS = tuple(faults.CONTROLS.values())


@dataclass(frozen=True)
class Entry:
    """One queued run: ``study`` names what it answers; ``overrides`` change the profile's config."""

    study: str
    method: str
    seed: int
    overrides: tuple = field(default=())  # ((name, value), ...): hashable

    @property
    def variant(self) -> str:
        return variant_label(dict(self.overrides))


def _table1() -> list[Entry]:
    return [Entry("table1", method, seed) for seed in TABLE1_SEEDS for method in METHODS]


def _controls() -> list[Entry]:
    return [Entry("controls", "kd_ig", seed, tuple(sorted(overrides.items())))
            for seed in CONTROL_SEEDS for overrides in CONTROLS]


FAULT_SEEDS = tuple(range(5))


def _fault_ablation() -> list[Entry]:
    """Chapter 5's fault-by-fault ablation: the official code, each fault removed in turn, this book."""
    from igkd_lib.training.faults import fault_ablation_variants

    return [Entry("faults", method, seed, tuple(sorted(overrides.items())))
            for seed in FAULT_SEEDS for overrides in fault_ablation_variants(full=True) for method in ("kd", "kd_ig")]


def _beyond_the_paper() -> list[Entry]:
    """The training runs of chapter 8's studies (overlay sources, compression): :mod:`igkd_lib.evidence.studies`.

    Seed-major within each study, so a window that stops early has every variant at the first seeds.
    """
    from igkd_lib.evidence.studies import beyond_paper_queue

    return [Entry(study.study.replace(" ", "_"), method, seed, tuple(sorted(study.overrides.items())))
            for study in beyond_paper_queue() if study.trains for seed in study.seeds for method in study.methods]


# Later studies, each a function returning entries, appended in this order.
LATER_STUDIES: list = [_fault_ablation, _beyond_the_paper]


def paper_queue() -> list[Entry]:
    """Every queued run, in order: Table 1, the controls, then :data:`LATER_STUDIES`; no duplicates."""
    entries = _table1() + _controls()
    for study in LATER_STUDIES:
        entries += list(study())
    seen, ordered = set(), []
    for entry in entries:
        if entry not in seen:
            seen.add(entry)
            ordered.append(entry)
    return ordered


def entry_config(config: Config, entry: Entry) -> Config:
    """The profile's config with the entry's overrides (``method_config`` is applied by the trainer)."""
    return config.replace(**dict(entry.overrides)) if entry.overrides else config


def uses_maps(config: Config, entry: Entry) -> bool:
    """Whether the entry's run reads the IG maps."""
    c = method_config(entry_config(config, entry), entry.method)
    return c.p > 0 and c.blend > 0


def maps_signature(config: Config, entry: Entry) -> tuple | None:
    """Which maps the entry's run reads (:data:`igkd_lib.attribution.maps.MAPS_FIELDS`), or None when it reads none."""
    if not uses_maps(config, entry):
        return None
    c = entry_config(config, entry)
    return tuple(getattr(c, name) for name in MAPS_FIELDS)


def compatible_runs(config: Config, pending: list) -> tuple[list, tuple | None]:
    """The queued ``(entry, key)`` pairs that can train in one group with the first one, and their maps.

    They share :func:`group_signature`; those that read maps read the same maps (the first such run's).
    """
    first = group_signature(config, pending[0][0])
    same = [(e, k) for e, k in pending if group_signature(config, e) == first]
    anchor = next((maps_signature(config, e) for e, _ in same if uses_maps(config, e)), None)
    return [(e, k) for e, k in same if maps_signature(config, e) in (None, anchor)], anchor


def group_signature(config: Config, entry: Entry) -> tuple:
    """What members of one wide group must share: the wide trainer's :data:`igkd_lib.training.wide.GROUP_FIELDS`."""
    c = method_config(entry_config(config, entry), entry.method)
    return tuple(getattr(c, name) for name in wide.GROUP_FIELDS)


def entry_key(config: Config, entry: Entry, teacher_sha: str, train: Cifar10, test: Cifar10,
              device: torch.device) -> str:
    """The entry's run key on ``device`` with the campaign's (wide) trainer."""
    return run_key(entry_config(config, entry), entry.method, entry.seed, teacher_sha, train, test,
                   trainer=TRAINER, device=device)
