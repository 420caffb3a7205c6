"""The training loop shared by teacher and students: tensor-resident data, checkpoints, resume.

Each epoch's shuffling, augmentation and dropout are seeded from ``(seed, epoch)``, so a run resumed
from its last checkpoint ends exactly where an uninterrupted run ends (on CPU). See chapter 4.

No host synchronisation inside an epoch: a student run draws the epoch's randomness ahead (``draw_fn``)
and uploads it once, loss and correct counts accumulate on the device and are read once per epoch,
and the test set is uploaded once and evaluated on the device. On CUDA the step runs under bf16
autocast in channels-last memory, cuDNN may use TF32 and non-deterministic kernels: GPU results are
reproducible only statistically; bit-exact resume is a CPU promise. ``compile_choice`` chooses eager,
``torch.compile`` or ``torch.compile`` with CUDA-graph capture (``"cudagraph"``, CUDA only); a choice
that fails falls back to eager, and the result's ``info`` records what ran.
"""
from __future__ import annotations

import math
import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from igkd_lib.data.augment import to_float
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.errors import NonFiniteLossError
from igkd_lib.storage import atomic_torch_save, load_checkpoint
from igkd_lib.timing import Stopwatch

__all__ = ["warmup_cosine", "evaluate", "predict_logits", "TrainResult", "train_loop", "prepare_model",
           "epoch_generator", "autocast", "returned_weights", "interactive", "compiled", "COMPILE_CHOICES",
           "precision_name", "epoch_line", "device_correct", "guarded_call", "BATCH_ENV", "resume_checkpoint",
           "save_checkpoint", "epoch_row", "finite_row", "print_epoch"]

COMPILE_CHOICES = ("none", "compile", "cudagraph")
BATCH_ENV = "IGKD_BATCH"  # set (not "0"): a batch run, progress as one line per epoch, never bars (interactive)

BatchFn = Callable[[torch.Tensor, torch.Tensor, torch.Generator, int], tuple]
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, tuple], torch.Tensor]
DrawFn = Callable[[torch.Generator, int], dict]


def warmup_cosine(peak: float, total_steps: int, warmup: float) -> Callable[[int], float]:
    """Linear warm-up over ``warmup`` of the steps, then cosine decay to zero."""
    warm = max(1, int(round(warmup * total_steps))) if warmup > 0 else 0

    def lr_at(step: int) -> float:
        if step < warm:
            return peak * (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return lr_at


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of one epoch; also seeds torch's global RNG (dropout) the same way."""
    torch.manual_seed(seed * 100_003 + epoch)
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def autocast(device: torch.device, bf16: bool | None = None, cache: bool = True):
    """bf16 autocast where ``bf16`` (default: on CUDA only), nothing elsewhere (CPU results stay float32
    and reproducible). The one place that says what "bf16" means for the library's arithmetic.
    ``cache=False``: no cast weights kept between calls (required inside a CUDA graph capture)."""
    if bf16 is None:
        bf16 = device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache) if bf16 else nullcontext()


def precision_name(device: torch.device) -> str:
    """``"bf16"`` where :func:`autocast` casts (CUDA), else ``"fp32"``."""
    return "bf16" if device.type == "cuda" else "fp32"


def interactive() -> bool:
    """True in a terminal or a live notebook kernel (progress bars), False in batch runs (one line per epoch):
    papermill in this process, or :data:`BATCH_ENV` set (``make book`` and ``make notebooks`` set it for the
    kernels they start, which cannot tell a papermill client from a person)."""
    if "papermill" in sys.modules or os.environ.get(BATCH_ENV, "") not in ("", "0"):
        return False
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def epoch_line(desc: str, row: dict) -> str:
    """The one line printed per epoch."""
    return (f"{desc} epoch {row['epoch']}: loss {row['loss']:.4f} train {row['train_acc']:.2f}% "
            f"test {row['test_acc']:.2f}% ({row['images_per_s']:.0f} img/s)")


def compiled(module: nn.Module, choice: str, device: torch.device) -> tuple[nn.Module, str]:
    """``(callable module, what ran)`` for ``choice`` in :data:`COMPILE_CHOICES`.

    ``"compile"``: ``torch.compile``; ``"cudagraph"``: ``torch.compile(mode="reduce-overhead")``, which
    captures CUDA graphs (CUDA only; elsewhere it is plain ``"compile"``). The compiled module shares
    the parameters; compilation itself happens at the first call (see :func:`guarded_call`).
    """
    if choice not in COMPILE_CHOICES:
        raise ValueError(f"compile={choice!r} is not allowed; allowed: {', '.join(COMPILE_CHOICES)}")
    if choice == "none":
        return module, "none"
    if choice == "cudagraph" and device.type != "cuda":
        choice = "compile"
    mode = "reduce-overhead" if choice == "cudagraph" else None
    return torch.compile(module, mode=mode, dynamic=False), choice


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move to ``device`` in channels-last memory (faster for these convolutions on CPU and GPU)."""
    return model.to(device=device, memory_format=torch.channels_last)


@torch.inference_mode()
def predict_logits(model: nn.Module, images_uint8: torch.Tensor, batch_size: int = 500,
                   device: torch.device | None = None, progress: bool = False) -> torch.Tensor:
    """Logits (N, classes) in eval mode for uint8 images (N, 3, 32, 32), on CPU, float32."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs = []
    for start in tqdm(range(0, len(images_uint8), batch_size), desc="predict", disable=not progress, leave=False):
        x = to_float(images_uint8[start:start + batch_size].to(device, non_blocking=True))
        with autocast(device):
            outputs.append(model(x.contiguous(memory_format=torch.channels_last)).float().cpu())
    model.train(was_training)
    return torch.cat(outputs)


def evaluate(model: nn.Module, data: Cifar10, batch_size: int = 500) -> float:
    """Top-1 accuracy in percent."""
    logits = predict_logits(model, data.images, batch_size)
    return float((logits.argmax(1) == data.labels).float().mean() * 100)


@dataclass
class TrainResult:
    """What a training run returns: the model, its per-epoch log and how it ran (``info``: compile, precision)."""

    model: nn.Module
    log: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def final_accuracy(self) -> float:
        return self.log[-1]["test_acc"] if self.log else float("nan")

    @property
    def best_accuracy(self) -> float:
        return max((row["test_acc"] for row in self.log), default=float("nan"))


def returned_weights(checkpoint_state: dict) -> dict:
    """The weights a run's checkpoint stands for: those of its average where it averaged, else the model's."""
    average = checkpoint_state.get("average")
    if average is None:
        return checkpoint_state["model"]
    return {key.removeprefix("module."): value for key, value in average.items() if key.startswith("module.")}


@torch.inference_mode()
def device_correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Correct predictions (0-dim tensor on the device) of ``model`` in eval mode on uint8 ``images`` there."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    for start in range(0, len(images), batch_size):
        x = to_float(images[start:start + batch_size]).contiguous(memory_format=torch.channels_last)
        with autocast(images.device):
            correct += (model(x).argmax(-1) == labels[start:start + batch_size]).sum()
    model.train(was_training)
    return correct


def resume_checkpoint(checkpoint: Path | None, meta: dict, model: nn.Module, optimizer: torch.optim.Optimizer,
                      average: AveragedModel | None, device: torch.device) -> tuple[int, list]:
    """``(first epoch to run, log so far)``: resumed from ``checkpoint`` when it exists and its meta matches
    (model, optimizer and average loaded in place)."""
    state = load_checkpoint(checkpoint, map_location=device) if checkpoint is not None else None
    if state is None:
        return 0, []
    if state.get("meta") != meta:
        return 0, []
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if average is not None:
        average.load_state_dict(state["average"])
    return state["epoch"] + 1, state["log"]


def save_checkpoint(checkpoint: Path | None, meta: dict, model: nn.Module, optimizer_state: dict,
                    average: AveragedModel | None, epoch: int, log: list) -> None:
    """Write the run after ``epoch`` (atomically): model, optimizer state, epoch, log, meta (and average)."""
    if checkpoint is not None:
        atomic_torch_save(checkpoint, {"model": model.state_dict(), "optimizer": optimizer_state,
                                       "epoch": epoch, "log": log, "meta": meta,
                                       **({"average": average.state_dict()} if average is not None else {})})


def _epoch_plan(seed: int, epoch: int, n: int, draw_fn: DrawFn | None, device: torch.device, upload: bool):
    """``(order, draws)`` of one epoch: ``draws`` is the CPU generator (no ``draw_fn``) or the drawn dict,
    uploaded to ``device`` once (``upload``) or left on the CPU (the per-step path uploads each step's)."""
    generator = epoch_generator(seed, epoch)
    if draw_fn is None:
        return torch.randperm(n, generator=generator).to(device), generator
    draws = draw_fn(generator, epoch)
    if upload:
        draws = {key: value.to(device, non_blocking=True) for key, value in draws.items()}
    return draws.pop("order").to(device), draws


def _step_draws(draws, positions_slice: slice, device: torch.device):
    if isinstance(draws, torch.Generator):
        return draws
    return {key: value[positions_slice].to(device) for key, value in draws.items()}


def finite_row(row: dict, desc: str) -> dict:
    """``row`` when its training loss is finite; else :class:`igkd_lib.errors.NonFiniteLossError` (checked before any
    checkpoint: a diverged run is never saved or cached)."""
    if not math.isfinite(row["loss"]):
        raise NonFiniteLossError(f"{desc}: the training loss became {row['loss']} in epoch {row['epoch']}; "
                                 "lower the learning rate or check the inputs (nothing was saved)")
    return row


def print_epoch(desc: str, row: dict, show_bar: bool) -> None:
    """The epoch's one line: under the progress bar where one is shown, else printed."""
    tqdm.write(epoch_line(desc, row)) if show_bar else print(epoch_line(desc, row), flush=True)


def epoch_row(epoch: int, loss_sum: torch.Tensor, correct: torch.Tensor, n: int, test_correct: torch.Tensor,
               n_test: int, watch: Stopwatch) -> dict:
    """The epoch's log row; the one place the epoch's device-side sums are read.

    ``seconds`` is the epoch's wall time on ``watch`` (started with the epoch) to this read:
    training, ``before_eval`` and evaluation, as the wide trainer counts it.
    """
    sums = torch.stack([loss_sum.double(), correct.double(), test_correct.double()]).cpu().tolist()
    seconds = watch.seconds
    return {"epoch": epoch + 1, "loss": sums[0] / n, "train_acc": 100.0 * sums[1] / n,
            "test_acc": 100.0 * sums[2] / n_test, "seconds": seconds, "images_per_s": n / seconds}


def train_loop(model: nn.Module, optimizer: torch.optim.Optimizer, lr_at: Callable[[int], float],
               train: Cifar10, test: Cifar10, *, epochs: int, batch_size: int, seed: int,
               device: torch.device, batch_fn: BatchFn, loss_fn: LossFn, checkpoint: Path | None = None,
               eval_batch_size: int = 500, desc: str = "train", progress: bool = True,
               checkpoint_meta: dict | None = None, stop_after: int | None = None,
               average: AveragedModel | None = None, draw_fn: DrawFn | None = None,
               per_step_sync: bool = False, compile_choice: str = "none",
               before_eval: Callable[[nn.Module], object] | None = None) -> TrainResult:
    """Train for ``epochs``, evaluating and checkpointing after each; resume from ``checkpoint``.

    ``batch_fn(uint8_images, positions, draws, epoch)`` returns the model input and extras, where
    ``draws`` is the epoch's CPU generator, or, given ``draw_fn(generator, epoch)`` (a dict of (N,)
    CPU tensors in epoch order, ``"order"`` among them), the step's slice of those on the device.
    ``loss_fn(model, x, labels, extras)`` returns ``(scalar loss, logits)``. ``stop_after`` ends the
    call after that many epochs in this call (for tests of resuming). Given ``average`` (an
    ``AveragedModel`` of ``model``, e.g. an EMA), it is updated after every step and is what the run
    returns: each row's ``test_acc`` is the averaged weights', ``live_test_acc`` the trained ones'.
    ``before_eval(model)`` runs before each evaluation (e.g. :func:`igkd_lib.training.batchnorm.recalibrate`).
    ``per_step_sync`` uploads each step's draws and reads the loss and the correct count every step
    (the trainer as it was, kept for ``bench campaign``; same numbers).
    """
    model = prepare_model(model, device)
    if average is not None:
        average = prepare_model(average, device)
    runner, compile_used = compiled(model, compile_choice, device)
    images, labels = train.images.to(device), train.labels.to(device)
    test_images, test_labels = test.images.to(device), test.labels.to(device)
    meta = checkpoint_meta or {}
    start_epoch, log = resume_checkpoint(checkpoint, meta, model, optimizer, average, device)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    show_bar = progress and interactive()
    done_here = 0
    for epoch in range(start_epoch, epochs):
        if stop_after is not None and done_here >= stop_after:
            break
        order, draws = _epoch_plan(seed, epoch, len(train), draw_fn, device, upload=not per_step_sync)
        model.train()
        watch = Stopwatch()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        bar = tqdm(range(steps_per_epoch), desc=f"{desc} epoch {epoch + 1}/{epochs}", disable=not show_bar,
                   leave=False, unit="batch")
        for step in bar:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch * steps_per_epoch + step)
            window = slice(step * batch_size, (step + 1) * batch_size)
            positions = order[window]
            x, extras = batch_fn(images[positions], positions, _step_draws(draws, window, device), epoch)
            y = labels[positions]
            runner, compile_used, (loss, logits) = guarded_call(runner, model, compile_used, loss_fn, x, y, extras)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update_parameters(model)
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            if per_step_sync:
                float(loss_sum), int(correct)
        if before_eval is not None:
            before_eval(model)
        row = epoch_row(epoch, loss_sum, correct, len(train), device_correct(model, test_images, test_labels,
                         eval_batch_size), len(test), watch)
        if average is not None:
            average_correct = device_correct(average.module, test_images, test_labels, eval_batch_size)
            row = {**row, "test_acc": 100.0 * int(average_correct) / len(test), "live_test_acc": row["test_acc"]}
        log.append(finite_row(row, desc))
        done_here += 1
        save_checkpoint(checkpoint, meta, model, optimizer.state_dict(), average, epoch, log)
        if progress:
            print_epoch(desc, row, show_bar)
    info = {"compile": compile_used, "precision": precision_name(device), "trainer": "single"}
    return TrainResult(model=average.module if average is not None else model, log=log, info=info)


def guarded_call(runner, model, compile_used, loss_fn, x, y, extras):
    """``loss_fn`` on ``runner``; a compiled runner that fails falls back to eager ``model`` (recorded)."""
    x = x.contiguous(memory_format=torch.channels_last)
    with autocast(x.device):
        if runner is model:
            return runner, compile_used, loss_fn(model, x, y, extras)
        if compile_used == "cudagraph":
            torch.compiler.cudagraph_mark_step_begin()
        try:
            return runner, compile_used, loss_fn(runner, x, y, extras)
        except Exception as error:  # noqa: BLE001 - any compiler failure means: run eager
            print(f"compile={compile_used} failed ({type(error).__name__}: {error}); running eager", file=sys.stderr)
            return model, f"none (fallback from {compile_used})", loss_fn(model, x, y, extras)
