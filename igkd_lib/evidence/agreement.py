"""Does the student end up attending like the teacher? IG maps of student and teacher, compared per image.

On a fixed, seeded set of test images (:func:`probe_images`), each model's IG map (Σ over channels
of |IG|, for the true label) is compared with the teacher's by Spearman rank correlation over the
pixels and by the overlap (IoU) of the two maps' top 10 % pixels. :func:`summarise_agreement` gives
intervals over images (one model) and over seeds (one value per seed: its mean over images).
The per-image numbers are :mod:`igkd_lib.evidence.map_agreement`'s (torch and numpy only: a GPU window computes
them too). See the chapter "Beyond the paper".
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from igkd_lib.config import Config
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.evidence.map_agreement import (
    TOP_FRACTION,
    model_maps,
    probe_images,
    spearman_per_image,
    top_fraction_iou,
)
from igkd_lib.evidence.stats import difference_table, t_interval

__all__ = ["agreement_study", "probe_images", "model_maps", "spearman_per_image", "top_fraction_iou", "agreement_rows",
           "summarise_agreement", "per_seed_means", "welch_by_method", "TOP_FRACTION"]


def agreement_rows(teacher_maps: torch.Tensor, maps: torch.Tensor, images: Cifar10, **labels) -> pd.DataFrame:
    """One row per image: its dataset index, spearman and iou of ``maps`` against ``teacher_maps``, and ``labels``."""
    return pd.DataFrame({**labels, "image": images.indices.numpy(),
                         "spearman": spearman_per_image(maps, teacher_maps),
                         "iou": top_fraction_iou(maps, teacher_maps)})


def summarise_agreement(rows: pd.DataFrame, by=("model",), value: str = "spearman") -> pd.DataFrame:
    """Per group: mean over images with its 95 % t-interval (n_images), and over seeds where there are several.

    ``rows`` from :func:`agreement_rows` with a ``seed`` column (for the interval over seeds: each
    seed's mean over images is one value).
    """
    by = list(by)
    out = []
    for key, group in rows.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, _, low, high = t_interval(group[value])
        per_seed = group.groupby("seed", dropna=False)[value].mean() if "seed" in group else pd.Series([mean])
        _, _, seed_low, seed_high = t_interval(per_seed)
        out.append({**dict(zip(by, key)), "n_images": int(group["image"].nunique()), "n_seeds": len(per_seed),
                    "mean": mean, "images_ci_low": low, "images_ci_high": high,
                    "seeds_ci_low": seed_low, "seeds_ci_high": seed_high})
    return pd.DataFrame(out)


def agreement_study(teacher: nn.Module, students: dict, probes: Cifar10, config: Config) -> tuple[pd.DataFrame, dict]:
    """Every student's maps against the teacher's on ``probes``: (rows, {label: maps (n, H, W)}).

    ``students``: {label: (model, method, seed)}; rows as :func:`agreement_rows` with model (the
    method), label and seed; the maps dict starts with the teacher's.
    """
    maps = {"teacher": model_maps(teacher.cpu(), probes, config)}
    parts = []
    for label, (model, method, seed) in students.items():
        maps[label] = model_maps(model, probes, config)
        parts.append(agreement_rows(maps["teacher"], maps[label], probes, model=method, label=label, seed=seed))
    if not parts:  # no student on this machine: the columns, no rows
        return pd.DataFrame(columns=["model", "label", "seed", "image", "spearman", "iou"]), maps
    return pd.concat(parts, ignore_index=True), maps


def per_seed_means(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per trained model and seed (model, seed, spearman, iou): its means over the probe images (the
    authors' published students, without a seed, are left out)."""
    return rows[rows["seed"].notna()].groupby(["model", "seed"], as_index=False)[["spearman", "iou"]].mean()


def welch_by_method(per_seed: pd.DataFrame, first: str = "kd_ig", second: str = "baseline") -> pd.DataFrame:
    """``first`` against ``second`` on the per-seed Spearman and IoU (Welch; :func:`igkd_lib.evidence.stats.
    difference_table`), one value per seed."""
    arm = lambda model, value: per_seed.loc[per_seed["model"] == model, value]  # noqa: E731
    names = {"kd_ig": "KD + IG", "baseline": "student alone", "kd": "KD", "ig": "IG"}
    return difference_table([(v, arm(first, v), arm(second, v)) for v in ("spearman", "iou")],
                            (names.get(first, first), names.get(second, second)), "agreement", decimals=3)
