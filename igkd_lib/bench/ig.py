"""``python -m igkd_lib bench ig``: this IG engine against captum and the forward+backward floor.

In one run, on the same images and the same number of interpolation points, it measures points/s of
(1) captum as the official code called it (``attribute`` on batches of 8 images, Gauss-Legendre),
(2) captum at its best ``internal_batch_size``, (3) this engine over a sweep of chunk sizes (which
includes the chunk the maps use on this device, :func:`igkd_lib.attribution.ig.chunk_size`) and (4) the floor:
a bare forward + input-gradient backward of the teacher at the same batch sizes. It prints the table,
the engine's agreement with captum, the chosen chunk's rate next to the best one found, and the ratios
last. A figure, never a timed test.
"""
from __future__ import annotations

from typing import Callable

import pandas as pd
import torch
from torch import nn

from igkd_lib import models
from igkd_lib.attribution.ig import chunk_size, frozen, integrated_gradients
from igkd_lib.config import Config
from igkd_lib.console import print_table
from igkd_lib.provenance import device_name, resolve_device
from igkd_lib.timing import Stopwatch

__all__ = ["run", "ratios", "chunk_choice", "cli"]


def _timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: bool) -> float:
    """Best wall time of ``repeats`` calls (synchronised on CUDA), after one warm-up call if ``warmup``."""
    if warmup:
        fn()
    best = float("inf")
    for _ in range(repeats):
        watch = Stopwatch(device)
        fn()
        best = min(best, watch.seconds)
    return best


def _teacher(config: Config, device: torch.device) -> tuple[nn.Module, str]:
    """The shipped teacher if present (speed does not depend on the weights), else a fresh one."""
    from igkd_lib.training.teacher import load_shipped_teacher

    shipped = load_shipped_teacher()
    model, origin = (shipped[0], "shipped") if shipped is not None else (models.teacher().eval(), "fresh")
    return model.to(device=device, memory_format=torch.channels_last).eval(), origin


def _captum(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_steps: int, images_per_call: int,
            internal: int | None) -> torch.Tensor:
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(model)
    return torch.cat([ig.attribute(x[s:s + images_per_call], target=y[s:s + images_per_call], n_steps=n_steps,
                                   method="gausslegendre", internal_batch_size=internal)
                      for s in range(0, len(x), images_per_call)])


def _floor(model: nn.Module, x: torch.Tensor, y: torch.Tensor, points: int, batch: int) -> None:
    """Forward + input-gradient backward over ``points`` inputs in batches of ``batch``."""
    with frozen(model):
        for start in range(0, points, batch):
            k = min(batch, points - start)
            rows = torch.arange(start, start + k, device=x.device) % len(x)
            xb = x[rows].contiguous(memory_format=torch.channels_last).requires_grad_(True)
            torch.autograd.grad(model(xb).gather(1, y[rows].unsqueeze(1)).sum(), xb)


# Defaults per device type: (images, engine/floor chunk sweep, captum internal batch sizes). The CPU's
# keep a run near two minutes on 2 cores: 16 images x 50 points (two of the official 8-image calls).
_DEFAULTS = {"cpu": (16, (16, 32, 64, 128, 256), (100, 400)),
             "cuda": (64, (256, 512, 1024, 2048, 3200), (800, 3200))}


def run(config: Config, n_images: int | None = None, n_steps: int = 50, chunk_sizes: tuple | None = None,
        captum_internal: tuple | None = None, repeats: int = 1, seed: int = 0, warmup: bool = True) -> pd.DataFrame:
    """One row per (variant, batch): ``points``, ``seconds``, ``points_per_s``; attrs ``max_rel_diff``,
    ``chosen_chunk``.

    Pixels are random (speed does not depend on them). Batch is points per forward except for
    captum-as-official, which is 8 images per ``attribute`` call (8 x n_steps points). ``None``:
    the device's defaults (``_DEFAULTS``). The chunk the maps use on this device
    (``config.ig_chunk``, or the device's default when 0) is always in the sweep.
    """
    device = resolve_device(config.device)
    defaults = _DEFAULTS["cuda" if device.type == "cuda" else "cpu"]
    chosen = chunk_size(config, device)
    n_images = n_images or defaults[0]
    chunk_sizes = tuple(sorted(set(chunk_sizes or defaults[1]) | {chosen}))
    captum_internal = captum_internal or defaults[2]
    model, origin = _teacher(config, device)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n_images, 3, 32, 32, generator=generator).to(device)
    y = torch.randint(0, 10, (n_images,), generator=generator).to(device)
    points, rows = n_images * n_steps, []

    def add(variant: str, batch: int, fn: Callable[[], object]) -> None:
        seconds = _timed(fn, device, repeats, warmup)
        rows.append(dict(variant=variant, batch=batch, points=points, seconds=seconds, points_per_s=points / seconds))

    add("captum as official (batch 8)", 8 * n_steps, lambda: _captum(model, x, y, n_steps, 8, None))
    for internal in captum_internal:
        add("captum internal_batch_size", internal, lambda: _captum(model, x, y, n_steps, n_images, internal))
    for chunk in chunk_sizes:
        add("this engine", chunk, lambda: integrated_gradients(model, x, y, n_steps=n_steps, chunk_size=chunk))
    for chunk in chunk_sizes:
        add("floor (forward + input grad)", chunk, lambda: _floor(model, x, y, points, chunk))
    table = pd.DataFrame(rows)
    ours = integrated_gradients(model, x, y, n_steps=n_steps, chunk_size=chunk_sizes[-1]).attributions
    theirs = _captum(model, x, y, n_steps, 8, None).cpu()
    table.attrs.update(max_rel_diff=float((ours - theirs).abs().max() / theirs.abs().max()), teacher=origin,
                       device=device_name(device), n_images=n_images, n_steps=n_steps, chosen_chunk=chosen,
                       chunk_source="ig_chunk" if config.ig_chunk > 0 else "device default")
    return table


def chunk_choice(table: pd.DataFrame) -> dict:
    """The engine's rate at the chosen chunk and at the best chunk of the sweep (points/s), and their ratio."""
    engine = table[table["variant"] == "this engine"].set_index("batch")["points_per_s"]
    chosen = table.attrs["chosen_chunk"]
    return {"chosen_chunk": int(chosen), "chosen_points_per_s": float(engine[chosen]),
            "best_chunk": int(engine.idxmax()), "best_points_per_s": float(engine.max()),
            "chosen / best": float(engine[chosen] / engine.max())}


def ratios(table: pd.DataFrame) -> dict:
    """Best points/s of each variant and the ratios the issue sets targets for."""
    best = table.groupby("variant")["points_per_s"].max()
    captum_best = max(best["captum internal_batch_size"], best["captum as official (batch 8)"])
    engine, floor = best["this engine"], best["floor (forward + input grad)"]
    return {"engine / floor": engine / floor,
            "engine / captum as official": engine / best["captum as official (batch 8)"],
            "engine / captum best": engine / captum_best}


def cli(config: Config, args) -> int:
    """Print the table, the agreement with captum and (last) the ratios."""
    table = run(config)
    meta = table.attrs
    print(f"IG benchmark: {meta['n_images']} images x {meta['n_steps']} points, Gauss-Legendre, {meta['teacher']} "
          f"teacher, device {meta['device']}, {torch.get_num_threads()} threads (random pixels)")
    print_table(table)
    print(f"max |engine - captum| / max |captum| = {meta['max_rel_diff']:.2e}")
    choice = chunk_choice(table)
    print(f"chosen chunk {choice['chosen_chunk']} ({meta['chunk_source']}): "
          f"{choice['chosen_points_per_s']:.0f} points/s; "
          f"best of the sweep: chunk {choice['best_chunk']}, {choice['best_points_per_s']:.0f} points/s "
          f"(chosen / best = {choice['chosen / best']:.2f})")
    for name, value in ratios(table).items():
        print(f"{name}: {value:.2f}x")
    return 0
