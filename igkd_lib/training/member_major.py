"""The member-major layout of a wide network: N students' activations as one (N, B, H, W, C) tensor.

A third way to run the wide network of :mod:`igkd_lib.training.wide_model` (its layout ``"member"``), on the
same wide parameters: a 1x1 convolution is one batched matmul over the members, every other convolution (the
depthwise 3x3 layers, the stem) runs member by member on that member's block read as a channels-last image batch
(cuDNN's kernels on a GPU, no copy in), BatchNorm is explicit per-(member, channel) statistics that update the wide
running statistics in place as ``nn.BatchNorm2d`` does. The grouped layout runs each layer as one grouped kernel N
times wider; which of the two is faster is measured on the GPU (``python -m igkd_lib bench campaign`` and a
window's probe), never assumed.

:func:`features` walks the widened module tree (containers in order, an inverted residual's skip connection) and
refuses any layer it does not know, naming it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["to_member_major", "features", "batch_norm", "pointwise", "per_member"]


def to_member_major(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, N·C, H, W), member i's channels ``[iC, (i+1)C)`` -> (N, B, H, W, C)."""
    b, nc, h, w = x.shape
    return x.view(b, n, nc // n, h, w).permute(1, 0, 3, 4, 2)


def batch_norm(x: torch.Tensor, norm: nn.BatchNorm2d, n: int) -> torch.Tensor:
    """``norm`` (N·C channels, member-major) on x (N, B, H, W, C): batch statistics per (member, channel) in training
    (the running statistics updated in place, unbiased variance, ``momentum`` or the cumulative average where it
    is None), the running statistics in evaluation. A :class:`~igkd_lib.training.masked_batchnorm.MaskedBatchNorm2d`
    with row weights set (the graph engine's padded last batch) takes its statistics over the rows of weight 1."""
    c = x.shape[-1]
    if norm.training or norm.running_mean is None:
        rows = getattr(getattr(norm, "rows", None), "weight", None)
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        if rows is None:  # a Python count: no tensor is made here, so a CUDA graph can capture the step
            var, mean = torch.var_mean(xf, dim=(1, 2, 3), correction=0)  # (N, C)
            count = x[0].numel() // c
        else:
            w = rows.to(xf.dtype).view(1, -1, 1, 1, 1)
            count = rows.to(xf.dtype).sum() * (x.shape[2] * x.shape[3])
            mean = (xf * w).sum((1, 2, 3)) / count
            var = ((xf - mean[:, None, None, None]).square() * w).sum((1, 2, 3)) / count
        if norm.training and norm.track_running_stats:
            _update_running(norm, mean, var, count)
    else:
        mean, var = norm.running_mean.view(n, c), norm.running_var.view(n, c)
    scale = torch.rsqrt(var + norm.eps)
    if norm.affine:
        scale = scale * norm.weight.view(n, c)
        shift = norm.bias.view(n, c) - mean * scale
    else:
        shift = -mean * scale
    return (x * scale[:, None, None, None] + shift[:, None, None, None]).to(x.dtype)


@torch.no_grad()
def _update_running(norm: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor, count) -> None:
    """The running statistics' update of ``nn.BatchNorm2d``; ``count`` (rows x pixels) an int or a device tensor."""
    norm.num_batches_tracked.add_(1)
    momentum = (1.0 / norm.num_batches_tracked.to(mean.dtype)) if norm.momentum is None else norm.momentum
    if isinstance(count, torch.Tensor):
        unbiased = var * count / (count - 1).clamp_min(1)
    else:
        unbiased = var * (count / max(count - 1, 1))
    norm.running_mean.mul_(1 - momentum).add_((mean.detach().flatten() * momentum).to(norm.running_mean.dtype))
    norm.running_var.mul_(1 - momentum).add_((unbiased.detach().flatten() * momentum).to(norm.running_var.dtype))


def pointwise(x: torch.Tensor, conv: nn.Conv2d, n: int) -> torch.Tensor:
    """A wide 1x1 convolution (``groups`` = N, stride 1) as one batched matmul: (N, B, H, W, Cin) -> (.., Cout)."""
    _, b, h, w, c = x.shape
    weight = conv.weight.view(n, -1, c)  # (N, Cout, Cin)
    out = torch.bmm(x.reshape(n, b * h * w, c), weight.transpose(1, 2)).view(n, b, h, w, -1)
    return out if conv.bias is None else out + conv.bias.view(n, 1, 1, 1, -1)


def per_member(x: torch.Tensor, conv: nn.Conv2d, n: int) -> torch.Tensor:
    """Any other wide convolution (the depthwise 3x3 layers, the stem) member by member: member i's (B, H, W, C) block
    is a channels-last (B, C, H, W) tensor as it lies in memory, so each call is the ordinary (cuDNN) kernel on its
    own weights, with no copy in; the N outputs are stacked member-major."""
    weights = conv.weight.chunk(n)
    biases = conv.bias.chunk(n) if conv.bias is not None else (None,) * n
    outs = [F.conv2d(x[i].permute(0, 3, 1, 2), weights[i], biases[i], conv.stride, conv.padding, conv.dilation,
                     conv.groups // n).permute(0, 2, 3, 1) for i in range(n)]
    return torch.stack(outs)


def _conv(x: torch.Tensor, conv: nn.Conv2d, n: int) -> torch.Tensor:
    if conv.padding_mode != "zeros":
        raise ValueError(f"a convolution with padding_mode={conv.padding_mode!r} cannot run member-major; allowed: "
                         "zeros")
    one_by_one = conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0)
    if one_by_one and conv.groups == n:
        return pointwise(x, conv, n)
    return per_member(x, conv, n)


def features(module: nn.Module, x: torch.Tensor, n: int) -> torch.Tensor:
    """Run a widened ``module`` (:func:`igkd_lib.training.wide_model.widen`) on x (N, B, H, W, C), member-major."""
    if isinstance(module, nn.Conv2d):
        return _conv(x, module, n)
    if isinstance(module, nn.BatchNorm2d):
        return batch_norm(x, module, n)
    if isinstance(module, nn.ReLU6):
        return x.clamp(0, 6)
    if isinstance(module, nn.ReLU):
        return x.clamp_min(0)
    if isinstance(module, nn.Identity):
        return x
    if isinstance(module, nn.Sequential):
        for child in module:
            x = features(child, x, n)
        return x
    if hasattr(module, "use_res_connect") and hasattr(module, "conv"):  # torchvision's InvertedResidual
        out = features(module.conv, x, n)
        return x + out if module.use_res_connect else out
    raise ValueError(f"a {type(module).__name__} cannot run member-major; allowed: Conv2d, BatchNorm2d, ReLU6, ReLU, "
                     "Identity, Sequential and inverted residual blocks")
