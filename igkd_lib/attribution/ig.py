"""Batched Integrated Gradients (equal to captum's), gradient x input and SmoothGrad.

One engine serves all three: every (image, point) pair of a batch is flattened into chunks of
``chunk_size`` points, each chunk is one forward and one input-gradient backward of the model, and
the weighted gradients are summed back into their image. The integration rule is a name mapped
to its nodes and weights (as captum's ``approximation_methods``), so chunking never changes the
integral. See chapter 1 ("Integrated Gradients").
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np
import torch
from torch import nn

from igkd_lib.config import Config
from igkd_lib.models import CIFAR_MEAN
from igkd_lib.validators import check_int

__all__ = ["IGResult", "METHODS", "BASELINES", "integrated_gradients", "gradient_x_input", "smoothgrad",
           "reduce_map", "quadrature", "resolve_baseline", "frozen", "completeness_table", "chunk_size", "AUTO_CHUNK"]

# Interpolation points per forward/backward when ``ig_chunk`` is 0, by device type. A CPU is fastest
# with chunks whose activations stay in its caches, about 32 points per thread (measured on 2 cores,
# points/s: chunk 64 243, 128 208, 256 107; ``python -m igkd_lib bench ig`` sweeps it); a GPU needs
# large chunks to fill it (the memory of 1024 points fits a 16 GB card).
AUTO_CHUNK = {"cpu_per_thread": 32, "cpu_max": 256, "cuda": 1024, "mps": 256}

METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")
BASELINES = ("black", "mean")

# builds the (N * points) inputs of rows (k,) and point numbers (k,) -> (k, C, H, W)
PointFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class IGResult:
    """``attributions`` (N, C, H, W) float32; ``delta`` (N,) completeness gap, or None if not asked."""

    attributions: torch.Tensor
    delta: Optional[torch.Tensor] = None


# --------------------------------------------------------------------------- integration rules
def quadrature(method: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``alphas`` in [0, 1] and ``weights`` (float64, each (n_steps,)) of an integration rule.

    ``riemann_trapezoid`` is the true trapezoid rule on ``linspace(0, 1, n)``: weights 1/(n-1), halved
    at both ends, summing to 1. captum's ``riemann_trapezoid`` uses the same nodes with weights 1/n
    (halved at the ends), which sum to (n-1)/n: its maps are 2% low at n = 50.
    """
    n = n_steps
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return 0.5 * (1.0 + nodes), 0.5 * weights
    # Riemann nodes come from a float32 linspace, exactly as captum builds them (the last bits matter
    # on networks with kinks: float64 nodes change the maps by ~1e-3 relative).
    if method == "riemann_trapezoid":
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] /= 2
        return torch.linspace(0, 1, n).double().numpy(), weights
    first, last = {"riemann_left": (0.0, 1 - 1 / n), "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)),
                   "riemann_right": (1 / n, 1.0)}[method]
    return torch.linspace(first, last, n).double().numpy(), np.full(n, 1.0 / n)


# --------------------------------------------------------------------------- validation
def _check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if any(m.training for m in model.modules()):
        raise ValueError("model must be in eval mode (call model.eval()): BatchNorm in train mode couples "
                         "the samples of a batch and changes the maps")


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor (N, C, H, W) of pixels in [0, 1], got {shape}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError("images must hold pixels in [0, 1] (divide uint8 images by 255), got values in "
                         f"[{float(images.min()):.3g}, {float(images.max()):.3g}]")


def _check_targets(targets, n: int) -> torch.Tensor:
    targets = torch.as_tensor(targets)
    if targets.ndim == 0:
        targets = targets.expand(n)
    if targets.dtype.is_floating_point or targets.dtype == torch.bool or targets.shape != (n,):
        raise ValueError(f"targets must be integer class indices of shape ({n},), got dtype {targets.dtype} "
                         f"and shape {tuple(targets.shape)}")
    if n and targets.min() < 0:
        raise ValueError("targets must be class indices >= 0")
    return targets.long()




def resolve_baseline(baseline, images: torch.Tensor) -> torch.Tensor:
    """The baseline as a tensor broadcastable to ``images`` (N, C, H, W), on their device and dtype.

    ``"black"``: zeros in pixel space (the paper's text). ``"mean"``: the CIFAR-10 mean colour in
    pixel space (what the official code's zero in normalised space was). Or any broadcastable tensor.
    """
    if isinstance(baseline, str):
        if baseline == "black":
            return torch.zeros(1, images.shape[1], 1, 1, dtype=images.dtype, device=images.device)
        if baseline == "mean" and images.shape[1] == len(CIFAR_MEAN):
            return torch.tensor(CIFAR_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        raise ValueError(f"baseline={baseline!r} is not allowed; allowed: {', '.join(BASELINES)} (mean needs "
                         "3 channels) or a tensor broadcastable to the images")
    if not isinstance(baseline, torch.Tensor):
        raise ValueError(f"baseline must be 'black', 'mean' or a tensor, got {type(baseline).__name__}")
    try:
        torch.broadcast_shapes(baseline.shape, images.shape)
        if torch.broadcast_shapes(baseline.shape, images.shape) != images.shape:
            raise RuntimeError
    except RuntimeError:
        raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to images of shape "
                         f"{tuple(images.shape)}") from None
    return baseline.to(device=images.device, dtype=images.dtype)


# --------------------------------------------------------------------------- the engine
@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Parameters with ``requires_grad=False`` inside the block (no weight gradients), restored after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _memory_format(model: nn.Module) -> torch.memory_format:
    """channels-last if the model's convolution weights are (faster here, as ``prepare_model`` sets up)."""
    for p in model.parameters():
        if p.ndim == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last):
            return torch.channels_last
    return torch.contiguous_format


def _weighted_gradients(model: nn.Module, point_fn: PointFn, targets: torch.Tensor, weights: torch.Tensor,
                        shape: tuple, chunk_size: int) -> torch.Tensor:
    """Σ_j weights[j] ∂F_target(point_fn(i, j))/∂x for every image i -> (N, C, H, W) float32.

    Pairs are flattened image-major and cut into chunks of ``chunk_size`` points, so each image's
    sum runs over j in order whatever the chunking.
    """
    n_images, n_points = shape[0], len(weights)
    device, layout = _device_of(model), _memory_format(model)
    total = torch.zeros(shape, dtype=torch.float32, device=device)
    targets, weights = targets.to(device), weights.to(device=device, dtype=torch.float32)
    with frozen(model), torch.enable_grad():
        for start in range(0, n_images * n_points, chunk_size):
            pairs = torch.arange(start, min(start + chunk_size, n_images * n_points), device=device)
            rows, cols = pairs // n_points, pairs % n_points
            x = point_fn(rows, cols).contiguous(memory_format=layout).requires_grad_(True)
            logits = model(x)
            picked = logits.gather(1, targets[rows].unsqueeze(1)).sum()
            (grad,) = torch.autograd.grad(picked, x)
            total.index_add_(0, rows, grad.float() * weights[cols].view(-1, 1, 1, 1))
    return total


@torch.no_grad()
def _target_outputs(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """F_target(x) for each row of x (N, C, H, W) -> (N,) float32."""
    device, layout = _device_of(model), _memory_format(model)
    out = [model(x[s:s + chunk_size].to(device).contiguous(memory_format=layout)).float()
           .gather(1, targets[s:s + chunk_size].to(device).unsqueeze(1)).squeeze(1)
           for s in range(0, len(x), chunk_size)]
    return torch.cat(out) if out else torch.zeros(0, device=device)


def _integrated_gradients(model, images, targets, alphas, weights, baseline, chunk_size, return_delta) -> IGResult:
    device = _device_of(model)
    x = images.to(device=device, dtype=torch.float32)
    base = baseline.to(device)
    diff = x - base  # (N, C, H, W)
    start = base.expand_as(x)
    alpha = torch.as_tensor(alphas, dtype=torch.float32, device=device)

    def point_fn(rows, cols):
        return start[rows] + alpha[cols].view(-1, 1, 1, 1) * diff[rows]

    grads = _weighted_gradients(model, point_fn, targets, torch.as_tensor(weights), tuple(x.shape), chunk_size)
    attributions = grads * diff
    delta = None
    if return_delta:
        gap = _target_outputs(model, x, targets, chunk_size) - _target_outputs(model, start, targets, chunk_size)
        delta = (attributions.sum(dim=(1, 2, 3)) - gap).cpu()
    return IGResult(attributions.cpu(), delta)


# --------------------------------------------------------------------------- public API
def integrated_gradients(model: nn.Module, images: torch.Tensor, targets, *, n_steps: int = 50,
                         method: str = "gausslegendre", baseline="black", chunk_size: int = 256,
                         return_delta: bool = False) -> IGResult:
    """Integrated Gradients of ``model`` (eval mode) for a batch, equal to captum's.

    ``images`` (N, C, H, W) float pixels in [0, 1]; ``targets`` (N,) class indices (or one int).
    ``chunk_size`` interpolation points go through each forward/backward. Returns
    :class:`IGResult` with ``attributions`` (N, C, H, W) float32 on CPU and, if ``return_delta``,
    ``delta`` (N,) = Σ attributions − (F(x) − F(baseline)).
    """
    _check_model(model)
    _check_images(images)
    targets = _check_targets(targets, len(images))
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not allowed; allowed: {', '.join(METHODS)}")
    check_int("n_steps", n_steps, 2 if method == "riemann_trapezoid" else 1)
    check_int("chunk_size", chunk_size, 1)
    base = resolve_baseline(baseline, images)
    alphas, weights = quadrature(method, n_steps)
    return _integrated_gradients(model, images, targets, alphas, weights, base, chunk_size, return_delta)


def gradient_x_input(model: nn.Module, images: torch.Tensor, targets, *, chunk_size: int = 256) -> IGResult:
    """Gradient × input (N, C, H, W): one point per image through the same engine."""
    _check_model(model)
    _check_images(images)
    targets = _check_targets(targets, len(images))
    check_int("chunk_size", chunk_size, 1)
    base = resolve_baseline("black", images)
    return _integrated_gradients(model, images, targets, [1.0], [1.0], base, chunk_size, False)


def smoothgrad(model: nn.Module, images: torch.Tensor, targets, *, n_samples: int = 25, sigma: float = 0.15,
               seed: int = 0, chunk_size: int = 256) -> IGResult:
    """SmoothGrad: the mean gradient over ``n_samples`` noisy copies x + N(0, σ²) -> (N, C, H, W).

    The noise of image i is drawn from a generator seeded by (seed, i), so the result does not
    depend on ``chunk_size``.
    """
    _check_model(model)
    _check_images(images)
    targets = _check_targets(targets, len(images))
    check_int("n_samples", n_samples, 1)
    check_int("chunk_size", chunk_size, 1)
    if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or sigma < 0:
        raise ValueError(f"sigma={sigma!r} is not allowed; allowed: a number >= 0")
    device = _device_of(model)
    x = images.to(device=device, dtype=torch.float32)
    noise = torch.cat([torch.randn((n_samples, *x.shape[1:]), generator=torch.Generator().manual_seed(
        seed * 1_000_003 + i)) for i in range(len(x))]).to(device) if len(x) else x

    def point_fn(rows, cols):
        return x[rows] + sigma * noise[rows * n_samples + cols]

    weights = torch.full((n_samples,), 1.0 / n_samples)
    return IGResult(_weighted_gradients(model, point_fn, targets, weights, tuple(x.shape), chunk_size).cpu())


def reduce_map(attributions: torch.Tensor) -> torch.Tensor:
    """The paper's reduction: Σ over channels of |attribution|, (N, C, H, W) -> (N, H, W)."""
    if not isinstance(attributions, torch.Tensor) or attributions.ndim != 4:
        raise ValueError("attributions must be a tensor (N, C, H, W)")
    return attributions.abs().sum(dim=1)


def completeness_table(model: nn.Module, images: torch.Tensor, targets, steps=(2, 4, 8, 16, 32, 64),
                       methods=METHODS, baseline="black", chunk_size: int = 256):
    """Completeness gap per method and step count: a DataFrame (method, n_steps, gap, relative_gap).

    ``gap`` is the mean |Σ attr − (F(x) − F(baseline))| over the images; ``relative_gap`` divides it
    by the mean |F(x) − F(baseline)|. The convergence plot of chapter 1 draws it.
    """
    import pandas as pd

    rows = []
    for method in methods:
        for n in steps:
            if method == "riemann_trapezoid" and n < 2:
                continue
            result = integrated_gradients(model, images, targets, n_steps=n, method=method, baseline=baseline,
                                          chunk_size=chunk_size, return_delta=True)
            total = result.attributions.sum(dim=(1, 2, 3))
            gap = (total - result.delta).abs().mean()  # |F(x) - F(baseline)|
            rows.append(dict(method=method, n_steps=n, gap=float(result.delta.abs().mean()),
                             relative_gap=float(result.delta.abs().mean() / gap.clamp_min(1e-12))))
    return pd.DataFrame(rows)


def chunk_size(config: Config, device: torch.device) -> int:
    """Points per forward/backward: ``config.ig_chunk`` if > 0, else the device's :data:`AUTO_CHUNK`
    rounded to whole images (a multiple of ``config.ig_steps``, at least one image).

    Chunking changes only the speed, so the cache key leaves it out: whole-image chunks give
    bit-identical maps on CPU (tested); a chunk that splits an image's points changes float32
    rounding (about 1e-7 relative), far below the float16 storage.
    """
    if config.ig_chunk > 0:
        return config.ig_chunk
    if device.type in ("cuda", "mps"):
        target = AUTO_CHUNK[device.type]
    else:
        target = min(AUTO_CHUNK["cpu_max"], AUTO_CHUNK["cpu_per_thread"] * max(1, torch.get_num_threads()))
    return max(1, round(target / config.ig_steps)) * config.ig_steps
