"""``python -m igkd_lib bench pointwise``: the wide student's 1x1 convolutions, grouped conv vs batched matmul.

The wide trainer (:mod:`igkd_lib.training.wide_model`) may run each member's 1x1 convolutions either as one
grouped convolution (groups = N) or as one batched matmul over (pixels, N, C_in) x (N, C_out, C_in);
both compute the same thing. This benchmark times forward + backward of every 1x1 convolution of the
student at its real input shapes (batch ``student_batch_size``, channels-last, bf16 autocast on CUDA),
summed over the layers, for each group size N, and prints the ratio: the kernel the wide model uses
is the one that measures faster on the device (grouped convolution unless this says otherwise).
"""
from __future__ import annotations

import torch
from torch import nn

from igkd_lib import models
from igkd_lib.bench.campaign import group_sizes
from igkd_lib.config import Config
from igkd_lib.provenance import device_name, resolve_device
from igkd_lib.timing import Stopwatch
from igkd_lib.training.loop import autocast

__all__ = ["pointwise_shapes", "grouped_conv", "batched_matmul", "run", "winner_lines", "cli"]


def pointwise_shapes(config: Config) -> list[tuple[int, int, int, int]]:
    """``(C_in, C_out, H, W)`` of every 1x1 convolution of the student, at 32x32 input."""
    student = models.student(config.student_cut)
    shapes = []

    def record(module, inputs, _output):
        shapes.append((module.in_channels, module.out_channels, *inputs[0].shape[2:]))

    hooks = [m.register_forward_hook(record) for m in student.modules()
             if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    with torch.no_grad():
        student.eval()(torch.zeros(1, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    return shapes


def grouped_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (B, N·C_in, H, W), weight (N, C_out, C_in) -> (B, N·C_out, H, W) by one grouped convolution."""
    n, c_out, c_in = weight.shape
    return nn.functional.conv2d(x, weight.reshape(n * c_out, c_in, 1, 1), groups=n)


def batched_matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The same as :func:`grouped_conv` as one batched matmul over the pixels (a view in channels-last)."""
    b, _, h, w = x.shape
    n, c_out, c_in = weight.shape
    pixels = x.permute(0, 2, 3, 1).reshape(b * h * w, n, c_in)
    out = torch.einsum("pni,noi->pno", pixels, weight)
    return out.reshape(b, h, w, n * c_out).permute(0, 3, 1, 2)


def _time(kernel, inputs, weights, device, reps: int) -> float:
    def once():
        for x, weight in zip(inputs, weights):
            with autocast(device):
                kernel(x, weight).float().sum().backward()
    once()  # warm-up
    watch = Stopwatch(device)
    for _ in range(reps):
        once()
    return watch.seconds / reps


def run(config: Config, reps: int | None = None, sizes: tuple[int, ...] | None = None) -> list[dict]:
    """One row per group size N: ms per step of all 1x1 layers (forward + backward) for both kernels
    (plain dicts: the GPU window calls this)."""
    device = resolve_device(config.device)
    reps = reps or (20 if device.type == "cuda" else 3)
    shapes, batch = pointwise_shapes(config), config.student_batch_size
    generator = torch.Generator().manual_seed(0)
    rows = []
    for n in sizes or group_sizes(device):
        inputs = [torch.randn(batch, n * c_in, h, w, generator=generator).to(device)
                  .contiguous(memory_format=torch.channels_last).requires_grad_() for c_in, _, h, w in shapes]
        weights = [(torch.randn(n, c_out, c_in, generator=generator) / c_in ** 0.5).to(device).requires_grad_()
                   for c_in, c_out, _, _ in shapes]
        with torch.no_grad():
            gap = max(float((grouped_conv(x, w) - batched_matmul(x, w)).abs().max()) for x, w in zip(inputs, weights))
        conv_s = _time(grouped_conv, inputs, weights, device, reps)
        matmul_s = _time(batched_matmul, inputs, weights, device, reps)
        rows.append({"members": n, "layers": len(shapes), "grouped_conv_ms": 1e3 * conv_s,
                     "batched_matmul_ms": 1e3 * matmul_s, "matmul_speedup": conv_s / matmul_s,
                     "max_abs_difference": gap, "batch_size": batch, "device": device_name(device)})
    return rows


def winner_lines(rows: list[dict]) -> list[str]:
    """Which kernel measured faster at each N."""
    return [f"N={row['members']}: {'batched matmul' if row['matmul_speedup'] > 1 else 'grouped conv'} faster "
            f"({row['matmul_speedup']:.2f}x matmul/conv speed)" for row in rows]


def cli(config: Config, args) -> int:
    """Print the table and which kernel wins at each N."""
    import pandas as pd

    rows = run(config)
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print("\n".join(winner_lines(rows)))
    return 0
