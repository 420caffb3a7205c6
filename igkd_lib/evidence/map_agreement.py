"""The numbers of the agreement study, with torch and numpy only (a GPU window computes them where scipy is absent).

A model's IG map (Σ over channels of |IG|, for the true label) on a seeded, class-balanced set of test images
(:func:`probe_images`) is compared with the teacher's per image: Spearman rank correlation over the pixels
(average ranks for ties, as ``scipy.stats.rankdata`` gives them: a black pixel's attribution against a black
baseline is exactly 0, so ties occur) and the IoU of the two maps' top 10 % pixels. The tables over images and
seeds are :mod:`igkd_lib.evidence.agreement`'s.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from igkd_lib.attribution.ig import chunk_size, integrated_gradients, reduce_map
from igkd_lib.config import Config
from igkd_lib.data.augment import to_float
from igkd_lib.data.cifar10 import Cifar10, stratified_subset

__all__ = ["TOP_FRACTION", "probe_images", "model_maps", "average_ranks", "spearman_per_image", "top_fraction_iou"]

TOP_FRACTION = 0.1


def probe_images(test: Cifar10, n: int, seed: int = 0) -> Cifar10:
    """A seeded, class-balanced set of ``n`` test images (the same for every model compared)."""
    return stratified_subset(test, n, seed)


def model_maps(model: nn.Module, images: Cifar10, config: Config, device: torch.device | None = None) -> torch.Tensor:
    """IG maps (n, H, W) on the CPU of ``model`` (eval mode, moved to ``device``) for the images' labels, with the
    config's IG settings, computed on ``device`` (default: the CPU) in the default float precision (no autocast)."""
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    x = to_float(images.images).to(device)
    result = integrated_gradients(model, x, images.labels.to(device), n_steps=config.ig_steps,
                                  method=config.ig_method, baseline=config.ig_baseline,
                                  chunk_size=chunk_size(config, device))
    return reduce_map(result.attributions).cpu()


def _flat_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"maps must be two tensors of the same shape (n, H, W), got {getattr(a, 'shape', a)} "
                         f"and {getattr(b, 'shape', b)}")
    return a.reshape(len(a), -1).double().numpy(), b.reshape(len(b), -1).double().numpy()


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..m along the last axis of (n, m) ``values``, tied values sharing their average rank."""
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    ranks = np.empty(values.shape, dtype=np.float64)
    positions = np.arange(1, values.shape[1] + 1, dtype=np.float64)
    for row in range(values.shape[0]):
        starts = np.flatnonzero(np.r_[True, ordered[row, 1:] != ordered[row, :-1]])  # first position of each tie run
        lengths = np.diff(np.r_[starts, values.shape[1]])
        mean_rank = np.repeat(positions[starts] + (lengths - 1) / 2.0, lengths)
        ranks[row, order[row]] = mean_rank
    return ranks


def spearman_per_image(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Spearman rank correlation over pixels of each pair of maps, (n, H, W) x2 -> (n,); NaN for a constant map."""
    x, y = _flat_pair(a, b)
    rx, ry = average_ranks(x), average_ranks(y)
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
