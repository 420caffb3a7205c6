"""Whole-batch augmentation on the training device: joint random crop + flip, and the IG overlay.

Crop (zero padding) and horizontal flip are one gather with per-image offsets, so an IG map goes
through exactly the same transform as its image. The overlay blends each chosen image with its
(randomly sharpened, min-max normalised) map. See chapter 3 ("Overlay augmentation").

Training draws an epoch's randomness ahead in one go (:func:`epoch_draws`): the shuffle, crops and flips
from the epoch's generator, the overlay's mask and exponents from a generator of their own, so one
seed gives every method the same shuffles, crops and flips (paired arms). :func:`draws_batch` turns a
batch's draws into the student's input, for one run or for many runs' rows side by side.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from igkd_lib.validators import check_number

__all__ = ["crop_flip_indices", "apply_crop_flip", "random_crop_flip", "random_crop_flip_with_maps", "to_float",
           "overlay", "overlay_with_mask",
           "normalise_maps", "draw_exponents", "student_batch", "draw_crops", "draw_overlay", "epoch_draws",
           "overlay_generator", "draws_batch", "DRAW_KEYS"]

# The per-image random draws of a student batch (see :func:`epoch_draws`).
DRAW_KEYS = ("offset_y", "offset_x", "flipped", "overlay_u", "exponents")


def to_float(images_uint8: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """uint8 (N, C, H, W) -> floats in [0, 1] of ``dtype`` (default: torch's, float32 unless a test chose
    float64). The library's one uint8 -> float pixel conversion."""
    return images_uint8.to(dtype or torch.get_default_dtype()).div_(255.0)


def draw_crops(n: int, padding: int, flip: bool, generator: torch.Generator | None) -> dict:
    """Crop offsets and flips of ``n`` images on the CPU: offset_y, offset_x (n,) int64, flipped (n,) bool."""
    offset_y = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    offset_x = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flipped = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    return {"offset_y": offset_y, "offset_x": offset_x, "flipped": flipped}


def _indices(offset_y: torch.Tensor, offset_x: torch.Tensor, flipped: torch.Tensor, size: int):
    ramp = torch.arange(size, device=offset_y.device).unsqueeze(0)
    rows = offset_y.view(-1, 1) + ramp
    cols = torch.where(flipped.view(-1, 1), offset_x.view(-1, 1) + size - 1 - ramp, offset_x.view(-1, 1) + ramp)
    return rows, cols


def crop_flip_indices(n: int, size: int, padding: int, flip: bool, generator: torch.Generator | None,
                      device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices (N, size) into the padded images; a flipped image reads its columns backwards."""
    crops = draw_crops(n, padding, flip, generator)
    rows, cols = _indices(crops["offset_y"], crops["offset_x"], crops["flipped"], size)
    return rows.to(device), cols.to(device)


def apply_crop_flip(batch: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, padding: int) -> torch.Tensor:
    """Apply the indices of :func:`crop_flip_indices` to ``batch`` (N, C, H, W), zero padding."""
    padded = F.pad(batch, (padding, padding, padding, padding)) if padding else batch
    n, c = batch.shape[:2]
    index_n = torch.arange(n, device=batch.device).view(n, 1, 1, 1)
    index_c = torch.arange(c, device=batch.device).view(1, c, 1, 1)
    return padded[index_n, index_c, rows.view(n, 1, -1, 1), cols.view(n, 1, 1, -1)]


def random_crop_flip(images: torch.Tensor, *, padding: int = 4, flip: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop (zero ``padding``) and horizontal flip of a whole batch (N, C, H, W) -> (N, C, H, W)."""
    rows, cols = crop_flip_indices(images.shape[0], images.shape[-1], padding, flip, generator, images.device)
    return apply_crop_flip(images, rows, cols, padding)


def random_crop_flip_with_maps(images: torch.Tensor, maps: torch.Tensor, *, padding: int = 4, flip: bool = True,
                               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`random_crop_flip` of ``images`` (N, C, H, W) with ``maps`` (N, 1, H, W) transformed identically
    (the same draws as :func:`random_crop_flip` with the same generator): ``(images, maps)``."""
    rows, cols = crop_flip_indices(images.shape[0], images.shape[-1], padding, flip, generator, images.device)
    return apply_crop_flip(images, rows, cols, padding), apply_crop_flip(maps, rows, cols, padding)


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
            exponent_high: float = 2.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Blend each image with its IG map with probability ``p``: ``x_hat = (1 - blend) x + blend m``.

    ``images`` float (N, 3, H, W) in [0, 1]; ``maps`` (N, 1, H, W) or (N, H, W), non-negative. Each
    chosen image uses ``m = normalise(map ** s)``, ``s`` log-uniform in [exponent_low, exponent_high],
    broadcast to 3 channels. Returns x_hat (N, 3, H, W). The random draws (mask, then exponents)
    happen on the CPU ``generator``; :func:`overlay_with_mask` also returns which images were chosen.
    """
    return overlay_with_mask(images, maps, p=p, blend=blend, exponent_low=exponent_low, exponent_high=exponent_high,
                             generator=generator)[0]


def overlay_with_mask(images: torch.Tensor, maps: torch.Tensor, *, p: float, blend: float, exponent_low: float = 1.0,
                      exponent_high: float = 2.0, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`overlay` and the images it chose: ``(x_hat (N, 3, H, W), mask (N,) bool)``."""
    check_number("p", p, 0, 1)
    check_number("blend", blend, 0, 1)
    maps = maps.unsqueeze(1) if maps.dim() == 3 else maps
    if images.dim() != 4 or maps.shape[0] != images.shape[0] or maps.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"maps of shape {tuple(maps.shape)} do not match images of shape {tuple(images.shape)}; "
                         "allowed: maps (N, H, W) or (N, 1, H, W) with the images' N, H, W")
    n = images.shape[0]
    draws = draw_overlay(n, exponent_low, exponent_high, generator)
    mask, exponents = (draws["overlay_u"] < p).to(images.device), draws["exponents"]
    if p == 0 or blend == 0:
        out = images
    else:
        blended = (1.0 - blend) * images + blend * normalise_maps(maps, exponents).to(images.dtype)
        out = torch.where(mask.view(n, 1, 1, 1), blended, images)
    return out, mask


def draw_overlay(n: int, low: float, high: float, generator: torch.Generator | None) -> dict:
    """The overlay's draws for ``n`` images on the CPU: overlay_u (n,) (chosen when < p), exponents (n,)."""
    overlay_u = torch.rand(n, generator=generator)
    return {"overlay_u": overlay_u, "exponents": draw_exponents(n, low, high, generator)}


def overlay_generator(seed: int, epoch: int) -> torch.Generator:
    """The overlay's own CPU generator of one epoch (apart from the shuffle's, crops' and flips')."""
    return torch.Generator().manual_seed(0x5EED_0F_0E7A + seed * 1_000_033 + epoch)


def epoch_draws(n: int, config, generator: torch.Generator, overlay_gen: torch.Generator) -> dict:
    """An epoch's randomness on the CPU, drawn in one go; every tensor (n,), indexed by the epoch's position.

    ``order`` (the shuffle), then crops and flips, from ``generator``; the overlay's ``overlay_u`` and
    ``exponents`` from ``overlay_gen``, so a method with an overlay shuffles, crops and flips exactly
    like one without.
    """
    order = torch.randperm(n, generator=generator)
    crops = draw_crops(n, config.crop_padding, config.flip, generator)
    return {"order": order, **crops, **draw_overlay(n, config.exponent_low, config.exponent_high, overlay_gen)}


def draws_batch(images_uint8: torch.Tensor, maps: torch.Tensor | None, draws: dict, *, padding: int,
                p: torch.Tensor | float, blend: torch.Tensor | float, aligned: torch.Tensor | bool = True
                ) -> torch.Tensor:
    """Student input x (N, 3, H, W) in [0, 1] from uint8 images (N, 3, H, W) and their draws (N,) each.

    ``maps`` (N, H, W) or None (no overlay). ``p``, ``blend`` and ``aligned`` (the map follows its
    image's crop and flip, else it is used as stored: the official code's fault) are numbers, or
    (N,) tensors when the rows belong to several runs. Image i is overlaid when ``overlay_u[i] < p[i]``.
    """
    size = images_uint8.shape[-1]
    rows, cols = _indices(draws["offset_y"], draws["offset_x"], draws["flipped"], size)
    x = apply_crop_flip(to_float(images_uint8), rows, cols, padding)
    if maps is None:
        return x
    n = x.shape[0]
    if isinstance(aligned, torch.Tensor):
        identity = torch.arange(padding, padding + size, device=x.device).expand(n, size)
        rows, cols = (torch.where(aligned.view(-1, 1), index, identity) for index in (rows, cols))
    elif not aligned:
        rows = cols = torch.arange(padding, padding + size, device=x.device).expand(n, size)
    maps = apply_crop_flip(maps.reshape(n, 1, size, size), rows, cols, padding)
    if isinstance(blend, torch.Tensor):  # 1 - blend in the knobs' own precision, as for a Python number
        keep, blend = ((1.0 - blend).view(-1, 1, 1, 1).to(x.dtype), blend.view(-1, 1, 1, 1).to(x.dtype))
    else:
        keep, blend = 1.0 - float(blend), float(blend)
    p = p.view(-1, 1, 1, 1).to(x.dtype) if isinstance(p, torch.Tensor) else float(p)
    blended = keep * x + blend * normalise_maps(maps, draws["exponents"]).to(x.dtype)
    return torch.where(draws["overlay_u"].view(-1, 1, 1, 1) < p, blended, x)


def student_batch(images_uint8: torch.Tensor, maps: torch.Tensor | None, config, generator: torch.Generator | None,
                  overlay_gen: torch.Generator | None = None) -> torch.Tensor:
    """One student batch: uint8 (N, 3, H, W) -> float, crop + flip, IG overlay -> x (N, 3, H, W) in [0, 1].

    ``config.map_alignment == "aligned"``: the map goes through its image's crop and flip (one joint
    gather). ``"official"``: the official code's fault, the map is neither cropped nor flipped.
    ``maps`` (N, H, W) or (N, 1, H, W) are the batch's maps, or None when ``config.p == 0``. Crops and
    flips are drawn from ``generator``, then the overlay's mask and exponents from ``overlay_gen``
    (default: ``generator``).
    """
    check_number("p", config.p, 0, 1)
    check_number("blend", config.blend, 0, 1)
    n, device = images_uint8.shape[0], images_uint8.device
    draws = draw_crops(n, config.crop_padding, config.flip, generator)
    use_maps = maps is not None and config.p > 0
    if use_maps:
        draws |= draw_overlay(n, config.exponent_low, config.exponent_high,
                              generator if overlay_gen is None else overlay_gen)
    return draws_batch(images_uint8, maps.to(device) if use_maps else None,
                       {k: v.to(device) for k, v in draws.items()}, padding=config.crop_padding, p=config.p,
                       blend=config.blend, aligned=config.map_alignment == "aligned")


