"""The training loop shared by teacher and students: tensor-resident data, checkpoints, resume.

Each epoch's shuffling, augmentation and dropout are seeded from ``(seed, epoch)``, so a run resumed
from its last checkpoint ends exactly where an uninterrupted run ends (on CPU). See chapter 4.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from .data import Cifar10
from .errors import NonFiniteLossError
from .storage import atomic_torch_save, load_checkpoint

__all__ = ["warmup_cosine", "evaluate", "predict_logits", "TrainResult", "train_loop", "prepare_model",
           "epoch_generator", "autocast", "returned_weights"]

BatchFn = Callable[[torch.Tensor, torch.Tensor, torch.Generator, int], tuple]
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, tuple], torch.Tensor]


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


def autocast(device: torch.device):
    """bf16 autocast on CUDA, nothing elsewhere (CPU results stay float32 and reproducible)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


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
        x = images_uint8[start:start + batch_size].to(device, non_blocking=True).float().div_(255)
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
    """What a training run returns: the model, its per-epoch log and the final test accuracy."""

    model: nn.Module
    log: list = field(default_factory=list)

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


def train_loop(model: nn.Module, optimizer: torch.optim.Optimizer, lr_at: Callable[[int], float],
               train: Cifar10, test: Cifar10, *, epochs: int, batch_size: int, seed: int,
               device: torch.device, batch_fn: BatchFn, loss_fn: LossFn, checkpoint: Path | None = None,
               eval_batch_size: int = 500, desc: str = "train", progress: bool = True,
               checkpoint_meta: dict | None = None, stop_after: int | None = None,
               average: AveragedModel | None = None,
               before_eval: Callable[[nn.Module], object] | None = None) -> TrainResult:
    """Train for ``epochs``, evaluating and checkpointing after each; resume from ``checkpoint``.

    ``batch_fn(uint8_images, positions, generator, epoch)`` returns the model input and extras;
    ``loss_fn(model, x, labels, extras)`` returns the scalar loss. ``stop_after`` ends the call
    after that many epochs in this call (for tests of resuming). Given ``average`` (an
    ``AveragedModel`` of ``model``, e.g. an EMA), it is updated after every step and is what the run
    returns: each row's ``test_acc`` is the averaged weights', ``live_test_acc`` the trained ones'.
    ``before_eval(model)`` runs before each evaluation (e.g. :func:`igkd_lib.batchnorm.recalibrate`).
    """
    model = prepare_model(model, device)
    if average is not None:
        average = prepare_model(average, device)
    images, labels = train.images.to(device), train.labels.to(device)
    log: list = []
    start_epoch = 0
    state = load_checkpoint(checkpoint, map_location=device) if checkpoint is not None else None
    if state is not None:
        if state.get("meta") == (checkpoint_meta or {}):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if average is not None:
                average.load_state_dict(state["average"])
            start_epoch, log = state["epoch"] + 1, state["log"]
    steps_per_epoch = math.ceil(len(train) / batch_size)
    done_here = 0
    for epoch in range(start_epoch, epochs):
        if stop_after is not None and done_here >= stop_after:
            break
        generator = epoch_generator(seed, epoch)
        order = torch.randperm(len(train), generator=generator).to(device)
        model.train()
        started, total_loss, correct = time.perf_counter(), 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"{desc} epoch {epoch + 1}/{epochs}", disable=not progress,
                   leave=False, unit="batch")
        for step in bar:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch * steps_per_epoch + step)
            positions = order[step * batch_size:(step + 1) * batch_size]
            x, extras = batch_fn(images[positions], positions, generator, epoch)
            y = labels[positions]
            with autocast(device):
                loss, logits = loss_fn(model, x.contiguous(memory_format=torch.channels_last), y, extras)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update_parameters(model)
            total_loss += float(loss.detach()) * len(y)
            correct += int((logits.detach().argmax(1) == y).sum())
        seconds = time.perf_counter() - started
        if before_eval is not None:
            before_eval(model)
        row = {"epoch": epoch + 1, "loss": total_loss / len(train), "train_acc": 100.0 * correct / len(train),
               "test_acc": evaluate(model, test, eval_batch_size), "seconds": seconds,
               "images_per_s": len(train) / seconds}
        if average is not None:
            row = {**row, "test_acc": evaluate(average.module, test, eval_batch_size), "live_test_acc": row["test_acc"]}
        if not math.isfinite(row["loss"]):  # before any checkpoint: a diverged run is never saved or cached
            raise NonFiniteLossError(f"{desc}: the training loss became {row['loss']} in epoch {epoch + 1}; "
                                     "lower the learning rate or check the inputs (nothing was saved)")
        log.append(row)
        done_here += 1
        if checkpoint is not None:
            atomic_torch_save(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                           "epoch": epoch, "log": log, "meta": checkpoint_meta or {},
                                           **({"average": average.state_dict()} if average is not None else {})})
        if progress:
            tqdm.write(f"{desc} epoch {epoch + 1}: loss {row['loss']:.4f} train {row['train_acc']:.2f}% "
                       f"test {row['test_acc']:.2f}% ({row['images_per_s']:.0f} img/s)")
    return TrainResult(model=average.module if average is not None else model, log=log)
