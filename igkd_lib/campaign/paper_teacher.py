"""The paper's teacher: trained on a GPU window by the paper's recipe, resumed across windows, installed.

The recipe is :func:`igkd_lib.training.teacher.recipe_from_config` at the ``paper`` profile (SGD Nesterov,
lr 1e-2, weight decay 1e-2, batch 256, 100 epochs, warm-up then cosine). A window trains epoch by
epoch while its budget allows; an unfinished run comes back as two checkpoint files (each under the
16 MiB a returned file may hold) that the next window carries and resumes. A finished teacher comes
back as float32 weights (~9 MB) and a card; :func:`install` verifies them, re-measures their accuracy
on the data in use (float32, CPU) and makes them the ``paper`` teacher, and the default of every
profile where they beat the CPU teacher (:func:`igkd_lib.training.teacher.preferred_weights`).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

from igkd_lib.config import Config
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.storage import atomic_path, atomic_torch_save, atomic_write_json, sha256_file
from igkd_lib.timing import Stopwatch
from igkd_lib.training.loop import TrainResult, evaluate
from igkd_lib.training.teacher import (
    PAPER_WEIGHTS,
    load_shipped_teacher,
    recipe_from_config,
    ship_teacher,
    train_teacher,
)

__all__ = ["RESUME_FILES", "train_in_window", "split_checkpoint",
           "join_checkpoint", "install", "measured_accuracy", "ship_to"]

RESUME_FILES = ("teacher_resume_model.pt", "teacher_resume_optim.pt")


def measured_accuracy(model: torch.nn.Module, test: Cifar10, batch_size: int = 1000) -> float:
    """Top-1 accuracy (%) of ``model`` on ``test``, measured now (never read from a card)."""
    return evaluate(model.eval(), test, batch_size)


def train_in_window(config: Config, train: Cifar10, test: Cifar10, device: torch.device, checkpoint: Path,
                    seconds_left, progress: bool = False) -> TrainResult | None:
    """Train (or resume) the paper recipe one epoch at a time while ``seconds_left()`` allows another epoch.

    Returns the finished run, or None when the budget ran out first (``checkpoint`` holds the state).
    """
    recipe = recipe_from_config(config)
    epoch_cost, result = None, None
    while True:
        done = len(torch.load(checkpoint, map_location="cpu", weights_only=False)["log"]) if checkpoint.is_file() else 0
        if done >= recipe.epochs:
            return result if result is not None else _finished(recipe, train, test, device, checkpoint)
        if epoch_cost is not None and seconds_left() < 1.25 * epoch_cost:
            return None
        watch = Stopwatch()
        result = train_teacher(recipe, train, test, device, checkpoint=checkpoint, progress=progress, stop_after=1)
        epoch_cost = watch.seconds
        row = result.log[-1]
        print(f"teacher epoch {row['epoch']}/{recipe.epochs}: loss {row['loss']:.4f} test {row['test_acc']:.2f}% "
              f"({row['images_per_s']:.0f} img/s, {epoch_cost:.1f} s with evaluation)", flush=True)


def _finished(recipe, train, test, device, checkpoint) -> TrainResult:
    """The finished run held by ``checkpoint`` (train_loop returns at once when no epoch is left)."""
    return train_teacher(recipe, train, test, device, checkpoint=checkpoint, progress=False)


def ship_to(result: TrainResult, config: Config, source: str, device: torch.device, folder: Path,
            commit: str) -> dict:
    """Write the finished teacher as ``folder/teacher.pt`` (float32) and ``teacher.json`` (card, commit given)."""
    card = ship_teacher(result, recipe_from_config(config), source, device, weights=folder / "teacher.pt")
    card["commit"] = commit
    atomic_write_json(folder / "teacher.json", card)
    return card


def split_checkpoint(checkpoint: Path, folder: Path) -> dict:
    """Write ``checkpoint`` as two files (weights + log; optimiser state) in ``folder``; their SHA-256s."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model_part = {k: v for k, v in state.items() if k != "optimizer"}
    atomic_torch_save(folder / RESUME_FILES[0], model_part)
    atomic_torch_save(folder / RESUME_FILES[1], {"optimizer": state["optimizer"]})
    return {name: sha256_file(folder / name) for name in RESUME_FILES}


def join_checkpoint(folder: Path, checkpoint: Path, sha256: dict | None = None) -> bool:
    """Rebuild a checkpoint from the two files of :func:`split_checkpoint`; False when absent.

    ``sha256`` (name -> hash, e.g. from ``folder/manifest.json``) is verified first: a mismatch is an error.
    """
    paths = [folder / name for name in RESUME_FILES]
    if not all(p.is_file() for p in paths):
        return False
    for path in paths:
        if sha256 is not None and sha256.get(path.name) != sha256_file(path):
            raise ValueError(f"resume file {path} does not match its recorded SHA-256; allowed: the files a "
                             "window returned (delete the folder to restart the teacher)")
    state = torch.load(paths[0], map_location="cpu", weights_only=False)
    state["optimizer"] = torch.load(paths[1], map_location="cpu", weights_only=False)["optimizer"]
    atomic_torch_save(checkpoint, state)
    return True


def install(returned: Path, test: Cifar10, weights: Path = PAPER_WEIGHTS) -> dict:
    """Install a window's ``teacher.pt`` + ``teacher.json`` as the paper teacher; returns the installed card.

    The SHA-256 must match the card; the accuracy is measured again here (float32, on ``test``) and
    becomes the card's ``test_accuracy`` (the device's figure is kept as ``device_test_accuracy``).
    """
    loaded = load_shipped_teacher(returned)
    if loaded is None:
        raise ValueError(f"teacher={returned} is absent or does not match its card's SHA-256; allowed: the "
                         "teacher.pt and teacher.json of one window")
    model, card = loaded
    accuracy = measured_accuracy(model, test)
    card = {**card, "device_test_accuracy": card["test_accuracy"], "test_accuracy": accuracy,
            "measured_on": f"{test.source} test split, {len(test)} images, float32 CPU"}
    weights.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(weights) as tmp:
        shutil.copyfile(returned, tmp)
    if sha256_file(weights) != card["sha256"]:
        raise RuntimeError(f"the copy {weights} failed its SHA-256 check right after writing")
    atomic_write_json(weights.with_suffix(".json"), card)
    return card
