"""Recompute a model's BatchNorm running statistics over clean training images before it is evaluated.

In a run of a few dozen or hundred steps, BatchNorm's running averages (momentum 0.1) lag the
weights, which change fast early in training: a student that fits its training batches can predict
one class on the test set in eval mode. :func:`recalibrate` replaces the running mean and variance
by their exact averages over clean (not augmented) training images under the current weights,
and changes nothing else (weights, optimiser, random streams). It is the config field
``bn_recalibrate``: on for the small profiles, off for ``paper`` (the paper did not do it).
See chapter 4 ("The four methods over seeds").
"""
from __future__ import annotations

import torch
from torch import nn

from igkd_lib.data.augment import to_float
from igkd_lib.validators import check_int

__all__ = ["RECALIBRATION_IMAGES", "batchnorm_layers", "recalibrate"]

# At most this many training images (the first ones of the subset, itself a seeded random draw):
# enough for the per-channel averages, and cheap next to an epoch (a quarter of quick's 2048).
RECALIBRATION_IMAGES = 512


def batchnorm_layers(model: nn.Module) -> list:
    """The model's BatchNorm layers that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate(model: nn.Module, images_uint8: torch.Tensor, batch_size: int = 256,
                limit: int = RECALIBRATION_IMAGES, copies: int = 1) -> int:
    """Set every BatchNorm's running mean/variance to its average over ``images_uint8[:limit]``.

    ``images_uint8`` (N, 3, H, W) uint8 pixels, fed as the evaluation feeds them (/255, channels
    last) on the model's device. Only the BatchNorm layers run in training mode (dropout stays off);
    each layer's momentum and the model's mode are restored. ``copies``: the input is repeated that
    many times along the channels (a wide model of that many members, :mod:`igkd_lib.training.wide`, whose
    members all see the same images). Returns the number of images used.
    """
    check_int("batch_size", batch_size, 1)
    check_int("limit", limit, 1)
    if images_uint8.ndim != 4 or images_uint8.dtype != torch.uint8 or len(images_uint8) == 0:
        raise ValueError("images_uint8 must be a non-empty uint8 tensor (N, C, H, W)")
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    was_training, momenta = model.training, [m.momentum for m in layers]
    model.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the batches
        layer.train()
    images = images_uint8[:limit]
    try:
        for start in range(0, len(images), batch_size):
            x = to_float(images[start:start + batch_size].to(device), dtype)
            model(x.repeat(1, copies, 1, 1).contiguous(memory_format=torch.channels_last))
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.train(was_training)
    return len(images)
