"""Agreement of bf16 IG maps with fp32 ones, measured in the window before bf16 maps are used."""
from __future__ import annotations

import torch

from igkd_lib.attribution.maps import _compute_chunk

__all__ = ["bf16_agreement", "spearman_rows"]


def spearman_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row of ``a`` and ``b`` (N, D) -> (N,) (ties ranked by position)."""
    ranks = [x.argsort(dim=1).argsort(dim=1).double() for x in (a, b)]
    centred = [r - r.mean(dim=1, keepdim=True) for r in ranks]
    return (centred[0] * centred[1]).sum(1) / (centred[0].norm(dim=1) * centred[1].norm(dim=1))


def bf16_agreement(config, teacher, train, images: int = 256) -> dict:
    """fp32 and bf16 maps of the first ``images`` training images: Spearman per map, max relative difference."""
    device = next(teacher.parameters()).device
    rows = slice(0, min(images, len(train)))
    maps = {precision: torch.from_numpy(_compute_chunk(teacher, train.images[rows], train.labels[rows],
                                                       config.replace(ig_precision=precision), device))
            for precision in ("fp32", "bf16")}
    a, b = (maps[p].flatten(1).double() for p in ("fp32", "bf16"))
    rho = spearman_rows(a, b)
    scale = a.abs().amax(dim=1).clamp_min(1e-30)
    return {"images": len(a), "spearman_mean": float(rho.mean()), "spearman_min": float(rho.min()),
            "max_rel_diff": float(((a - b).abs().amax(dim=1) / scale).max())}
