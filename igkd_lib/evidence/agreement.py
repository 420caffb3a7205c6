"""Does the student end up attending like the teacher? IG maps of student and teacher, compared per image.

On a fixed, seeded set of test images (:func:`probe_images`), each model's IG map (Σ over channels
of |IG|, for the true label) is compared with the teacher's by Spearman rank correlation over the
pixels and by the overlap (IoU) of the two maps' top 10 % pixels. :func:`summarise_agreement` gives
intervals over images (one model) and over seeds (one value per seed: its mean over images).
See the chapter "Beyond the paper".
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata
from torch import nn

from igkd_lib.attribution.ig import chunk_size, integrated_gradients, reduce_map
from igkd_lib.config import Config
from igkd_lib.data.augment import to_float
from igkd_lib.data.cifar10 import Cifar10, stratified_subset
from igkd_lib.evidence.stats import t_interval

__all__ = ["agreement_study", "probe_images", "model_maps", "spearman_per_image", "top_fraction_iou", "agreement_rows",
           "summarise_agreement", "TOP_FRACTION"]

TOP_FRACTION = 0.1


def probe_images(test: Cifar10, n: int, seed: int = 0) -> Cifar10:
    """A seeded, class-balanced set of ``n`` test images (the same for every model compared)."""
    return stratified_subset(test, n, seed)


def model_maps(model: nn.Module, images: Cifar10, config: Config) -> torch.Tensor:
    """IG maps (n, H, W) of ``model`` (eval mode) for the images' labels, with the config's IG settings."""
    x = to_float(images.images)
    result = integrated_gradients(model.eval(), x, images.labels, n_steps=config.ig_steps, method=config.ig_method,
                                  baseline=config.ig_baseline, chunk_size=chunk_size(config, torch.device("cpu")))
    return reduce_map(result.attributions)


def _flat_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"maps must be two tensors of the same shape (n, H, W), got {getattr(a, 'shape', a)} "
                         f"and {getattr(b, 'shape', b)}")
    return a.reshape(len(a), -1).double().numpy(), b.reshape(len(b), -1).double().numpy()


def spearman_per_image(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Spearman rank correlation over pixels of each pair of maps, (n, H, W) x2 -> (n,); NaN for a constant map."""
    x, y = _flat_pair(a, b)
    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
    denominator = np.sqrt((rx ** 2).sum(1) * (ry ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(1) / denominator, np.nan)


def top_fraction_iou(a: torch.Tensor, b: torch.Tensor, fraction: float = TOP_FRACTION) -> np.ndarray:
    """IoU of the top ``fraction`` pixels of each pair of maps (ties broken by position), (n, H, W) x2 -> (n,)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r} is not allowed; allowed: a number in (0, 1]")
    x, y = _flat_pair(a, b)
    k = max(1, int(round(fraction * x.shape[1])))
    top_x = np.zeros(x.shape, bool)
    top_y = np.zeros(y.shape, bool)
    np.put_along_axis(top_x, np.argsort(-x, axis=1, kind="stable")[:, :k], True, axis=1)
    np.put_along_axis(top_y, np.argsort(-y, axis=1, kind="stable")[:, :k], True, axis=1)
    return (top_x & top_y).sum(1) / (top_x | top_y).sum(1)


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
