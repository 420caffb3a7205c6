"""A step function run as replayed CUDA graphs: eager warm-up steps, one capture per shape, eager as the fallback.

The graph engines (the students' :mod:`igkd_lib.training.graph_step`, the teacher's
:mod:`igkd_lib.training.teacher_graph`) write their step as one function over fixed device buffers. On CUDA,
:class:`GraphedStep` runs it eagerly for a few real steps (cuDNN autotuning, allocations, optimiser state;
on a side stream, as ``torch.cuda.graphs`` asks), then captures it once per key (e.g. full batch / padded
last batch) and replays the graph from then on. A capture that fails is reported on stderr and the step
runs eagerly for the rest of the run; :attr:`GraphedStep.ran` says what ran. Elsewhere the step runs eagerly.
"""
from __future__ import annotations

import sys
from typing import Callable, Hashable

import torch

from igkd_lib.training.loop import autocast
from igkd_lib.training.masked_batchnorm import RowWeights

__all__ = ["WARMUP_STEPS", "GraphedStep", "copy_static", "device_step"]

WARMUP_STEPS = 2  # eager steps before a CUDA graph is captured (real steps: cuDNN autotuning, allocations)


class GraphedStep:
    """``step(key)`` as replayed CUDA graphs on CUDA (one per key, after ``warmups(key)`` eager runs), eager
    elsewhere. ``ran``: ``"cudagraph"``, ``"none"``, or ``"none (fallback from cudagraph)"``."""

    def __init__(self, step: Callable[[Hashable], None], device: torch.device,
                 warmups: Callable[[Hashable], int] = lambda key: WARMUP_STEPS):
        self.step, self.warmups = step, warmups
        self.graphs: dict[Hashable, torch.cuda.CUDAGraph] = {}
        self.eager_runs: dict[Hashable, int] = {}
        self.use_graphs = device.type == "cuda"
        self.ran = "cudagraph" if self.use_graphs else "none"

    def __call__(self, key: Hashable) -> None:
        graph = self.graphs.get(key)
        if graph is not None:
            graph.replay()
            return
        if not self.use_graphs or self.eager_runs.get(key, 0) < self.warmups(key):
            self._eager(key)
            return
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.step(key)
        except Exception as error:  # noqa: BLE001 - any capture failure means: run eager (recorded)
            print(f"CUDA graph capture failed ({type(error).__name__}: {error}); running eager", file=sys.stderr)
            self.use_graphs, self.ran = False, "none (fallback from cudagraph)"
            self._eager(key)
            return
        self.graphs[key] = graph
        graph.replay()

    def _eager(self, key: Hashable) -> None:
        self.eager_runs[key] = self.eager_runs.get(key, 0) + 1
        if not self.use_graphs:
            self.step(key)
            return
        side = torch.cuda.Stream()  # warm-up on a side stream, as torch.cuda.graphs asks
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.step(key)
        torch.cuda.current_stream().wait_stream(side)


def copy_static(buffers: dict, name: str, value: torch.Tensor) -> None:
    """Copy ``value`` into the fixed tensor ``buffers[name]``, allocated on first use: a captured graph reads the same
    memory at every replay, so an epoch's new data must land there."""
    if name not in buffers:
        buffers[name] = torch.empty_like(value)
    buffers[name].copy_(value)


def device_step(optimizer: torch.optim.Optimizer, lr: torch.Tensor, schedule: torch.Tensor, global_step: torch.Tensor,
                rows: RowWeights, weight: torch.Tensor | None, forward: Callable[[], tuple]) -> tuple:
    """One optimiser step on device tensors only: the rate ``lr`` read from ``schedule`` at ``global_step`` (then
    advanced), the rows' ``weight`` set for the masked BatchNorm during the forward pass, the gradients zeroed in
    place (a captured graph keeps their memory), ``forward()`` -> ``(loss, outputs)`` under autocast, backward, step.
    Returns ``(loss, outputs)``."""
    lr.copy_(schedule.index_select(0, global_step).view(()))
    rows.weight = weight
    try:
        optimizer.zero_grad(set_to_none=False)
        with autocast(lr.device, cache=False):
            loss, outputs = forward()
        loss.backward()
    finally:
        rows.weight = None
    optimizer.step()
    global_step += 1
    return loss, outputs
