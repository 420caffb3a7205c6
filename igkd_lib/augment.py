"""Whole-batch augmentation on the training device: joint random crop + flip, and the IG overlay.

Crop (zero padding) and horizontal flip are one gather with per-image offsets, so an IG map goes
through exactly the same transform as its image. The overlay blends each chosen image with its
(randomly sharpened, min-max normalised) map. See chapter 3 ("Overlay augmentation").
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["crop_flip_indices", "apply_crop_flip", "random_crop_flip", "to_float", "overlay",
           "normalise_maps", "draw_exponents", "student_batch"]


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


def draw_exponents(n: int, low: float = 1.0, high: float = 2.0, generator: torch.Generator | None = None
                   ) -> torch.Tensor:
    """``s = exp(U(ln low, ln high))``, shape (n,), float32 on the CPU (log-uniform in [low, high])."""
    if not 0 < low <= high:
        raise ValueError(f"exponent_low={low!r}, exponent_high={high!r} are not allowed; allowed: 0 < low <= high")
    u = torch.rand(n, generator=generator)
    return torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def normalise_maps(maps: torch.Tensor, exponents: torch.Tensor | None = None) -> torch.Tensor:
    """``maps`` (N, 1, H, W) >= 0, raised to ``exponents`` (N,), min-max normalised per map to [0, 1].

    A constant map (max == min) becomes all zeros.
    """
    maps = maps.float()
    if exponents is not None:
        maps = maps.pow(exponents.to(maps.device).view(-1, 1, 1, 1))
    low = maps.amin(dim=(1, 2, 3), keepdim=True)
    span = maps.amax(dim=(1, 2, 3), keepdim=True) - low
    return torch.where(span > 0, (maps - low) / span.clamp_min(torch.finfo(maps.dtype).tiny), 0.0)


def overlay(images: torch.Tensor, maps: torch.Tensor, *, p: float, blend: float, exponent_low: float = 1.0,
            exponent_high: float = 2.0, generator: torch.Generator | None = None, return_mask: bool = False):
    """Blend each image with its IG map with probability ``p``: ``x_hat = (1 - blend) x + blend m``.

    ``images`` float (N, 3, H, W) in [0, 1]; ``maps`` (N, 1, H, W) or (N, H, W), non-negative. Each
    chosen image uses ``m = normalise(map ** s)``, ``s`` log-uniform in [exponent_low, exponent_high],
    broadcast to 3 channels. Returns x_hat (N, 3, H, W), or ``(x_hat, mask (N,) bool)`` with
    ``return_mask``. The random draws (mask, then exponents) happen on the CPU ``generator``.
    """
    _check_fraction("p", p)
    _check_fraction("blend", blend)
    maps = maps.unsqueeze(1) if maps.dim() == 3 else maps
    if images.dim() != 4 or maps.shape[0] != images.shape[0] or maps.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"maps of shape {tuple(maps.shape)} do not match images of shape {tuple(images.shape)}; "
                         "allowed: maps (N, H, W) or (N, 1, H, W) with the images' N, H, W")
    n = images.shape[0]
    mask = torch.rand(n, generator=generator) < p
    exponents = draw_exponents(n, exponent_low, exponent_high, generator)
    mask = mask.to(images.device)
    if p == 0 or blend == 0:
        out = images
    else:
        blended = (1.0 - blend) * images + blend * normalise_maps(maps, exponents).to(images.dtype)
        out = torch.where(mask.view(n, 1, 1, 1), blended, images)
    return (out, mask) if return_mask else out


def student_batch(images_uint8: torch.Tensor, maps: torch.Tensor | None, config, generator: torch.Generator | None
                  ) -> torch.Tensor:
    """One student batch: uint8 (N, 3, H, W) -> float, crop + flip, IG overlay -> x (N, 3, H, W) in [0, 1].

    ``config.map_alignment == "aligned"``: the map goes through its image's crop and flip (one joint
    gather). ``"official"``: the official code's fault, the map is neither cropped nor flipped.
    ``maps`` (N, H, W) or (N, 1, H, W) are the batch's maps, or None when ``config.p == 0``.
    """
    x = to_float(images_uint8)
    if maps is None or config.p == 0:
        return random_crop_flip(x, padding=config.crop_padding, flip=config.flip, generator=generator)
    maps = maps.unsqueeze(1) if maps.dim() == 3 else maps
    if config.map_alignment == "aligned":
        x, maps = random_crop_flip(x, maps, padding=config.crop_padding, flip=config.flip, generator=generator)
    else:
        x = random_crop_flip(x, padding=config.crop_padding, flip=config.flip, generator=generator)
    return overlay(x, maps, p=config.p, blend=config.blend, exponent_low=config.exponent_low,
                   exponent_high=config.exponent_high, generator=generator)


def _check_fraction(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r} is not allowed; allowed: a number in [0, 1]")
