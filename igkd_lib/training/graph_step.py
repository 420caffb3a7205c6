"""The graph engine: a group of student runs with the teacher out of the step and the whole step as one graph.

The same runs as :func:`igkd_lib.training.wide.train_group` (same members, same draws, the same wide network
and Adam), built for a GPU's speed:

- the teacher leaves the step: each epoch's teacher targets come ahead of the epoch from
  :class:`igkd_lib.training.teacher_table.TeacherTable` (the teacher's logits of every clean view, filled in
  large batches as the runs need them; the overlaid images of ``online`` members are computed from
  the epoch's known draws in large batches too) for every teacher-signal option;
- the epoch's draws, targets, images and labels live on the device in fixed buffers, and one step
  function does everything else there: gather, crop, flip and overlay, forward, loss, backward, Adam
  (fused and capturable on CUDA, its learning rate a device tensor read from a device-side schedule),
  the loss and accuracy sums, the step counter. On CUDA that function is captured once as a CUDA graph
  (``torch.cuda.graphs``, after eager warm-up steps that are real steps) and replayed; elsewhere it
  runs eagerly. A capture that fails falls back to eager, and the result's ``info`` says what ran;
- the last partial batch keeps the batch's shape: it is padded with real rows of weight 0, the
  loss is the mean over the real rows and BatchNorm's batch statistics skip the padding
  (:mod:`igkd_lib.training.masked_batchnorm`), so its gradients are the unpadded batch's;
- the test set is evaluated in large batches, the host reads the sums once per epoch.

On CPU in float32/float64 each member's weights, losses and per-epoch rows equal the single run's up
to float rounding (tests/test_graph_step.py). The config field ``train_engine`` chooses this engine
(:func:`train_members`); the window's probe measures it (``bench campaign``).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from igkd_lib.config import ConfigError
from igkd_lib.data.augment import draws_batch
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.provenance import resolve_device
from igkd_lib.timing import Stopwatch
from igkd_lib.training.batchnorm import recalibrate
from igkd_lib.training.cuda_graph import WARMUP_STEPS, GraphedStep, copy_static, device_step
from igkd_lib.training.loop import TrainResult, precision_name
from igkd_lib.training.masked_batchnorm import RowWeights, mask_batchnorms
from igkd_lib.training.teacher_table import TeacherTable, epoch_targets, overlay_fn
from igkd_lib.training.wide import (
    GroupSetup,
    Member,
    check_group,
    epoch_rows,
    finish_epoch,
    member_model,
    wide_student,
)
from igkd_lib.training.wide_model import split_states

__all__ = ["ENGINES", "EVAL_BATCH_CUDA", "TABLE_BATCH_CUDA", "WARMUP_STEPS", "train_graph_group", "train_members"]

ENGINES = ("wide", "graph")
EVAL_BATCH_CUDA = 2500  # test images per evaluation batch on CUDA (eval mode: the batch changes no number)
TABLE_BATCH_CUDA = 4096  # teacher images per inference batch on CUDA


def train_members(members: Sequence[Member], **kwargs) -> list[TrainResult]:
    """The members' runs with the engine their config's ``train_engine`` names (``wide``: :func:`igkd_lib.training.wide.
    train_group`; ``graph``: :func:`train_graph_group`); the same arguments."""
    from igkd_lib.training.wide import train_group

    engine = members[0].config.train_engine if members else "wide"
    return (train_graph_group if engine == "graph" else train_group)(members, **kwargs)


class _Plan(GroupSetup):
    """The wide trainer's per-member constants, draws, loss and evaluation, without its online teacher."""

    def _teacher_targets(self, teacher, train, progress):
        if any(c.alpha > 0 for c in self.configs) and teacher is None:
            raise ValueError("teacher=None is not allowed when a member has alpha > 0; allowed: a teacher model")
        return None, [], {}


class _Step:
    """The fixed device buffers of an epoch and the one step function over them (graphed on CUDA)."""

    def __init__(self, plan: _Plan, model: nn.Module, rows: RowWeights, images, labels, steps_total: int):
        config, device = plan.config, plan.device
        self.plan, self.model, self.rows, self.images, self.labels = plan, model, rows, images, labels
        n, self.batch = len(images), config.student_batch_size
        self.steps = math.ceil(n / self.batch)
        padded = self.steps * self.batch
        self.index = torch.arange(padded, device=device) % n  # padded positions -> real ones
        self.partial = padded != n
        self.last_rows = (torch.arange(self.batch, device=device) + padded - self.batch < n).to(torch.float32)
        self.ramp = torch.arange(self.batch, device=device)
        self.k = torch.zeros((), dtype=torch.int64, device=device)
        self.global_step = torch.zeros(1, dtype=torch.int64, device=device)
        lr_dtype = torch.float64 if device.type == "cpu" else torch.float32
        self.schedule = torch.full((steps_total,), config.student_lr, dtype=lr_dtype, device=device)
        self.optimizer = _adam(model, torch.tensor(config.student_lr, dtype=lr_dtype, device=device), device)
        self.lr = self.optimizer.param_groups[0]["lr"]  # the tensor the optimiser reads (set in place each step)
        if not isinstance(self.lr, torch.Tensor):
            raise TypeError(f"this torch ({torch.__version__}) keeps Adam's lr as a number; the graph engine needs "
                            "a tensor learning rate (torch >= 2.2)")
        self.loss_sum = torch.zeros(plan.n, dtype=torch.float64, device=device)
        self.correct = torch.zeros(plan.n, dtype=torch.int64, device=device)
        self.buffers: dict[str, torch.Tensor] = {}
        # the last partial batch comes once an epoch: captured after one eager run
        self.run = GraphedStep(self.step, device, lambda masked: 1 if masked else WARMUP_STEPS)

    def load(self, draws: dict, targets: torch.Tensor) -> None:
        """Copy one epoch's draws (N, n) and targets (N, n, C) into the padded fixed buffers; zero the sums."""
        for key, value in {**draws, "targets": targets}.items():
            copy_static(self.buffers, key, value[:, self.index])
        self.k.zero_()
        self.loss_sum.zero_()
        self.correct.zero_()

    def step(self, masked: bool) -> None:
        """One training step of every member at step ``self.k`` of the epoch (device tensors only)."""
        plan, buffers, batch = self.plan, self.buffers, self.batch
        window = self.k * batch + self.ramp
        positions = buffers["order"].index_select(1, window)  # (N, B)
        step = {key: value.index_select(1, window).reshape(-1) for key, value in buffers.items()
                if key not in ("order", "targets")}
        maps = None if plan.maps is None else plan.maps[plan.sources.gather(1, positions).reshape(-1)]
        x = draws_batch(self.images[positions.reshape(-1)], maps, step, padding=plan.config.crop_padding,
                        p=plan.p.repeat_interleave(batch), blend=plan.blend.repeat_interleave(batch),
                        aligned=plan.aligned.repeat_interleave(batch))
        y = self.labels[positions]
        weight = self.last_rows if masked else None
        targets = buffers["targets"].index_select(1, window)
        _, (logits, losses) = device_step(self.optimizer, self.lr, self.schedule, self.global_step, self.rows, weight,
                                          lambda: plan.loss_fn(self.model, x, y, targets, weight))
        hits = logits.detach().argmax(-1) == y
        if masked:
            self.loss_sum += losses.detach().double() * weight.double().sum()
            hits = hits & weight.bool()
        else:
            self.loss_sum += losses.detach().double() * batch
        self.correct += hits.sum(1)
        self.k += 1

    def epoch(self) -> None:
        """The epoch's steps: replayed graphs on CUDA (captured after warm-up), eager elsewhere."""
        for s in range(self.steps):
            self.run(self.partial and s == self.steps - 1)


def _adam(model: nn.Module, lr: torch.Tensor, device: torch.device) -> torch.optim.Adam:
    """Adam with its learning rate a tensor: fused and capturable on CUDA, the plain loop elsewhere."""
    if device.type == "cuda":
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True, capturable=True)
    return torch.optim.Adam(model.parameters(), lr=lr)


def train_graph_group(members: Sequence[Member], *, teacher: nn.Module | None, maps: torch.Tensor | None,
                      train: Cifar10, test: Cifar10, device: torch.device | None = None, progress: bool = True,
                      on_epoch: Callable[[int, dict], None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> list[TrainResult]:
    """Train the members with the graph engine; the arguments and results of :func:`igkd_lib.training.wide.train_group`.

    ``info`` adds ``teacher_inferences`` (teacher images computed: table entries and overlaid images),
    ``table_filled`` (the fraction of the table filled at the end) and ``teacher_s`` (seconds spent on
    the epochs' teacher targets, inside the epochs' seconds).
    """
    configs = check_group(members)
    config = configs[0]
    if config.train_compile != "none":
        raise ConfigError(f"train_compile={config.train_compile!r} is not allowed with train_engine='graph' (it "
                          "captures the whole step itself); allowed: none")
    device = device or resolve_device(config.device)
    model, templates, layout = wide_student(members, configs, device)
    rows = RowWeights()
    for network in (model, *model._member):  # the serial layout's member template runs the same layers
        mask_batchnorms(network, rows)
    plan = _Plan(members, configs, teacher, maps, train, device, progress)
    if device.type == "cuda":
        plan.config = plan.config.replace(eval_batch_size=max(config.eval_batch_size, EVAL_BATCH_CUDA))
    table = None
    if any(c.alpha > 0 for c in configs):
        table = TeacherTable(teacher, train.images, config.crop_padding, device,
                             TABLE_BATCH_CUDA if device.type == "cuda" else config.eval_batch_size, config.cache_dir)
    images, labels, test_images, test_labels = (t.to(device) for t in (train.images, train.labels, test.images,
                                                                       test.labels))
    step = _Step(plan, model, rows, images, labels, config.student_epochs * math.ceil(len(train) /
                                                                                        config.student_batch_size))
    logs, teacher_s = [[] for _ in members], 0.0
    try:
        for epoch in range(config.student_epochs):
            if should_stop is not None and should_stop():
                break
            watch = Stopwatch()
            draws = plan.draws(epoch, len(train))
            teacher_watch = Stopwatch(device)
            targets = _targets(table, configs, draws, images, plan)
            teacher_s += teacher_watch.seconds
            step.load(draws, targets)
            model.train()
            step.epoch()
            if config.bn_recalibrate:  # as train_student does before each evaluation (igkd_lib.training.batchnorm)
                recalibrate(model, images, copies=plan.n)
            test_correct = plan.test_correct(model, test_images, test_labels)
            rows_of_epoch = epoch_rows(epoch, step.loss_sum, step.correct, test_correct, len(train),
                                       len(test_images), watch)
            finish_epoch(members, rows_of_epoch, logs, on_epoch, progress)
    finally:
        if table is not None:
            table.save()
    info = {"compile": step.run.ran, "precision": precision_name(device), "trainer": "graph",
            "group_size": len(members), "layout": layout,
            "teacher_inferences": 0 if table is None else table.inferences,
            "table_filled": 0.0 if table is None else table.filled_fraction, "teacher_s": teacher_s}
    return [TrainResult(model=member_model(c, state, device), log=log, info=info)
            for c, state, log in zip(configs, split_states(model, templates), logs)]


def _targets(table: TeacherTable | None, configs, draws: dict, images: torch.Tensor, plan: _Plan) -> torch.Tensor:
    """The members' teacher targets of the epoch (N, n, C), or zeros without KD."""
    if table is None:
        return torch.zeros(*draws["order"].shape, 10, device=images.device)
    sources = getattr(plan, "sources", None)
    with torch.no_grad():
        return epoch_targets(table, configs, draws, overlay_fn(images, plan.maps, sources, draws, configs))
