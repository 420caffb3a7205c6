"""Whole-batch augmentation on the training device: joint random crop + flip of images and maps.

Crop (zero padding) and horizontal flip are one gather with per-image offsets, so an IG map goes
through exactly the same transform as its image. See chapter 3 ("Overlay augmentation").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["crop_flip_indices", "apply_crop_flip", "random_crop_flip", "to_float"]


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1]."""
    return images_uint8.float().div_(255.0)


def crop_flip_indices(n: int, size: int, padding: int, flip: bool, generator: torch.Generator | None,
                      device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices (N, size) into the padded images; a flipped image reads its columns backwards."""
    offset_y = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    offset_x = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    ramp = torch.arange(size).unsqueeze(0)
    rows = offset_y + ramp
    cols = offset_x + ramp
    if flip:
        flipped = torch.rand(n, 1, generator=generator) < 0.5
        cols = torch.where(flipped, offset_x + size - 1 - ramp, cols)
    return rows.to(device), cols.to(device)


def apply_crop_flip(batch: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, padding: int) -> torch.Tensor:
    """Apply the indices of :func:`crop_flip_indices` to ``batch`` (N, C, H, W), zero padding."""
    padded = F.pad(batch, (padding, padding, padding, padding)) if padding else batch
    n, c = batch.shape[:2]
    index_n = torch.arange(n, device=batch.device).view(n, 1, 1, 1)
    index_c = torch.arange(c, device=batch.device).view(1, c, 1, 1)
    return padded[index_n, index_c, rows.view(n, 1, -1, 1), cols.view(n, 1, 1, -1)]


def random_crop_flip(images: torch.Tensor, maps: torch.Tensor | None = None, *, padding: int = 4,
                     flip: bool = True, generator: torch.Generator | None = None):
    """Random crop (zero ``padding``) and horizontal flip of a whole batch; ``maps`` (N, 1, H, W) follow.

    Returns the images, or ``(images, maps)`` transformed identically when ``maps`` is given.
    """
    rows, cols = crop_flip_indices(images.shape[0], images.shape[-1], padding, flip, generator, images.device)
    out = apply_crop_flip(images, rows, cols, padding)
    if maps is None:
        return out
    return out, apply_crop_flip(maps, rows, cols, padding)
