"""``python -m igkd_lib bench train``: student KD + IG-overlay training throughput (images/s).

Three ways to feed the same training step (teacher forward on the batch, student forward,
backward and Adam step, batch ``config.student_batch_size``), measured side by side in one run,
interleaved in rounds so that a busy machine slows all three alike:

- ``pipeline``: this book's trainer (:func:`igkd_lib.training.loop.train_loop` with
  :func:`igkd_lib.training.student.batch_and_loss`): data and maps on the device, crop, flip and overlay
  for the whole batch at once;
- ``floor``: the same step on pre-made batches (no data work at all);
- ``official``: the official code's design: a torchvision ``Dataset`` with PIL transforms and a
  per-sample overlay in ``__getitem__``, a ``DataLoader`` (workers as in the official code, at most
  the cores here).

A figure, not a test: the maps are random (the cost does not depend on their values) and the
networks are freshly initialised. See chapter 4 ("What training costs").
"""
from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from igkd_lib import models
from igkd_lib.config import Config
from igkd_lib.console import print_table
from igkd_lib.data.augment import to_float
from igkd_lib.data.cifar10 import load_splits
from igkd_lib.provenance import device_name, resolve_device
from igkd_lib.timing import Stopwatch
from igkd_lib.training.distill import kd_loss
from igkd_lib.training.loop import autocast, prepare_model, train_loop
from igkd_lib.training.student import batch_and_loss, method_config, student_draw_fn

__all__ = ["OfficialOverlayDataset", "run", "cli"]


class OfficialOverlayDataset(Dataset):
    """The official design: PIL crop + flip per sample, then the (untransformed) map overlaid with prob. p."""

    def __init__(self, images_uint8: torch.Tensor, labels: torch.Tensor, maps: torch.Tensor, config: Config):
        from torchvision import transforms

        self.images = images_uint8.permute(0, 2, 3, 1).numpy()  # (N, H, W, 3) as PIL wants
        self.labels, self.maps, self.config = labels.numpy(), maps.numpy(), config
        self.transform = transforms.Compose([transforms.RandomCrop(32, padding=config.crop_padding),
                                             transforms.RandomHorizontalFlip(), transforms.ToTensor()])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        x = self.transform(Image.fromarray(self.images[i]))
        c = self.config
        if np.random.rand() < c.p:
            s = math.exp(np.random.uniform(math.log(c.exponent_low), math.log(c.exponent_high)))
            m = self.maps[i] ** s
            m = (m - m.min()) / max(m.max() - m.min(), 1e-12)
            x = (1 - c.blend) * x + c.blend * torch.from_numpy(m).float().unsqueeze(0)
        return x, int(self.labels[i])


def _step(student, teacher, optimizer, x, y, config, device) -> None:
    """One KD training step on a ready batch ``x`` (N, 3, 32, 32) on ``device``."""
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), autocast(device):
        t = teacher(x).float()
    with autocast(device):
        logits = student(x)
        loss = kd_loss(logits, t, y, temperature=config.temperature, alpha=config.alpha)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    float(loss.detach())  # train_loop reads the loss every step too


def _time_floor(student, teacher, optimizer, batches, config, device) -> float:
    watch = Stopwatch(device)
    for x, y in batches:
        _step(student, teacher, optimizer, x, y, config, device)
    return watch.seconds


def _time_official(student, teacher, optimizer, batches_iter, steps, config, device) -> float:
    watch = Stopwatch(device)
    for _ in range(steps):
        x, y = next(batches_iter)
        _step(student, teacher, optimizer, x.to(device, non_blocking=True), y.to(device, non_blocking=True),
              config, device)
    return watch.seconds


def _time_pipeline(student, optimizer, train, fns, config, device) -> float:
    batch_fn, loss_fn = fns
    result = train_loop(student, optimizer, lambda step: config.student_lr, train, train.subset(torch.arange(1)),
                        epochs=1, batch_size=config.student_batch_size, seed=0, device=device,
                        batch_fn=batch_fn, loss_fn=loss_fn, progress=False,
                        draw_fn=student_draw_fn(config, 0, len(train)))
    return result.log[0]["seconds"]


def _endless(loader):
    while True:
        yield from loader


def run(config: Config, steps: int = 4, rounds: int = 2, num_workers: int | None = None) -> pd.DataFrame:
    """Images/s of the three designs, ``rounds`` x ``steps`` steps each after a warm-up round."""
    config = method_config(config, "kd_ig")
    device = resolve_device(config.device)
    batch = config.student_batch_size
    train = load_splits(config.replace(n_train=max(config.n_train, steps * batch)))[0]
    train = train.subset(torch.arange(steps * batch))
    maps = torch.rand(len(train), 32, 32, generator=torch.Generator().manual_seed(0)) ** 3
    torch.manual_seed(0)
    teacher = prepare_model(models.teacher(), device).eval()
    student = prepare_model(models.student(config.student_cut, dropout=config.student_dropout,
                                                  normalise=config.student_normalise), device)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.student_lr)
    fns = batch_and_loss(config, teacher, maps, train, device)
    x_all = to_float(train.images.to(device))
    y_all = train.labels.to(device)
    premade = [(x_all[i:i + batch], y_all[i:i + batch]) for i in range(0, len(train), batch)]
    workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
    loader = DataLoader(OfficialOverlayDataset(train.images, train.labels, maps, config), batch_size=batch,
                        shuffle=True, num_workers=workers, drop_last=True, persistent_workers=workers > 0,
                        pin_memory=device.type == "cuda")
    batches_iter = _endless(loader)
    student.train()
    seconds = {"pipeline": 0.0, "floor": 0.0, "official": 0.0}
    for round_ in range(rounds + 1):  # round 0 warms up
        measured = {"pipeline": _time_pipeline(student, optimizer, train, fns, config, device),
                    "floor": _time_floor(student, teacher, optimizer, premade, config, device),
                    "official": _time_official(student, teacher, optimizer, batches_iter, steps, config, device)}
        if round_:
            seconds = {k: seconds[k] + v for k, v in measured.items()}
    images = rounds * steps * batch
    rows = [{"design": k, "images_per_s": images / v, "seconds": v, "images": images, "batch_size": batch,
             "device": device_name(device), "num_workers": workers if k == "official" else 0}
            for k, v in seconds.items()]
    return pd.DataFrame(rows)


def cli(config: Config, args) -> int:
    """Print the table, then the ratios (pipeline / floor, pipeline / official)."""
    table = run(config)
    print_table(table, digits=".1f")
    speed = dict(zip(table["design"], table["images_per_s"]))
    print(f"pipeline / floor    = {speed['pipeline'] / speed['floor']:.2f}x  (target >= 0.9x)")
    print(f"pipeline / official = {speed['pipeline'] / speed['official']:.2f}x")
    return 0
