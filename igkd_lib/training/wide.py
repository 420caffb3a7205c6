"""The wide trainer: N independent student runs trained at once as one network.

Each member is one single run of :func:`igkd_lib.training.student.train_student` (its own initial weights,
shuffle, crops, flips, overlay draws, method and knobs); :class:`igkd_lib.training.wide_model.WideStudent`
holds them side by side, one Adam updates all (Adam is element-wise: N Adams), the loss is the sum of
the members' losses (so each member's gradient is its own), the teacher's forward for the online-KD
members runs once over all their batches (overlaid, or without the overlay for "online_clean"), and
evaluation is one batched pass. On CPU in float32 the members' numbers equal the single runs' up to
float rounding (tests/test_wide.py). On CUDA: bf16 autocast, channels-last, TF32 and non-deterministic
kernels, no host synchronisation inside an epoch (randomness drawn ahead and uploaded once, sums read
once per epoch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from igkd_lib import models
from igkd_lib.config import Config, ConfigError, group_fields
from igkd_lib.data.augment import draws_batch, to_float
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.errors import NonFiniteLossError
from igkd_lib.provenance import resolve_device
from igkd_lib.storage import stable_hash
from igkd_lib.timing import Stopwatch
from igkd_lib.training.batchnorm import recalibrate
from igkd_lib.training.loop import (
    TrainResult,
    autocast,
    compiled,
    epoch_generator,
    epoch_line,
    guarded_call,
    interactive,
    precision_name,
    prepare_model,
)
from igkd_lib.training.student import (
    check_maps,
    map_source_rows,
    method_config,
    student_draw_fn,
    teacher_logit_table,
    teacher_sees_clean,
    uses_maps,
)
from igkd_lib.training.wide_model import WideStudent, resolve_layout, split_states

__all__ = ["Member", "GROUP_FIELDS", "GroupSetup", "check_group", "member_losses", "train_group", "epoch_rows",
           "finish_epoch", "member_model", "wide_student"]

# Fields every member of a group must share (they shape the group's tensors, steps or optimiser).
GROUP_FIELDS = (*group_fields("student", "evaluation", "data"), "device", "data_root", "wide_layout", "train_engine")


@dataclass(frozen=True)
class Member:
    """One run of a group: the profile's config (the method's settings are applied inside), method, seed."""

    config: Config
    method: str
    seed: int


def check_group(members: Sequence[Member]) -> list[Config]:
    """The members' method-specific configs; ValueError if they differ in a :data:`GROUP_FIELDS` field."""
    if not members:
        raise ValueError("members=[] is not allowed; allowed: one or more Member")
    configs = [method_config(member.config, member.method) for member in members]
    for name in GROUP_FIELDS:
        values = [getattr(config, name) for config in configs]
        if len(set(values)) > 1:
            raise ValueError(f"members differ in {name} ({', '.join(map(repr, values))}); a group's members "
                             f"must share {', '.join(GROUP_FIELDS)}")
    if configs[0].student_dropout > 0:
        raise ConfigError(f"student_dropout={configs[0].student_dropout} is not allowed in the wide trainer "
                          "(its dropout draws could not match the single runs'); allowed: 0, or train_student")
    return configs


def member_losses(logits: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor, alpha: torch.Tensor,
                  temperature: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Each member's KD loss (N,) (:func:`igkd_lib.training.distill.kd_loss`, batch mean) for logits and teacher
    targets (N, B, C), labels (N, B) and the members' ``alpha`` and ``temperature`` (N,). ``rows`` (B,)
    0/1: the mean is over the rows of weight 1 only (a padded batch, :mod:`igkd_lib.training.graph_step`)."""
    n, b, c = logits.shape
    logits = logits.float()  # float32, as in kd_loss (also under bf16 autocast)

    def mean(values):  # (N, B) -> (N,)
        return values.mean(1) if rows is None else (values * rows.float()).sum(1) / rows.float().sum()

    hard = mean(F.cross_entropy(logits.reshape(n * b, c), labels.reshape(-1), reduction="none").view(n, b))
    hard_weight = (1.0 - alpha.double()).float().view(n)  # the weights kd_loss's scalars become in float32
    soft_weight = (alpha.double() * temperature.double() ** 2).float().view(n)
    t = temperature.float().view(n, 1, 1)
    log_student = F.log_softmax(logits / t, dim=-1)
    log_teacher = F.log_softmax(targets.float() / t, dim=-1)
    soft = mean((log_teacher.exp() * (log_teacher - log_student)).sum(-1))
    return hard_weight * hard + soft_weight * soft


class GroupSetup:
    """The group's per-member constants on the device, and its step and evaluation."""

    def __init__(self, members, configs, teacher, maps, train: Cifar10, device, progress):
        self.members, self.configs, self.device, self.n = members, configs, device, len(members)
        self.config = configs[0]
        knobs = {name: torch.tensor([float(getattr(c, name)) for c in configs], dtype=torch.float64, device=device)
                 for name in ("alpha", "temperature", "blend")}
        self.alpha, self.temperature, self.blend = knobs["alpha"], knobs["temperature"], knobs["blend"]
        self.p = torch.tensor([c.p if uses_maps(c) else 0.0 for c in configs], device=device)
        self.aligned = torch.tensor([c.map_alignment == "aligned" for c in configs], device=device)
        self.maps = None
        if any(uses_maps(c) for c in configs):
            self.maps = check_maps(maps, train).to(device)
            self.sources = torch.stack([map_source_rows(len(train), c.shuffle_maps and uses_maps(c), m.seed)
                                        for c, m in zip(configs, members)]).to(device)
        self.teacher, self.online, self.tables = self._teacher_targets(teacher, train, progress)
        # rows of self.online whose teacher sees the batch without the overlay ("online_clean")
        self.clean = [j for j, i in enumerate(self.online) if teacher_sees_clean(configs[i])]

    def _teacher_targets(self, teacher, train, progress):
        kd = [i for i, c in enumerate(self.configs) if c.alpha > 0]
        if kd and teacher is None:
            raise ValueError("teacher=None is not allowed when a member has alpha > 0; allowed: a teacher model")
        if not kd:
            return None, [], {}
        teacher = prepare_model(teacher, self.device).eval()
        tables, memo = {}, {}
        for i in kd:
            key = stable_hash(self.configs[i].to_dict())
            if key not in memo:
                memo[key] = teacher_logit_table(self.configs[i], teacher, train, self.device, progress)
            if memo[key] is not None:
                tables[i] = memo[key]
        return teacher, [i for i in kd if i not in tables], tables

    def draws(self, epoch: int, n_train: int) -> dict:
        """The members' epoch draws stacked (N, n_train) per key, uploaded once."""
        per_member = [student_draw_fn(c, m.seed, n_train)(epoch_generator(m.seed, epoch), epoch)
                      for c, m in zip(self.configs, self.members)]
        return {key: torch.stack([d[key] for d in per_member]).to(self.device, non_blocking=True)
                for key in per_member[0]}

    def inputs(self, images, draws, window) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x (N·B, 3, H, W), positions (N, B), teacher targets (N, B, C) or zeros)`` of one step."""
        positions = draws["order"][:, window]
        n, b = positions.shape
        step = {key: value[:, window].reshape(-1) for key, value in draws.items() if key != "order"}
        maps = None if self.maps is None else self.maps[self.sources.gather(1, positions).reshape(-1)]
        x = draws_batch(images[positions.reshape(-1)], maps, step, padding=self.config.crop_padding,
                        p=self.p.repeat_interleave(b), blend=self.blend.repeat_interleave(b),
                        aligned=self.aligned.repeat_interleave(b))
        targets = torch.zeros(n, b, 10, dtype=torch.float32, device=x.device)
        if self.online:
            chosen = x.view(n, b, *x.shape[1:])[self.online]
            if self.clean:  # the same crops and flips, no overlay
                rows = [self.online[j] for j in self.clean]
                plain = {key: value.view(n, b)[rows].reshape(-1) for key, value in step.items()}
                chosen[self.clean] = draws_batch(images[positions[rows].reshape(-1)], None, plain,
                                                 padding=self.config.crop_padding, p=0.0, blend=0.0
                                                 ).view(len(rows), b, *x.shape[1:])
            chosen = chosen.flatten(0, 1)
            with torch.no_grad(), autocast(self.device):
                out = self.teacher(chosen.contiguous(memory_format=torch.channels_last)).float()
            targets[self.online] = out.view(len(self.online), b, -1)
        for i, table in self.tables.items():
            targets[i] = table[positions[i]]
        return x, positions, targets

    def loss_fn(self, model, x, labels, targets, rows=None):
        """``(summed loss, (logits (N, B, C), member losses (N,)))``; x (N·B, 3, H, W) member-major;
        ``rows``: see :func:`member_losses`."""
        n = self.n
        b = x.shape[0] // n
        wide_x = x.view(n, b, *x.shape[1:]).transpose(0, 1).reshape(b, n * x.shape[1], *x.shape[2:])
        logits = model(wide_x.contiguous(memory_format=torch.channels_last))
        losses = member_losses(logits, targets, labels, self.alpha, self.temperature, rows)
        return losses.sum(), (logits, losses)

    @torch.inference_mode()
    def test_correct(self, model, images, labels) -> torch.Tensor:
        """Correct test predictions per member (N,), on the device, one batched pass per eval batch."""
        model.eval()
        correct = torch.zeros(self.n, dtype=torch.int64, device=self.device)
        size = self.config.eval_batch_size
        for start in range(0, len(images), size):
            x = to_float(images[start:start + size]).repeat(1, self.n, 1, 1)
            with autocast(self.device):
                logits = model(x.contiguous(memory_format=torch.channels_last))
            correct += (logits.argmax(-1) == labels[start:start + size]).sum(1)
        model.train()
        return correct


def wide_student(members, configs, device: torch.device):
    """The members' students as one wide network on ``device`` (each seeded as
    :func:`igkd_lib.training.student.train_student` seeds it), each member's initial state dict, and the layout
    the wide network runs in."""
    students = []
    for c, member in zip(configs, members):
        torch.manual_seed(member.seed)  # the member's initial weights, as in train_student
        students.append(models.student(c.student_cut, dropout=c.student_dropout, normalise=c.student_normalise))
    layout = resolve_layout(configs[0].wide_layout, device)
    return prepare_model(WideStudent(students, layout), device), [s.state_dict() for s in students], layout


def train_group(members: Sequence[Member], *, teacher: nn.Module | None, maps: torch.Tensor | None,
                train: Cifar10, test: Cifar10, device: torch.device | None = None, progress: bool = True,
                on_epoch: Callable[[int, dict], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> list[TrainResult]:
    """Train the members as one wide network; one TrainResult (ordinary student model + log) per member.

    ``maps`` (N_train, H, W) aligned with ``train`` rows (None when no member overlays); ``teacher``
    needed when a member has alpha > 0. ``on_epoch(member_index, row)`` after every epoch for every
    member; ``should_stop()`` checked between epochs (True: return at once, logs so far: partial).
    The members' ``wide_layout`` says how the wide network runs (:func:`igkd_lib.training.wide_model.resolve_layout`);
    the numbers are the same up to float rounding.
    A member whose epoch loss is not finite raises :class:`igkd_lib.errors.NonFiniteLossError`.
    """
    configs = check_group(members)
    config = configs[0]
    device = device or resolve_device(config.device)
    model, templates, layout = wide_student(members, configs, device)
    group = GroupSetup(members, configs, teacher, maps, train, device, progress)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.student_lr, fused=device.type == "cuda")
    runner, compile_used = compiled(model, config.train_compile, device)
    logs = [[] for _ in members]
    data = [t.to(device) for t in (train.images, train.labels, test.images, test.labels)]
    for epoch in range(config.student_epochs):
        if should_stop is not None and should_stop():
            break
        runner, compile_used, rows = _epoch(group, model, runner, compile_used, optimizer, data, epoch, progress)
        finish_epoch(members, rows, logs, on_epoch, progress)
    info = {"compile": compile_used, "precision": precision_name(device), "trainer": "wide", "group_size": len(members),
            "layout": layout}
    return [TrainResult(model=member_model(c, state, device), log=log, info=info)
            for c, state, log in zip(configs, split_states(model, templates), logs)]


def _epoch(group: GroupSetup, model, runner, compile_used, optimizer, data, epoch: int, progress: bool):
    """One epoch of the group: ``(runner, compile_used, rows)``; the device's sums are read once, at the end.

    ``seconds``: the epoch's wall time up to that read (training, recalibration, evaluation), as in
    :func:`igkd_lib.training.loop.train_loop`.
    """
    images, labels, test_images, test_labels = data
    n_train, batch = len(images), group.config.student_batch_size
    watch = Stopwatch()
    draws = group.draws(epoch, n_train)
    loss_sum = torch.zeros(group.n, dtype=torch.float64, device=group.device)
    correct = torch.zeros(group.n, dtype=torch.int64, device=group.device)
    model.train()
    steps = math.ceil(n_train / batch)
    for step in tqdm(range(steps), desc=f"wide x{group.n} epoch {epoch + 1}", leave=False, unit="batch",
                     disable=not (progress and interactive())):
        x, positions, targets = group.inputs(images, draws, slice(step * batch, (step + 1) * batch))
        y = labels[positions]
        runner, compile_used, (loss, (logits, losses)) = guarded_call(runner, model, compile_used,
                                                                      group.loss_fn, x, y, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += losses.detach().double() * positions.shape[1]
        correct += (logits.detach().argmax(-1) == y).sum(1)
    if group.config.bn_recalibrate:  # as train_student does before each evaluation (igkd_lib.training.batchnorm)
        recalibrate(model, images, copies=group.n)
    test_correct = group.test_correct(model, test_images, test_labels)
    return runner, compile_used, epoch_rows(epoch, loss_sum, correct, test_correct, n_train, len(test_images), watch)


def epoch_rows(epoch: int, loss_sum: torch.Tensor, correct: torch.Tensor, test_correct: torch.Tensor, n_train: int,
               n_test: int, watch: Stopwatch) -> list[dict]:
    """The members' log rows of one epoch from the device's sums (N,), read here, once."""
    sums = torch.stack([loss_sum.double(), correct.double(), test_correct.double()]).cpu()
    seconds = watch.seconds
    return [{"epoch": epoch + 1, "loss": float(sums[0, i]) / n_train, "train_acc": 100.0 * float(sums[1, i]) / n_train,
             "test_acc": 100.0 * float(sums[2, i]) / n_test, "seconds": seconds,
             "images_per_s": n_train / seconds} for i in range(len(loss_sum))]


def finish_epoch(members, rows, logs, on_epoch, progress) -> None:
    """Check the losses, append the rows, call ``on_epoch``, print the epoch's lines."""
    bad = [f"member {i} ({m.method}, seed {m.seed})" for i, (m, row) in enumerate(zip(members, rows))
           if not math.isfinite(row["loss"])]
    if bad:
        raise NonFiniteLossError(f"the training loss became non-finite in epoch {rows[0]['epoch']} for "
                                 f"{', '.join(bad)}")
    for i, (member, row) in enumerate(zip(members, rows)):
        logs[i].append(row)
        if on_epoch is not None:
            on_epoch(i, row)
    if progress:
        print(_group_line(members, rows), flush=True)


def _group_line(members, rows) -> str:
    """The group's one line per epoch."""
    if len(members) == 1:
        return epoch_line(f"wide student {members[0].method} seed {members[0].seed}", rows[0])
    test = [row["test_acc"] for row in rows]
    loss = [row["loss"] for row in rows]
    return (f"wide x{len(members)} epoch {rows[0]['epoch']}: loss {min(loss):.4f}-{max(loss):.4f} "
            f"test {min(test):.2f}-{max(test):.2f}% ({len(members) * rows[0]['images_per_s']:.0f} students·img/s)")


def member_model(config: Config, state: dict, device: torch.device) -> nn.Module:
    """One member's student network with its weights ``state``, on ``device``."""
    model = models.student(config.student_cut, dropout=config.student_dropout, normalise=config.student_normalise)
    model.load_state_dict(state)
    return prepare_model(model, device)
