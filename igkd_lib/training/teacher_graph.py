"""The teacher's training as one graph per step: :func:`igkd_lib.training.teacher.train_teacher`'s run at a GPU's speed.

The same run as the loop (``teacher_engine="loop"``: same initial weights, shuffles, crops, flips, dropout,
learning rates and SGD-Nesterov), built as the students' graph engine (:mod:`igkd_lib.training.graph_step`) is:

- the draws are the loop's own, drawn ahead: :func:`teacher_epoch_draws` takes the epoch generator's shuffle and
  then each step's crops and flips in step order, exactly as the loop draws them step by step, and the epoch's
  draws are uploaded once. So a seed means the same run on either engine, and a run may change engine at any
  epoch: both read and write the same checkpoint (the loop's form: model, optimizer, epoch, log, meta);
- one step function over device tensors: gather, crop, flip, resize where the recipe asks, forward (dropout from
  torch's generator, reseeded each epoch as the loop does), loss, backward, SGD (fused on CUDA; its learning rate
  a device tensor read from a device-side warm-up-cosine schedule), the loss and accuracy sums, the step
  counter. On CUDA it is captured as CUDA graphs (:class:`igkd_lib.training.cuda_graph.GraphedStep`) and
  replayed;
- the last partial batch (50,000 = 195 x 256 + 80) keeps the batch's shape: padded with real rows of weight 0,
  the loss the mean over the real rows, BatchNorm's statistics over them only
  (:mod:`igkd_lib.training.masked_batchnorm`);
- evaluation in large batches on CUDA; the host reads the sums once per epoch.

On CPU in float64 its weights, losses and per-epoch rows equal the loop's up to float rounding, and a run resumed
across engines equals an uninterrupted one (tests/test_teacher_graph.py). Each row it writes says
``"trainer": "graph"`` (rows without it were trained by the loop).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from igkd_lib import models
from igkd_lib.config import TEACHER_ENGINES
from igkd_lib.data.augment import draw_crops, draws_batch
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.timing import Stopwatch
from igkd_lib.training.cuda_graph import GraphedStep, copy_static, device_step
from igkd_lib.training.loop import (
    TrainResult,
    device_correct,
    epoch_generator,
    epoch_row,
    finite_row,
    interactive,
    precision_name,
    prepare_model,
    print_epoch,
    resume_checkpoint,
    save_checkpoint,
    warmup_cosine,
)
from igkd_lib.training.masked_batchnorm import RowWeights, mask_batchnorms
from igkd_lib.training.teacher import (
    AveragedTeacherRecipe,
    TeacherRecipe,
    resized,
    teacher_optimizer,
    teacher_start,
    train_teacher,
)

__all__ = ["TEACHER_ENGINES", "EVAL_BATCH_CUDA", "CROP_KEYS", "teacher_epoch_draws", "train_teacher_graph",
           "teacher_trainer"]

EVAL_BATCH_CUDA = 2500  # test images per evaluation batch on CUDA (eval mode: the batch changes no number)
CROP_KEYS = ("offset_y", "offset_x", "flipped")


def teacher_trainer(engine: str):
    """The teacher trainer ``engine`` names (:data:`TEACHER_ENGINES`): :func:`~igkd_lib.training.teacher.train_teacher`
    (``loop``) or :func:`train_teacher_graph` (``graph``); the same arguments and results."""
    trainers = {"loop": train_teacher, "graph": train_teacher_graph}
    if engine not in trainers:
        raise ValueError(f"teacher_engine={engine!r} is not allowed; allowed: {', '.join(TEACHER_ENGINES)}")
    return trainers[engine]


def teacher_epoch_draws(n: int, batch_size: int, padding: int, generator: torch.Generator) -> dict:
    """The loop's draws of one epoch, drawn ahead in its order: the shuffle, then each step's crops and flips
    (as :func:`igkd_lib.data.augment.random_crop_flip` draws them for that step's rows). ``order`` and
    :data:`CROP_KEYS`, (n,) each, indexed by the position in the epoch."""
    order = torch.randperm(n, generator=generator)
    steps = [draw_crops(min(batch_size, n - start), padding, True, generator) for start in range(0, n, batch_size)]
    return {"order": order, **{key: torch.cat([step[key] for step in steps]) for key in CROP_KEYS}}


class _TeacherStep:
    """An epoch's fixed device buffers and the one step function over them."""

    def __init__(self, recipe: TeacherRecipe, model: nn.Module, rows: RowWeights, images, labels,
                 device: torch.device):
        n, batch = len(images), recipe.batch_size
        self.recipe, self.model, self.rows, self.images, self.labels = recipe, model, rows, images, labels
        self.batch, self.steps = batch, math.ceil(n / batch)
        padded = self.steps * batch
        self.index = torch.arange(padded, device=device) % n  # padded positions -> real ones (weight 0)
        self.partial = padded != n
        self.last_count = n - (self.steps - 1) * batch  # real rows of the last batch
        self.last_rows = (torch.arange(batch, device=device) < self.last_count).to(torch.float32)
        self.ramp = torch.arange(batch, device=device)
        self.k = torch.zeros((), dtype=torch.int64, device=device)
        self.global_step = torch.zeros(1, dtype=torch.int64, device=device)  # set where the run starts or resumes
        cuda = device.type == "cuda"
        lr_dtype = torch.float32 if cuda else torch.float64
        lr_at = warmup_cosine(recipe.lr, recipe.epochs * self.steps, recipe.warmup)
        self.schedule = torch.tensor([lr_at(s) for s in range(recipe.epochs * self.steps)], dtype=lr_dtype,
                                     device=device)
        self.lr = torch.tensor(recipe.lr, dtype=lr_dtype, device=device)
        self.fused = True if cuda else None  # elsewhere the loop's own implementation (same rounding)
        try:
            self.optimizer = teacher_optimizer(model, recipe, lr=self.lr, fused=self.fused)
        except (RuntimeError, TypeError, ValueError) as error:  # a torch without fused SGD for a tensor rate
            print(f"fused SGD unavailable ({type(error).__name__}: {error}); the plain implementation, whose "
                  "steps a CUDA graph may not capture (then they run eagerly: info['compile'] says so)",
                  file=sys.stderr)
            self.fused = None
            self.optimizer = teacher_optimizer(model, recipe, lr=self.lr)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.buffers: dict[str, torch.Tensor] = {}
        # the last partial batch comes once an epoch: captured after one eager run
        self.run = GraphedStep(self.step, device, lambda key: 1 if key[0] else 2)

    def adopt_optimizer_state(self) -> None:
        """After loading a checkpoint's optimizer state (the loop's form): the tensor rate and implementation again."""
        for group in self.optimizer.param_groups:
            group["lr"], group["fused"], group["foreach"] = self.lr, self.fused, None

    def portable_state(self) -> dict:
        """The optimizer's state in the loop's form (rate a number, the default implementation), so either
        engine resumes the checkpoint."""
        state = self.optimizer.state_dict()
        groups = [{**group, "lr": float(group["lr"]), "fused": None, "foreach": None}
                  for group in state["param_groups"]]
        return {**state, "param_groups": groups}

    def load(self, draws: dict) -> None:
        """Copy one epoch's draws into the padded fixed buffers; zero the sums."""
        for key, value in draws.items():
            copy_static(self.buffers, key, value.to(self.index.device)[self.index])
        self.k.zero_()
        self.loss_sum.zero_()
        self.correct.zero_()

    def step(self, key: tuple[bool, int]) -> None:
        """One training step at step ``self.k`` of the epoch; ``key``: (the padded last batch?, image size)."""
        masked, size = key
        window = self.k * self.batch + self.ramp
        positions = self.buffers["order"].index_select(0, window)
        draws = {name: self.buffers[name].index_select(0, window) for name in CROP_KEYS}
        x = draws_batch(self.images.index_select(0, positions), None, draws, padding=self.recipe.padding,
                        p=0.0, blend=0.0)
        x = resized(x, size).contiguous(memory_format=torch.channels_last)
        y = self.labels.index_select(0, positions)
        weight = self.last_rows if masked else None
        loss, logits = device_step(self.optimizer, self.lr, self.schedule, self.global_step, self.rows, weight,
                                   lambda: self._loss(x, y, weight))
        hits = logits.detach().argmax(1) == y
        if masked:
            hits = hits & weight.bool()
        self.loss_sum += loss.detach().double() * (self.last_count if masked else self.batch)
        self.correct += hits.sum()
        self.k += 1

    def _loss(self, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None) -> tuple:
        """``(loss, logits)``: the mean cross-entropy over the real rows (``weight``: the padded last batch's)."""
        logits = self.model(x)
        smoothing = self.recipe.label_smoothing
        if weight is None:
            return F.cross_entropy(logits, y, label_smoothing=smoothing), logits
        losses = F.cross_entropy(logits, y, reduction="none", label_smoothing=smoothing)
        return (losses * weight).sum() / self.last_count, logits


def train_teacher_graph(recipe: TeacherRecipe, train: Cifar10, test: Cifar10, device: torch.device,
                        checkpoint: Path | None = None, progress: bool = True, init: dict | None = None,
                        stop_after: int | None = None, eval_batch_size: int = 500) -> TrainResult:
    """:func:`igkd_lib.training.teacher.train_teacher`'s run with one graph per step; the same arguments (the loop's
    options: ``stop_after``, ``eval_batch_size``), checkpoint and result. ``info["trainer"]`` is ``"graph"``."""
    if isinstance(recipe, AveragedTeacherRecipe):
        raise ValueError("recipe=AveragedTeacherRecipe is not allowed with teacher_engine='graph'; allowed: a "
                         "TeacherRecipe (the loop trains averaged recipes)")
    model, meta = teacher_start(recipe, train, init)
    model = prepare_model(model, device)
    rows = RowWeights()
    mask_batchnorms(model, rows)
    images, labels = train.images.to(device), train.labels.to(device)
    test_images, test_labels = test.images.to(device), test.labels.to(device)
    if device.type == "cuda":
        eval_batch_size = max(eval_batch_size, EVAL_BATCH_CUDA)
    step = _TeacherStep(recipe, model, rows, images, labels, device)
    start_epoch, log = resume_checkpoint(checkpoint, meta, model, step.optimizer, None, device)
    step.adopt_optimizer_state()
    step.global_step.fill_(start_epoch * step.steps)
    show_bar = progress and interactive()
    for done_here, epoch in enumerate(range(start_epoch, recipe.epochs)):
        if stop_after is not None and done_here >= stop_after:
            break
        draws = teacher_epoch_draws(len(train), recipe.batch_size, recipe.padding, epoch_generator(recipe.seed, epoch))
        model.train()
        watch = Stopwatch()
        step.load(draws)
        size = recipe.size_at(epoch)
        bar = tqdm(range(step.steps), desc=f"teacher epoch {epoch + 1}/{recipe.epochs}", disable=not show_bar,
                   leave=False, unit="batch")
        for s in bar:
            step.run((step.partial and s == step.steps - 1, size))
        row = epoch_row(epoch, step.loss_sum, step.correct, len(train),
                        device_correct(model, test_images, test_labels, eval_batch_size), len(test), watch)
        log.append(finite_row({**row, "trainer": "graph"}, "teacher"))
        save_checkpoint(checkpoint, meta, model, step.portable_state(), None, epoch, log)
        if progress:
            print_epoch("teacher", log[-1], show_bar)
    final = prepare_model(models.teacher(), device)  # ordinary BatchNorm layers, the trained state
    final.load_state_dict(model.state_dict())
    info = {"compile": step.run.ran, "precision": precision_name(device), "trainer": "graph",
            "optimizer": "fused SGD" if step.fused else "SGD"}
    return TrainResult(model=final, log=log, info=info)
