"""The studies beyond the paper: their GPU queue, the trained students they examine, the teacher on overlays.

:func:`beyond_paper_queue` lists the paper-profile runs of the chapter "Beyond the paper" in
priority order (overlay sources, then the compression sweep; the agreement and robustness studies
train nothing new: they read the students of Table 1). :func:`trained_student` gives back the
weights of any run of :func:`igkd_lib.experiments.run_one` (training it where it is missing).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from . import experiments, models
from .augment import overlay, to_float
from .config import METHODS, STUDENT_CUTS, Config
from .student import method_config

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BOOK_SIZES", "study_students", "StudyEntry", "beyond_paper_queue", "trained_student", "official_students", "teacher_on_overlays",
           "SOURCE_STUDY", "COMPRESSION_METHODS"]

SOURCE_STUDY = ("ig", "ig_untrained", "grad_x_input", "smoothgrad", "sobel", "constant")
COMPRESSION_METHODS = ("baseline", "kd_ig")
# the chapter's sizes per profile: overlay sources trained (one seed on smoke and quick), probe images
# for the agreement, test images and severities for the robustness
BOOK_SIZES = {
    "smoke": dict(sources=("ig", "sobel", "constant"), n_probe=8, n_robust=100, severities=(5,)),
    # quick trains no source run of its own (the ig run is chapter 4's): a Sobel run costs as much as one of
    # chapter 4's four, which the 12-minute book cannot afford (config._QUICK); -p sources '["ig","sobel"]' runs it
    "quick": dict(sources=("ig",), n_probe=48, n_robust=200, severities=(3,)),
    "paper": dict(sources=SOURCE_STUDY, n_probe=500, n_robust=10_000, severities=(1, 2, 3, 4, 5)),
}


@dataclass(frozen=True)
class StudyEntry:
    """One queue entry: ``overrides`` of the paper config, trained for ``methods`` x ``seeds``."""

    study: str
    overrides: dict = field(default_factory=dict)
    methods: tuple = ("kd_ig",)
    seeds: tuple = tuple(range(10))
    trains: bool = True


def beyond_paper_queue(seeds=tuple(range(10))) -> list[StudyEntry]:
    """The studies' runs at the ``paper`` profile, in priority order (after Table 1's four methods).

    1. overlay sources (kd_ig and ig at the paper's p and blend, one entry per source);
    2. agreement and robustness (``trains=False``: they read Table 1's students);
    3. the compression sweep (baseline and kd_ig at every student cut but the paper's 5).
    """
    seeds = tuple(int(s) for s in seeds)
    queue = [StudyEntry("overlay source", {"map_source": s}, ("kd_ig", "ig"), seeds)
             for s in SOURCE_STUDY if s != "ig"]
    queue += [StudyEntry(name, {}, METHODS, seeds, trains=False)
              for name in ("attribution agreement", "robustness under corruption")]
    queue += [StudyEntry("compression", {"student_cut": cut}, COMPRESSION_METHODS, seeds)
              for cut in STUDENT_CUTS if cut != 5]
    return queue


def _student_model(config: Config, state: dict) -> nn.Module:
    model = models.student(config.student_cut, dropout=config.student_dropout, normalise=config.student_normalise)
    model.load_state_dict(state)
    return model.eval()


def trained_student(config: Config, method: str, seed: int, progress: bool = False) -> tuple[nn.Module, dict]:
    """The final student (eval mode, CPU) of a run and its row; trains the run where it is missing.

    A run cached before runs kept their weights has no ``.weights.pt``: it is trained again (the
    same run: CPU training is deterministic) so that its weights exist.
    """
    row = experiments.run_one(config, method, seed, progress=progress)
    json_path, weights = experiments.run_files(config, row["run_key"])
    if not weights.is_file():
        json_path.unlink(missing_ok=True)
        row = experiments.run_one(config, method, seed, progress=progress)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    return _student_model(method_config(config, method), state), row


def official_students(config: Config) -> dict[str, tuple[nn.Module, float]]:
    """The authors' published full-training-set students: {"official <method>": (model, their accuracy)}.

    Loaded and verified by :mod:`igkd_lib.official`; the attention-transfer files (another
    architecture) and the ``Train80Rand`` ones (another subset) are left out; the authors published no
    full-training-set baseline. Returns {} where no checkpoint is available (offline, no copy).
    """
    from .official import OfficialUnavailable, checkpoints, load_student

    out = {}
    for checkpoint in checkpoints():
        if checkpoint.loads and checkpoint.training_set == "full":
            try:
                out[f"official {checkpoint.method}"] = (load_student(checkpoint, config.cache_dir), checkpoint.reported_acc)
            except OfficialUnavailable:
                return {}
    return out


def study_students(config: Config, methods=METHODS, seeds=None, official: bool = True,
                   progress: bool = False) -> dict:
    """{label: (model, method, seed)}: the trained students of ``methods`` x ``seeds`` (the profile's by
    default; trained where missing), then the authors' published ones (seed None) if ``official``."""
    out = {}
    for method in methods:
        for seed in (config.seeds if seeds is None else seeds):
            out[f"{method} s{seed}"] = (trained_student(config, method, int(seed), progress)[0], method, int(seed))
    if official:
        out.update({label: (model, label, None) for label, (model, _) in official_students(config).items()})
    return out


@torch.no_grad()
def teacher_on_overlays(teacher: nn.Module, images_uint8: torch.Tensor, labels: torch.Tensor, maps: torch.Tensor,
                        blends=(0.0, 0.25, 0.5, 0.75), seed: int = 0) -> "pd.DataFrame":
    """The teacher's accuracy (%) and mean predictive entropy (nats) on images overlaid at each ``blend``.

    Every image is overlaid (p = 1) with its own map (k, H, W); one row per blend.
    """
    x = to_float(images_uint8)
    rows = []
    for blend in blends:
        generator = torch.Generator().manual_seed(seed)
        logits = teacher(overlay(x, maps, p=1.0, blend=float(blend), generator=generator))
        probs = logits.softmax(1)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(1)
        rows.append({"blend": float(blend), "n": len(labels), "accuracy": float((logits.argmax(1) == labels).float().mean() * 100),
                     "entropy": float(entropy.mean()), "entropy_max": float(np.log(logits.shape[1]))})
    import pandas as pd  # not at the top: the GPU window imports this module's queue without pandas

    return pd.DataFrame(rows)
