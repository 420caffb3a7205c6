"""BatchNorm whose batch statistics skip padded rows: the last partial batch in the full batch's shape.

A training set of 50,000 images in batches of 64 ends with a batch of 16. The graph engine
(:mod:`igkd_lib.training.graph_step`) pads that batch to 64 rows so that every step has one shape (one CUDA
graph, one round of kernel autotuning) and gives the padded rows zero weight in the loss. Only
BatchNorm mixes rows in a forward pass: :func:`mask_batchnorms` turns a model's BatchNorm2d layers into
:class:`MaskedBatchNorm2d`, which, while a :class:`RowWeights` holds a 0/1 weight per row, computes the
batch mean and variance (and updates the running statistics, unbiased variance as torch does) over
the rows of weight 1 only. With no weight set it is the ordinary layer (the full batches,
evaluation, :func:`igkd_lib.training.batchnorm.recalibrate`). The valid rows' outputs and gradients equal
those of the unpadded batch up to float rounding (tests/test_graph_step.py).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["RowWeights", "MaskedBatchNorm2d", "mask_batchnorms"]


class RowWeights:
    """The rows' weights (B,) (1: a real row, 0: padding) the masked layers use, or None (every row is real)."""

    def __init__(self):
        self.weight: torch.Tensor | None = None


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d whose training-mode statistics are over the rows of weight 1 of its :class:`RowWeights`."""

    rows: RowWeights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.rows.weight
        if weight is None or not self.training:
            return super().forward(x)
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        w = weight.to(xf.dtype).view(-1, 1, 1, 1)
        count = weight.to(xf.dtype).sum() * (x.shape[2] * x.shape[3])
        mean = (xf * w).sum((0, 2, 3)) / count
        centred = xf - mean.view(1, -1, 1, 1)
        var = (centred.square() * w).sum((0, 2, 3)) / count
        y = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        if self.track_running_stats:
            self._update_running(mean.detach(), var.detach(), count)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        factor = (1.0 / self.num_batches_tracked.to(mean.dtype)) if self.momentum is None else self.momentum
        unbiased = var * count / (count - 1).clamp_min(1)
        self.running_mean.mul_(1 - factor).add_((mean * factor).to(self.running_mean.dtype))
        self.running_var.mul_(1 - factor).add_((unbiased * factor).to(self.running_var.dtype))


def mask_batchnorms(model: nn.Module, rows: RowWeights) -> int:
    """Make every BatchNorm2d of ``model`` a :class:`MaskedBatchNorm2d` reading ``rows`` (in place: the same
    parameters, buffers and state-dict keys); returns how many."""
    count = 0
    for module in model.modules():
        if type(module) in (nn.BatchNorm2d, MaskedBatchNorm2d):
            module.__class__ = MaskedBatchNorm2d
            module.rows = rows
            count += 1
    return count
