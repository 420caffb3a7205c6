"""Chapter 8's agreement and robustness of each finished Table 1 student, measured in the window that trained it.

A window keeps no student's weights (forty students would not fit what travels), so the studies that examine
trained students measure them on the device, right after their group finishes, as chapter 8 does on a CPU
(:mod:`igkd_lib.evidence.map_agreement`, :mod:`igkd_lib.evidence.corrupted_images`; torch, numpy and Pillow
only):

- agreement: IG maps of the student and of the teacher on the profile's probe images (seeded, class-balanced;
  ``studies`` plan: 500 at ``paper``), each image's Spearman correlation and top-10 % IoU, kept as the run's means
  over images (chapter 8 compares the methods over seeds);
- robustness: accuracy on the clean and corrupted versions of the plan's test images (10,000 at ``paper``, five
  corruptions at severities 1-5), per subset (all, exact pixels).

:class:`StudyProbe` builds the images, their versions and the teacher's maps once per window; ``studies.jsonl``
keeps one line per student (:func:`check_study` reads it back as untrusted input) and ingest commits them as
``results/<profile>/studies_agreement.csv`` and ``studies_robustness.csv`` (:func:`csv_rows`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from igkd_lib.config import Config
from igkd_lib.data.cifar10 import Cifar10, stratified_subset
from igkd_lib.evidence.corrupted_images import CORRUPTIONS, accuracy_rows, correct_by_version, subsets, versions
from igkd_lib.evidence.map_agreement import model_maps, probe_images, spearman_per_image, top_fraction_iou
from igkd_lib.evidence.run_rows import RUN_KEY
from igkd_lib.timing import Stopwatch

__all__ = ["STUDIED", "STUDIES_FILE", "AGREEMENT_FIELDS", "ROBUSTNESS_FIELDS", "StudyProbe", "WindowStudies",
           "check_study", "csv_rows", "ROBUST_SEED", "PROBE_SEED"]

STUDIED = ("table1",)  # the queue studies whose students chapter 8 examines (its agreement and robustness)
STUDIES_FILE = "studies.jsonl"
PROBE_SEED, ROBUST_SEED = 0, 1  # as chapter 8 draws its probe and robustness images
EVAL_BATCH_CUDA = 2500
_SUBSETS = ("all", "exact pixels")
AGREEMENT_FIELDS = ("run_key", "method", "seed", "study", "variant", "n_images", "spearman", "iou", "data_source",
                    "device", "window")
ROBUSTNESS_FIELDS = ("run_key", "method", "seed", "study", "variant", "kind", "severity", "subset", "n", "accuracy",
                     "data_source", "device", "window")


class StudyProbe:
    """The probe images, the robustness images in every version and the teacher's maps of one window."""

    def __init__(self, config: Config, teacher: nn.Module, test: Cifar10, device: torch.device):
        plan = config.plan("studies", device.type)
        self.config, self.device = config, device
        self.probes = probe_images(test, min(plan["n_probe"], len(test)), seed=PROBE_SEED)
        self.robust = stratified_subset(test, min(plan["n_robust"], len(test)), seed=ROBUST_SEED)
        self.versions = versions(self.robust.images, CORRUPTIONS, tuple(plan["severities"]))
        self.masks = subsets(self.robust)
        self.teacher_maps = model_maps(teacher, self.probes, config, device)
        self.basis = {"n_probe": len(self.probes), "probe_seed": PROBE_SEED, "n_robust": len(self.robust),
                      "robust_seed": ROBUST_SEED, "severities": list(plan["severities"]), "kinds": list(CORRUPTIONS),
                      "ig_steps": config.ig_steps, "ig_method": config.ig_method, "ig_baseline": config.ig_baseline,
                      "maps_precision": "fp32", "predictions_precision": "bf16" if device.type == "cuda" else "fp32"}

    @torch.no_grad()
    def _robustness(self, model: nn.Module) -> list[dict]:
        batch = EVAL_BATCH_CUDA if self.device.type == "cuda" else 500
        correct = correct_by_version(model, self.versions, self.robust.labels, batch, self.device)
        return accuracy_rows(self.versions, correct, self.masks)

    def measure(self, model: nn.Module) -> dict:
        """The run's record: ``agreement`` (n_images, mean Spearman, mean IoU over images) and ``robustness`` rows."""
        maps = model_maps(model, self.probes, self.config, self.device)
        spearman = spearman_per_image(maps, self.teacher_maps)
        iou = top_fraction_iou(maps, self.teacher_maps)
        finite = spearman[np.isfinite(spearman)]
        agreement = {"n_images": len(self.probes), "spearman": float(finite.mean()) if len(finite) else None,
                     "iou": float(iou.mean())}
        return {"agreement": agreement, "robustness": self._robustness(model)}


def _number(value, low: float, high: float) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and math.isfinite(value) and low <= value <= high)


def check_study(record, keys: set, where: str) -> dict:
    """One ``studies.jsonl`` line as a window writes it, for a run among ``keys`` (the window's finished runs); an
    error naming ``where`` and the field otherwise."""
    if not isinstance(record, dict) or not isinstance(record.get("run_key"), str) \
            or not RUN_KEY.fullmatch(record["run_key"]):
        raise ValueError(f"{where}: run_key={record.get('run_key') if isinstance(record, dict) else record!r} is not "
                         "allowed; allowed: a run key")
    if record["run_key"] not in keys:
        raise ValueError(f"{where}: run_key {record['run_key']!r} is not a finished run of this window; allowed: "
                         "studies of the runs in its runs.jsonl")
    agreement = record.get("agreement")
    if not (isinstance(agreement, dict) and isinstance(agreement.get("n_images"), int)
            and not isinstance(agreement["n_images"], bool) and agreement["n_images"] >= 1
            and _number(agreement.get("spearman"), -1.0, 1.0) and _number(agreement.get("iou"), 0.0, 1.0)
            and agreement.get("iou") is not None):
        raise ValueError(f"{where}: agreement={agreement!r} is not allowed; allowed: n_images >= 1, spearman in "
                         "[-1, 1] (or null), iou in [0, 1]")
    rows = record.get("robustness")
    kinds = ("clean", *CORRUPTIONS)
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{where}: robustness={rows!r} is not allowed; allowed: a list of rows")
    for row in rows:
        if not (isinstance(row, dict) and row.get("kind") in kinds and row.get("severity") in range(6)
                and (row["severity"] == 0) == (row["kind"] == "clean") and row.get("subset") in _SUBSETS
                and isinstance(row.get("n"), int) and not isinstance(row["n"], bool) and row["n"] >= 0
                and _number(row.get("accuracy"), 0.0, 100.0)):
            raise ValueError(f"{where}: robustness row {row!r} is not allowed; allowed: kind ({', '.join(kinds)}), "
                             "severity 0 (clean) or 1-5, subset (all, exact pixels), n >= 0, accuracy in [0, 100]")
    return record


class WindowStudies:
    """A window's study measurements: its :class:`StudyProbe`, built on first use, and what they cost (for admission:
    a group is admitted only with the time to measure its studied students)."""

    # guesses for an H200 until measured (then the window's own figures): the set-up makes 25 corrupted versions of
    # 10,000 test images on the CPU (~50,000 small JPEG round trips) and the teacher's maps of 500 probe images; a
    # student is IG at 50 points on 500 images (25,000 forward-backward passes) and 260,000 bf16 predictions
    SETUP_GUESS_S = 30.0
    STUDENT_GUESS_S = 5.0

    def __init__(self, config: Config, teacher: nn.Module, test: Cifar10, device: torch.device):
        self.config, self.teacher, self.test, self.device = config, teacher, test, device
        self.probe: StudyProbe | None = None
        self.disabled = False  # set by the window when a measurement failed: no more in that window
        self.setup_s: float | None = None
        self.student_s: float | None = None

    def predicted_s(self, students: int) -> float:
        """Seconds to measure ``students`` more (the set-up included while it is not built); 0 for none."""
        if students <= 0:
            return 0.0
        setup = 0.0 if self.probe is not None else self.SETUP_GUESS_S
        return setup + students * (self.student_s if self.student_s is not None else self.STUDENT_GUESS_S)

    def measure(self, model: nn.Module) -> dict:
        """:meth:`StudyProbe.measure` of ``model``, the probe built first where needed; the costs are kept."""
        if self.probe is None:
            watch = Stopwatch()
            self.probe = StudyProbe(self.config, self.teacher, self.test, self.device)
            self.setup_s = watch.seconds
        watch = Stopwatch()
        record = self.probe.measure(model)
        self.student_s = watch.seconds
        return record

    def summary(self) -> dict:
        """What window.json keeps: the basis of the measurements and their costs."""
        basis = self.probe.basis if self.probe is not None else {}
        return {**basis, "setup_s": self.setup_s, "student_s": self.student_s}


def csv_rows(record: dict, row: dict, meta: dict) -> tuple[list[dict], list[dict]]:
    """``(agreement rows, robustness rows)`` of one checked record, with its run's row (method, seed, study,
    variant) and the window's provenance (data source, device, window), in :data:`AGREEMENT_FIELDS` and
    :data:`ROBUSTNESS_FIELDS`."""
    shared = {"run_key": record["run_key"], "method": row["method"], "seed": row["seed"], "study": row["study"],
              "variant": row["variant"]}
    where = {"data_source": row.get("data_source") or meta.get("data_source", ""), "device": meta["device"],
             "window": meta["window"]}
    agreement = [{**shared, **{k: record["agreement"][k] for k in ("n_images", "spearman", "iou")}, **where}]
    robustness = [{**shared, **{k: r[k] for k in ("kind", "severity", "subset", "n", "accuracy")}, **where}
                  for r in record["robustness"]]
    return agreement, robustness
