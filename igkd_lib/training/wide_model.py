"""N students as one "wide" network: grouped convolutions, BatchNorm over N·C channels, a batched head.

Member i owns channels ``[i*C, (i+1)*C)`` of every layer: each convolution takes N times its groups
(its weight is the members' weights concatenated; depthwise convolutions stay depthwise), each
BatchNorm normalises N·C channels (per channel, so per member), the head is one batched matmul.
The wide network computes exactly what the N students compute (up to float rounding), and
:func:`split_states` gives back N ordinary student state dicts. Used by :mod:`igkd_lib.training.wide`.

Three layouts run the same parameters (:data:`LAYOUTS`): ``"grouped"`` runs each layer once for all
members (grouped kernels N times wider: the GPU's choice so far), ``"serial"`` runs the members' ordinary
layers one member after another on slices of the wide tensors (the CPU's choice: a grouped layer's
activations are N times larger and a 2-core CPU loses to the memory traffic), ``"member"`` keeps the
activations member-major, (N, B, H, W, C), with 1x1 convolutions as batched matmuls and the other convolutions
member by member on channels-last views (:mod:`igkd_lib.training.member_major`; a candidate for the GPU).
``bench campaign`` measures all three. Slices are views: gradients reach the wide parameters, running statistics are
updated in place, so the optimiser, :func:`split_states` and everything else see one network.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call

from igkd_lib.models import Classifier
from igkd_lib.training import member_major

__all__ = ["LAYOUTS", "WideLinear", "WideStudent", "default_layout", "resolve_layout", "widen", "split_states"]

LAYOUTS = ("grouped", "serial", "member")


def default_layout(device: torch.device) -> str:
    """``"serial"`` on CPU, ``"grouped"`` elsewhere (measured: ``python -m igkd_lib bench campaign``)."""
    return "serial" if device.type == "cpu" else "grouped"


def resolve_layout(choice: str, device: torch.device) -> str:
    """The layout a config's ``wide_layout`` means on ``device`` (``"auto"``: :func:`default_layout`)."""
    if choice == "auto":
        return default_layout(device)
    if choice not in LAYOUTS:
        raise ValueError(f"wide_layout={choice!r} is not allowed; allowed: auto, {', '.join(LAYOUTS)}")
    return choice


class WideLinear(nn.Module):
    """N linear layers as one batched matmul: (B, N, in) -> (B, N, out); weight (N, out, in), bias (N, out)."""

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]).clone())
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bni,noi->bno", x, self.weight) + self.bias


def _wide_conv(convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    first, n = convs[0], len(convs)
    wide = nn.Conv2d(first.in_channels * n, first.out_channels * n, first.kernel_size, first.stride,
                     first.padding, first.dilation, groups=first.groups * n, bias=first.bias is not None,
                     padding_mode=first.padding_mode)
    with torch.no_grad():
        wide.weight.copy_(torch.cat([conv.weight for conv in convs]))
        if first.bias is not None:
            wide.bias.copy_(torch.cat([conv.bias for conv in convs]))
    return wide


def _wide_norm(norms: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    first, n = norms[0], len(norms)
    wide = nn.BatchNorm2d(first.num_features * n, first.eps, first.momentum, first.affine,
                          first.track_running_stats)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(first, name) is not None:
                getattr(wide, name).copy_(torch.cat([getattr(norm, name) for norm in norms]))
        if first.num_batches_tracked is not None:
            wide.num_batches_tracked.copy_(first.num_batches_tracked)
    return wide


_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.Identity, nn.Hardswish, nn.SiLU)


def widen(modules: Sequence[nn.Module]) -> nn.Module:
    """One wide module standing for ``modules`` (same architecture, different weights), channels member-major."""
    first = modules[0]
    if any(type(module) is not type(first) for module in modules):
        raise ValueError(f"modules of types {sorted({type(m).__name__ for m in modules})} cannot be widened together")
    if isinstance(first, nn.Conv2d):
        return _wide_conv(modules)
    if isinstance(first, nn.BatchNorm2d):
        return _wide_norm(modules)
    if isinstance(first, nn.Linear):
        return WideLinear(modules)
    if isinstance(first, nn.Dropout):
        if first.p > 0:
            raise ValueError(f"dropout p={first.p} cannot be widened; allowed: 0 (dropout off)")
        return nn.Identity()
    if isinstance(first, _ELEMENTWISE):
        return copy.deepcopy(first)
    if not list(first.children()):
        raise ValueError(f"a {type(first).__name__} cannot be widened; allowed: Conv2d, BatchNorm2d, Linear, "
                         "element-wise activations and containers of them")
    wide = copy.copy(first)  # the container's attributes and forward; its children replaced below
    wide._modules = {name: widen([module.get_submodule(name) for module in modules])
                     for name in first._modules}
    wide._parameters, wide._buffers = {}, {}
    return wide


class WideStudent(nn.Module):
    """N students (:class:`igkd_lib.models.Classifier`) as one network, run in ``layout`` (:data:`LAYOUTS`).

    ``forward(x)``: x (B, N·3, H, W), member i's images in channels ``[3i, 3i+3)`` -> logits (N, B, classes).
    """

    def __init__(self, students: Sequence[Classifier], layout: str = "grouped"):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout={layout!r} is not allowed; allowed: {', '.join(LAYOUTS)}")
        self.n, self.layout = len(students), layout
        self.normalise = students[0].normalise
        if any(student.normalise != self.normalise for student in students):
            raise ValueError("students with and without input normalisation cannot be widened together")
        self.register_buffer("mean", students[0].mean.repeat(1, self.n, 1, 1), persistent=False)
        self.register_buffer("std", students[0].std.repeat(1, self.n, 1, 1), persistent=False)
        self.features = widen([student.features for student in students])
        self.classifier = widen([student.classifier for student in students])
        # serial layout: one member's ordinary layers, run on slices of the wide tensors (not a submodule:
        # its own tensors are never used, and it stays out of parameters(), state_dict() and .to())
        self._member = (copy.deepcopy(students[0]),) if layout == "serial" else ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalise:
            x = (x - self.mean) / self.std
        if self.layout == "serial":
            return self._serial(x)
        if self.layout == "member":
            h = member_major.features(self.features, member_major.to_member_major(x, self.n), self.n)
            return self.classifier(h.mean(dim=(2, 3)).transpose(0, 1)).transpose(0, 1)
        x = self.features(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x.view(x.shape[0], self.n, -1)).transpose(0, 1)

    def _serial(self, x: torch.Tensor) -> torch.Tensor:
        """The members one after another: member i's layers on its slices of every wide tensor."""
        member = self._member[0]
        _follow_modes(self.features, member.features)
        _follow_modes(self.classifier, member.classifier)
        features = _member_slices(self.features, self.n)
        heads = {name: value.unbind(0) for name, value in self.classifier.named_parameters()}
        channels = x.shape[1] // self.n
        logits = []
        for i in range(self.n):
            xi = x[:, i * channels:(i + 1) * channels].contiguous(memory_format=torch.channels_last)
            h = functional_call(member.features, {name: pieces[i] for name, pieces in features.items()}, (xi,))
            h = torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1)
            logits.append(functional_call(member.classifier, {name: pieces[i] for name, pieces in heads.items()},
                                          (h,)))
        return torch.stack(logits)


def _follow_modes(wide: nn.Module, member: nn.Module) -> None:
    """Give ``member``'s modules the training flags and BatchNorm momenta of their wide counterparts."""
    for wide_module, member_module in zip(wide.modules(), member.modules(), strict=True):
        member_module.training = wide_module.training
        if isinstance(member_module, nn.modules.batchnorm._BatchNorm):
            member_module.momentum = wide_module.momentum


def _member_slices(wide: nn.Module, n: int) -> dict[str, list[torch.Tensor]]:
    """Every parameter and buffer of a member-major wide module as N views (one split per tensor, so the
    backward pass writes each wide gradient once). A BatchNorm's batch counter is shared by the members:
    member 0 counts on the wide one, the others on copies of it, so every member sees the same count."""
    slices = {name: list(value.chunk(n)) for name, value in wide.named_parameters()}
    for name, value in wide.named_buffers():
        slices[name] = [value] + [value.clone() for _ in range(n - 1)] if value.dim() == 0 else list(value.chunk(n))
    return slices


def split_states(wide: WideStudent, templates: Sequence[dict]) -> list[dict]:
    """The members' ordinary state dicts (CPU copies), keyed and shaped like ``templates`` (their own)."""
    states = []
    wide_state = wide.state_dict()
    for index, template in enumerate(templates):
        state = {}
        for key, like in template.items():
            value = wide_state[key].detach()
            if value.dim() == like.dim() + 1:  # a batched head: (N, ...)
                value = value[index]
            elif value.dim() > 0:  # channels member-major: (N*C, ...)
                value = value.chunk(wide.n)[index]
            state[key] = value.to("cpu", like.dtype, copy=True).contiguous()
        states.append(state)
    return states
