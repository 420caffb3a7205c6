"""The studies beyond the paper: their GPU queue, the trained students they examine, the teacher on overlays.

:func:`beyond_paper_queue` lists the paper-profile runs of the chapter "Beyond the paper" in
priority order (overlay sources, the teacher's signal, then the compression sweep; the agreement and robustness studies
train nothing new: they read the students of Table 1). :func:`trained_student` gives back the
weights of any run of :func:`igkd_lib.evidence.experiments.run_one` (training it where it is missing).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from igkd_lib import models
from igkd_lib.config import METHODS, SOURCE_STUDY, STUDENT_CUTS, TEACHER_LOGITS, Config
from igkd_lib.data.augment import overlay, to_float
from igkd_lib.evidence import experiments
from igkd_lib.training.student import method_config

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["source_runs", "signal_runs", "compression_runs", "latency_by_cut", "pareto_front",
           "compression_points", "teacher_overlay_correct", "study_students", "StudyEntry", "beyond_paper_queue",
           "trained_student", "official_students", "teacher_on_overlays", "SOURCE_STUDY", "TEACHER_SIGNALS",
           "COMPRESSION_METHODS"]

# the overlay sources and teacher signals studied (their order and reasons: igkd_lib.config)
TEACHER_SIGNALS = TEACHER_LOGITS
_SIGNAL_METHODS = {"online_clean": ("kd_ig",), "cached": ("kd", "kd_ig")}  # online_clean without maps is online
COMPRESSION_METHODS = ("baseline", "kd_ig")
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
    2. the teacher's signal (kd_ig with the teacher on the batch without its overlay; kd and kd_ig with
       logits cached on clean images; the exact batch is Table 1's, other images the controls'), and
       the teacher on overlaid images (``trains=False``);
    3. agreement and robustness (``trains=False``: they read Table 1's students);
    4. the compression sweep (baseline and kd_ig at every student cut but the paper's 5).
    """
    seeds = tuple(int(s) for s in seeds)
    queue = [StudyEntry("overlay source", {"map_source": s}, ("kd_ig", "ig"), seeds)
             for s in SOURCE_STUDY if s != "ig"]
    queue += [StudyEntry("teacher signal", {"teacher_logits": s}, methods, seeds)
              for s, methods in _SIGNAL_METHODS.items()]
    queue.append(StudyEntry("teacher on overlays", {}, (), seeds, trains=False))
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
    if row is None or row["origin"] not in experiments.LOCAL_ORIGINS:
        raise LookupError(f"the trained student of {method} seed {seed} is not on this machine (committed runs keep "
                          "no weights); set train_missing=true to train it here")
    json_path, weights = experiments.run_files(config, row["run_key"])
    if not weights.is_file():
        json_path.unlink(missing_ok=True)
        row = experiments.run_one(config, method, seed, progress=progress)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    return _student_model(method_config(config, method), state), row


def official_students(config: Config) -> dict[str, tuple[nn.Module, float]]:
    """The authors' published full-training-set students: {"official <method>": (model, their accuracy)}.

    Loaded and verified by :mod:`igkd_lib.evidence.official`; the attention-transfer files (another
    architecture) and the ``Train80Rand`` ones (another subset) are left out; the authors published no
    full-training-set baseline. Returns {} where no checkpoint is available (offline, no copy).
    """
    from igkd_lib.evidence.official import OfficialUnavailable, checkpoints, load_student

    out = {}
    for checkpoint in checkpoints():
        if checkpoint.loads and checkpoint.training_set == "full":
            try:
                out[f"official {checkpoint.method}"] = (load_student(checkpoint, config.cache_dir),
                                                        checkpoint.reported_acc)
            except OfficialUnavailable:
                return {}
    return out


def study_students(config: Config, methods=METHODS, seeds=None, official: bool = True,
                   progress: bool = False, missing: list | None = None) -> dict:
    """{label: (model, method, seed)}: the trained students of ``methods`` x ``seeds`` (the profile's by
    default; trained where missing), then the authors' published ones (seed None) if ``official``.

    A student whose weights are not on this machine and that the config does not train (``train_missing``
    false: the paper profile, whose committed runs keep no weights) is left out and appended to ``missing``
    as (method, seed)."""
    out = {}
    for method in methods:
        for seed in (config.seeds if seeds is None else seeds):
            try:
                model = trained_student(config, method, int(seed), progress)[0]
            except LookupError:
                if missing is None:
                    raise
                missing.append((method, int(seed)))
                continue
            out[f"{method} s{seed}"] = (model, method, int(seed))
    if official:
        out.update({label: (model, label, None) for label, (model, _) in official_students(config).items()})
    return out


@torch.no_grad()
def _overlaid_logits(teacher: nn.Module, images_uint8: torch.Tensor, maps: torch.Tensor, blend: float, seed: int):
    """The teacher's logits (n, classes) on every image overlaid (p = 1) with its map at ``blend``."""
    generator = torch.Generator().manual_seed(seed)
    return teacher(overlay(to_float(images_uint8), maps, p=1.0, blend=float(blend), generator=generator))


def teacher_overlay_correct(teacher: nn.Module, images_uint8: torch.Tensor, labels: torch.Tensor, maps: torch.Tensor,
                            blend: float = 0.5, seed: int = 0) -> dict:
    """Per image, whether the teacher is right on the clean and on the overlaid image: {"clean", "overlaid"}
    (n,) float 0/1 (for a paired difference, :mod:`igkd_lib.evidence.study_claims`)."""
    return {name: (_overlaid_logits(teacher, images_uint8, maps, w, seed).argmax(1) == labels).float().numpy()
            for name, w in (("clean", 0.0), ("overlaid", blend))}


@torch.no_grad()
def teacher_on_overlays(teacher: nn.Module, images_uint8: torch.Tensor, labels: torch.Tensor, maps: torch.Tensor,
                        blends=(0.0, 0.25, 0.5, 0.75), seed: int = 0) -> "pd.DataFrame":
    """The teacher's accuracy (%) and mean predictive entropy (nats) on images overlaid at each ``blend``.

    Every image is overlaid (p = 1) with its own map (k, H, W); one row per blend.
    """
    rows = []
    for blend in blends:
        logits = _overlaid_logits(teacher, images_uint8, maps, blend, seed)
        probs = logits.softmax(1)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(1)
        rows.append({"blend": float(blend), "n": len(labels),
                     "accuracy": float((logits.argmax(1) == labels).float().mean() * 100),
                     "entropy": float(entropy.mean()), "entropy_max": float(np.log(logits.shape[1]))})
    import pandas as pd  # not at the top: the GPU window imports this module's queue without pandas

    return pd.DataFrame(rows)



def _variant_runs(config: Config, methods, field_name: str, values, seeds, progress: bool) -> "pd.DataFrame":
    """Runs of ``methods`` x ``seeds`` for each value of one config field; the value in a column of that name."""
    import pandas as pd

    variants = [{field_name: v} for v in values]
    table = experiments.run_grid(config, list(methods), seeds=seeds, variants=variants, progress=progress)
    kind = type(values[0])
    table[field_name] = pd.Series([kind(v.split("=", 1)[1]) for v in table["variant"]], index=table.index,
                                  dtype=object if kind is str else kind)
    return table


def source_runs(config: Config, sources, seeds=None, progress: bool = False) -> "pd.DataFrame":
    """KD + IG runs per overlay source (column ``map_source``): study 1."""
    return _variant_runs(config, ("kd_ig",), "map_source", tuple(sources), seeds, progress)


def signal_runs(config: Config, signals, seeds=None, progress: bool = False) -> "pd.DataFrame":
    """KD + IG runs per teacher signal (column ``teacher_logits``): study 2."""
    return _variant_runs(config, ("kd_ig",), "teacher_logits", tuple(signals), seeds, progress)


def compression_runs(config: Config, cuts, methods=COMPRESSION_METHODS, seeds=None,
                     progress: bool = False) -> "pd.DataFrame":
    """Runs per student cut (column ``student_cut``) with the student's parameters and MACs: study 5."""
    table = _variant_runs(config, methods, "student_cut", tuple(int(c) for c in cuts), seeds, progress)
    sizes = {cut: models.student(cut) for cut in set(table["student_cut"])}
    table["parameters"] = [models.count_parameters(sizes[c]) for c in table["student_cut"]]
    table["macs"] = [models.count_macs(sizes[c]) for c in table["student_cut"]]
    return table


def latency_by_cut(config: Config, cuts, repeats: int = 20) -> tuple["pd.DataFrame", str]:
    """Batch-1 median latency (ms) per student cut and where it comes from.

    Chapter 6's committed measurement (:func:`igkd_lib.bench.latency.load_results`) when it holds every
    cut; else measured here with :func:`igkd_lib.bench.latency.sweep` (``repeats`` interleaved rounds).
    Returns (table with columns student_cut, latency_ms, latency_iqr_ms, and the provenance line).
    """
    from igkd_lib.bench.latency import load_results, sweep

    cuts = sorted(int(c) for c in cuts)
    committed = load_results()
    if committed is not None:
        rows = committed["sweep"][(committed["sweep"]["batch_size"] == 1) & committed["sweep"]["cut"].isin(cuts)]
        if sorted(rows["cut"].astype(int)) == cuts:
            meta = committed["provenance"]
            device = ", ".join(meta["device"]) if isinstance(meta.get("device"), list) else meta.get("device")
            note = (f"latency: chapter 6's committed measurement {committed['stem']} ({device}, commit "
                    f"{meta.get('commit')}, batch 1, median of {int(rows['repeats'].iloc[0])})")
            return _latency_table(rows), note
    rows = sweep(config, batch_sizes=(1,), repeats=repeats, warmup=3, cuts=cuts, progress=False)
    rows = rows[rows["cut"].notna()]
    note = f"latency: measured here ({rows['device'].iloc[0]}, batch 1, median of {repeats}, machine shared)"
    return _latency_table(rows), note


def _latency_table(rows) -> "pd.DataFrame":
    import pandas as pd

    return pd.DataFrame({"student_cut": rows["cut"].astype(int).to_numpy(), "latency_ms": rows["median_ms"].to_numpy(),
                         "latency_iqr_ms": rows["iqr_ms"].to_numpy()})


def pareto_front(cost, value) -> np.ndarray:
    """Boolean mask (n,): the points no other point beats (cost <= and value >=, one strictly)."""
    cost, value = np.asarray(cost, dtype=float), np.asarray(value, dtype=float)
    known = np.isfinite(cost) & np.isfinite(value)  # a point without a cost or a value is on no front
    beaten = [known & (cost <= c) & (value >= v) & ((cost < c) | (value > v)) for c, v in zip(cost, value)]
    return np.array([ok and not b.any() for ok, b in zip(known, beaten)], dtype=bool)


def compression_points(runs: "pd.DataFrame", latency: "pd.DataFrame", cost: str = "latency_ms") -> "pd.DataFrame":
    """One row per (method, student_cut) of :func:`compression_runs`: n, mean, 95 % CI over seeds,
    parameters, MACs, latency (:func:`latency_by_cut`), and ``front``: on the Pareto front of ``cost``."""
    from igkd_lib.evidence.stats import summarise

    points = summarise(runs, by=("method", "student_cut"))
    sizes = runs.drop_duplicates("student_cut").set_index("student_cut")[["parameters", "macs"]]
    points = points.join(sizes, on="student_cut").merge(latency, on="student_cut", how="left")
    points["front"] = pareto_front(points[cost], points["mean"])
    return points
