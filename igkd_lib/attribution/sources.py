"""Where the overlay maps come from: the teacher's IG (the paper) or a control that isolates what it adds.

``config.map_source`` names the source; :func:`source_maps` computes one chunk of maps (k, H, W)
for :mod:`igkd_lib.attribution.maps`, which caches each source under its own key. The controls:

- ``ig_untrained``: IG of a randomly initialised teacher (seed 0): attribution without knowledge;
- ``ig_weak``: IG of the shipped CPU teacher. Today the shipped teacher *is* the profile's teacher,
  so this equals ``ig``; it becomes a weaker-teacher control once a stronger paper teacher is used;
- ``grad_x_input`` and ``smoothgrad``: other attributions of the same teacher;
- ``sobel``: the Sobel gradient magnitude of the grey image (teacher-free edges);
- ``constant``: a constant map, which the overlay's min-max normalisation turns into zeros, so the
  overlaid image is ``(1 - blend) x``: a pure contrast reduction.

If a teacher-free map helps as much as IG, the overlay's gain is augmentation, not attribution.
See the chapter "Beyond the paper".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from igkd_lib import models
from igkd_lib.attribution.ig import chunk_size, gradient_x_input, integrated_gradients, reduce_map, smoothgrad
from igkd_lib.config import MAP_SOURCES, Config

__all__ = ["MAP_SOURCES", "TEACHER_FREE", "source_maps", "sobel_maps", "untrained_teacher"]

TEACHER_FREE = ("sobel", "constant")
_GREY = (0.299, 0.587, 0.114)


def untrained_teacher(device: torch.device, seed: int = 0) -> nn.Module:
    """The teacher's architecture with its seeded random initial weights, in eval mode."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = models.teacher()
    finally:
        torch.random.set_rng_state(state)
    return model.to(device).eval()


def sobel_maps(images: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the grey image: float (k, 3, H, W) in [0, 1] -> (k, H, W) >= 0."""
    grey = (images * torch.tensor(_GREY, dtype=images.dtype,
                                  device=images.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=images.dtype, device=images.device)
    kernels = torch.stack([kx, kx.T]).unsqueeze(1)  # (2, 1, 3, 3)
    g = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
    return g.pow(2).sum(1).sqrt()


def _weak_teacher(device: torch.device) -> nn.Module:
    from igkd_lib.training.teacher import load_shipped_teacher

    loaded = load_shipped_teacher()
    if loaded is None:
        raise ValueError("map_source='ig_weak' needs the shipped teacher's weights (igkd_lib/weights), "
                         "which are missing")
    return loaded[0].to(device).eval()


def source_maps(source: str, teacher: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                config: Config) -> torch.Tensor:
    """Maps (k, H, W) float32 on CPU of float images (k, 3, H, W) in [0, 1] for ``source``.

    ``teacher`` (eval mode) serves the attribution sources; ``targets`` (k,) their classes.
    """
    if source not in MAP_SOURCES:
        raise ValueError(f"map_source={source!r} is not allowed; allowed: {', '.join(MAP_SOURCES)}")
    if source == "sobel":
        return sobel_maps(images.float()).cpu()
    if source == "constant":
        return torch.ones(images.shape[0], *images.shape[-2:])
    chunk = chunk_size(config, images.device)
    if source == "grad_x_input":
        return reduce_map(gradient_x_input(teacher, images, targets, chunk_size=chunk).attributions)
    if source == "smoothgrad":
        return reduce_map(smoothgrad(teacher, images, targets, chunk_size=chunk).attributions)
    device = images.device
    model = {"ig": lambda: teacher, "ig_untrained": lambda: untrained_teacher(device),
             "ig_weak": lambda: _weak_teacher(device)}[source]()
    result = integrated_gradients(model, images, targets, n_steps=config.ig_steps, method=config.ig_method,
                                  baseline=config.ig_baseline, chunk_size=chunk)
    return reduce_map(result.attributions)
