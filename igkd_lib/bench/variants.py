"""Deployment variants of one model for inference, and the check that they all compute the same thing.

``variants(model, example)`` returns callables ``x (N, 3, 32, 32) in [0, 1] -> logits (N, 10)``:
eager, channels-last, BatchNorm folded into the convolutions (with and without channels-last),
``torch.compile`` of the folded model, and the model exported to ONNX and run by ONNX Runtime.
A variant that cannot be built here is recorded in ``.unavailable`` with its reason, never raised.
See chapter 6 ("Latency").
"""
from __future__ import annotations

import copy
import io
import math
import signal
import threading
import warnings
from contextlib import contextmanager
from typing import Callable

import torch
from torch import nn

from igkd_lib.timing import Stopwatch

__all__ = ["VariantSet", "fold_batchnorm", "randomise_batchnorm", "variants", "check_equal"]


class VariantSet(dict):
    """``name -> callable``; ``unavailable`` maps a variant that could not be built to ``"unavailable: reason"``."""

    def __init__(self) -> None:
        super().__init__()
        self.unavailable: dict[str, str] = {}
        self.build_seconds: dict[str, float] = {}


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode where every ``Conv2d`` directly followed by a ``BatchNorm2d`` in an
    ``nn.Sequential`` (torchvision's ``Conv2dNormActivation`` and ``InvertedResidual.conv``) becomes one
    ``Conv2d`` with a bias, and the BatchNorm an ``Identity``. Exact up to float rounding."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, nn.Sequential):
            _fold_sequential(module)
    return folded


@torch.no_grad()
def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every ``BatchNorm2d`` non-trivial statistics and affine parameters, like a trained model's
    (a fresh one's are mean 0, variance 1, gamma 1, beta 0, which makes folding nearly a no-op)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(c, generator=generator) * 0.5 + 0.75)
            module.weight.copy_(torch.rand(c, generator=generator) * 0.5 + 0.75)
            module.bias.copy_(torch.randn(c, generator=generator) * 0.1)
    return model.eval()


def _fold_sequential(sequence: nn.Sequential) -> None:
    names = list(sequence._modules)
    for first, second in zip(names, names[1:]):
        conv, norm = sequence._modules[first], sequence._modules[second]
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and norm.track_running_stats:
            sequence._modules[first] = _fold_pair(conv, norm)
            sequence._modules[second] = nn.Identity()


@torch.no_grad()
def _fold_pair(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """``bn(conv(x)) = conv'(x)`` with ``w' = w * s`` and ``b' = (b - mean) * s + beta``,
    ``s = gamma / sqrt(var + eps)``."""
    weight = conv.weight.double()  # (C_out, C_in / groups, k, k)
    gamma = norm.weight.double() if norm.affine else torch.ones_like(norm.running_var, dtype=torch.float64)
    beta = norm.bias.double() if norm.affine else torch.zeros_like(gamma)
    scale = gamma / torch.sqrt(norm.running_var.double() + norm.eps)  # (C_out,)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    fused = fused.to(device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_(weight * scale.view(-1, 1, 1, 1))
    fused.bias.copy_((bias - norm.running_mean.double()) * scale + beta)
    return fused


def _channels_last(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    model = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model(x.contiguous(memory_format=torch.channels_last))
    return forward


@contextmanager
def _deadline(seconds: float | None):
    """Raise ``TimeoutError`` after ``seconds`` (main thread on Unix only; elsewhere no limit)."""
    usable = seconds and hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def _alarm(signum, frame):
        raise TimeoutError(f"took longer than {seconds:g} s")
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _compiled(model: nn.Module, example: torch.Tensor, timeout: float | None) -> Callable:
    """``torch.compile`` of the model; the first call (the compilation) happens here, under a deadline."""
    compiled = torch.compile(model, dynamic=False)
    try:
        with _deadline(timeout), torch.inference_mode():
            compiled(example)
    except BaseException:
        torch._dynamo.reset()
        raise
    return compiled


def _onnxruntime(model: nn.Module, example: torch.Tensor, threads: int | None) -> Callable:
    """Export to ONNX (dynamic batch) and run with ONNX Runtime's CPU provider."""
    import onnxruntime as ort

    if example.device.type != "cpu":
        raise RuntimeError("only the CPU provider is installed (onnxruntime-gpu is not)")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(copy.deepcopy(model).eval().cpu(), (example.cpu(),), buffer, dynamo=False,
                          input_names=["x"], output_names=["logits"], opset_version=17,
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"x": x.detach().cpu().numpy()})[0])
    return forward


def _add(found: VariantSet, name: str, build: Callable[[], Callable]) -> None:
    watch = Stopwatch()
    try:
        found[name] = build()
    except Exception as error:  # a variant that cannot be built is reported, never fatal
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        found.unavailable[name] = f"unavailable: {type(error).__name__}: {reason}"
    found.build_seconds[name] = watch.seconds


def variants(model: nn.Module, example: torch.Tensor, *, compile: bool = True, onnx: bool = True,
             compile_timeout: float | None = 180.0, threads: int | None = None) -> VariantSet:
    """Deployment variants of ``model`` (eval mode). ``example``: (N, 3, 32, 32) on the model's device.

    ``compile=False`` or ``onnx=False`` records those variants as unavailable ("skipped"); a
    compilation longer than ``compile_timeout`` seconds is abandoned. ``threads``: ONNX Runtime's
    intra-op threads (default: torch's)."""
    if not isinstance(example, torch.Tensor) or example.dim() != 4 or example.shape[1] != 3:
        raise ValueError(f"example must be a tensor (N, 3, H, W); got {getattr(example, 'shape', type(example))}")
    model = model.eval()
    found = VariantSet()
    found["eager"] = model
    found["channels_last"] = _channels_last(model)
    folded = fold_batchnorm(model)
    found["bn_folded"] = folded
    found["bn_folded_channels_last"] = _channels_last(folded)
    if compile:
        _add(found, "compiled", lambda: _compiled(folded, example, compile_timeout))
    else:
        found.unavailable["compiled"] = "unavailable: skipped (compile=False)"
    if onnx:
        _add(found, "onnxruntime", lambda: _onnxruntime(model, example, threads))
    else:
        found.unavailable["onnxruntime"] = "unavailable: skipped (onnx=False)"
    return found


@torch.inference_mode()
def check_equal(found: dict, example: torch.Tensor, *, rtol: float = 1e-4, atol: float = 1e-5) -> dict[str, dict]:
    """Each variant's output against ``found["eager"]`` on ``example``.

    Returns ``name -> {"max_abs_diff", "tolerance", "equal"}``, tolerance ``atol + rtol * max|eager|``."""
    if "eager" not in found:
        raise ValueError("variants must contain 'eager' (the reference)")
    reference = found["eager"](example).float().cpu()
    tolerance = atol + rtol * reference.abs().max().item()
    report = {}
    for name, forward in found.items():
        output = forward(example).float().cpu()
        diff = (output - reference).abs().max().item() if output.shape == reference.shape else math.inf
        report[name] = {"max_abs_diff": diff, "tolerance": tolerance, "equal": diff <= tolerance}
    return report
