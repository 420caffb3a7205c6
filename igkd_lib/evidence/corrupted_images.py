"""Corrupted test images: seeded, deterministic corruptions after CIFAR-10-C, with torch, numpy and Pillow only.

Five families that can be generated here, each at severities 1-5 (parameters after Hendrycks & Dietterich's
CIFAR-10-C, simplified): JPEG re-compression (PIL, lower quality), Gaussian noise, Gaussian blur, contrast and
brightness. The offline copy's test images are themselves JPEG q75 except an exact-pixel subset
(:func:`exact_pixel_mask`). :func:`correct_by_version` says which images a model gets right in each version. A GPU
window uses these (no pandas there); the tables are :mod:`igkd_lib.evidence.corruptions`'.
"""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from igkd_lib.data.augment import to_float
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.training.loop import predict_logits

__all__ = ["SEVERITIES", "CORRUPTIONS", "corrupt", "exact_pixel_mask", "versions", "correct_by_version", "subsets",
           "accuracy_rows"]

# parameter per severity 1..5
SEVERITIES = {
    "jpeg": (80, 65, 50, 30, 15),  # PIL quality
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # sd in [0, 1] pixels
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # sd in pixels
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor towards each image's mean
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to every pixel
}
CORRUPTIONS = tuple(SEVERITIES)


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    out = np.empty_like(x)
    for i, image in enumerate(x):
        buffer = io.BytesIO()
        Image.fromarray(image.transpose(1, 2, 0)).save(buffer, format="JPEG", quality=int(quality))
        out[i] = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")).transpose(2, 0, 1)
    return out


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(np.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-t ** 2 / (2 * sigma ** 2))
    kernel = (kernel / kernel.sum()).repeat(3, 1, 1, 1)  # (3, 1, 1, k)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel, groups=3)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.transpose(2, 3), groups=3)


def corrupt(images: torch.Tensor, kind: str, severity: int, seed: int = 0) -> torch.Tensor:
    """``images`` uint8 (N, 3, H, W) corrupted by ``kind`` at ``severity`` (1-5) -> uint8 (N, 3, H, W).

    Deterministic: the noise is drawn from a generator seeded by ``seed`` (and the severity).
    """
    if kind not in SEVERITIES:
        raise ValueError(f"kind={kind!r} is not allowed; allowed: {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"severity={severity!r} is not allowed; allowed: 1, 2, 3, 4, 5")
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError("images must be a uint8 tensor (N, 3, H, W)")
    level = SEVERITIES[kind][severity - 1]
    if kind == "jpeg":
        return torch.from_numpy(_jpeg(images.numpy(), level))
    x = to_float(images)
    if kind == "gaussian_noise":
        generator = torch.Generator().manual_seed(seed * 1_000_003 + severity)
        x = x + level * torch.randn(x.shape, generator=generator)
    elif kind == "gaussian_blur":
        x = _blur(x, level)
    elif kind == "contrast":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * level + mean
    else:
        x = x + level
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def exact_pixel_mask(data: Cifar10) -> torch.Tensor:
    """(N,) bool: which rows hold exact CIFAR-10 pixels: all for torchvision, the exact subset for the offline copy."""
    if data.source != "offline":
        return torch.ones(len(data), dtype=torch.bool)
    from igkd_lib.data.cifar10 import _NPZ, find_offline_copy

    folder = find_offline_copy()
    if folder is None or not (folder / _NPZ).is_file():
        raise ValueError("data from the offline copy, but its exact-pixel index file is not found")
    exact = np.load(folder / _NPZ)[f"{data.split}_exact_index"]
    return torch.from_numpy(np.isin(data.indices.numpy(), exact))


def versions(images: torch.Tensor, kinds=CORRUPTIONS, severities=(1, 3, 5), seed: int = 0) -> list[tuple]:
    """``(kind, severity, uint8 images)`` of every version: clean (severity 0) first, then each kind at each
    severity."""
    return [("clean", 0, images)] + [(k, s, corrupt(images, k, s, seed)) for k in kinds for s in severities]


def subsets(data: Cifar10) -> dict:
    """The image subsets results are given for: all, and the exact pixels where the data are the offline copy."""
    exact = exact_pixel_mask(data)
    return {"all": torch.ones_like(exact), "exact pixels": exact} if data.source == "offline" else {"all": exact}


def correct_by_version(model, versions_: list[tuple], labels: torch.Tensor, batch_size: int = 500,
                       device: torch.device | None = None) -> list[torch.Tensor]:
    """Per version, (N,) bool on the CPU: which images ``model`` (eval mode) classifies right."""
    device = device or torch.device("cpu")
    model = model.eval()
    return [predict_logits(model, images, batch_size, device).argmax(1) == labels for _, _, images in versions_]


def accuracy_rows(versions_: list[tuple], correct: list[torch.Tensor], masks: dict) -> list[dict]:
    """One row per version and subset: kind, severity, subset, n and accuracy (%; None for an empty subset), from
    :func:`correct_by_version`'s answers and :func:`subsets`' masks."""
    return [{"kind": kind, "severity": severity, "subset": subset, "n": int(mask.sum()),
             "accuracy": float(right[mask].float().mean() * 100) if mask.any() else None}
            for (kind, severity, _), right in zip(versions_, correct) for subset, mask in masks.items()]
