"""The paper's teacher: trained on a GPU window by the paper's recipe, resumed across windows, installed.

The recipe is :func:`igkd_lib.training.teacher.recipe_from_config` at the ``paper`` profile (SGD Nesterov,
lr 1e-2, weight decay 1e-2, batch 256, 100 epochs, warm-up then cosine). A window trains epoch by
epoch while its budget allows; an unfinished run comes back as two checkpoint files (each under the
16 MiB a returned file may hold; :mod:`igkd_lib.campaign.resume_files`) that ingest commits and the next
window resumes, on whichever machine it runs. A finished teacher comes
back as float32 weights (~9 MB) and a card; :func:`install` verifies them, re-measures their accuracy
on the data in use (float32, CPU) and makes them the ``paper`` teacher, and the default of every
profile where they beat the CPU teacher (:func:`igkd_lib.training.teacher.preferred_weights`).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

from igkd_lib.campaign.resume_files import RESUME_FILES, read_resume, write_parts
from igkd_lib.config import Config
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.storage import atomic_path, atomic_torch_save, atomic_write_json, load_checkpoint, sha256_file
from igkd_lib.timing import Stopwatch
from igkd_lib.training.loop import TrainResult, evaluate
from igkd_lib.training.teacher import (
    PAPER_WEIGHTS,
    load_shipped_teacher,
    recipe_from_config,
    ship_teacher,
    train_teacher,
)
from igkd_lib.training.teacher_graph import teacher_trainer

__all__ = ["RESUME_FILES", "FIRST_EPOCH_S", "train_in_window", "checkpoint_log", "epochs_done", "split_checkpoint",
           "join_checkpoint", "check_install", "write_install", "install", "measured_accuracy", "ship_to"]


def measured_accuracy(model: torch.nn.Module, test: Cifar10, batch_size: int = 1000) -> float:
    """Top-1 accuracy (%) of ``model`` on ``test``, measured now (never read from a card)."""
    return evaluate(model.eval(), test, batch_size)


# What a window's first teacher epoch costs before any epoch of this window is timed, by device type: on the H200
# the first epoch of each window took 37-42 s (warm-up and evaluation included; ../shared/gpu-windows). Elsewhere
# no prior: the first epoch runs, and the budget governs from the second on.
FIRST_EPOCH_S = {"cuda": 45.0}


def train_in_window(config: Config, train: Cifar10, test: Cifar10, device: torch.device, checkpoint: Path,
                    seconds_left, progress: bool = False) -> TrainResult | None:
    """Train (or resume) the paper recipe one epoch at a time while ``seconds_left()`` allows another epoch.

    Returns the finished run, or None when the budget ran out first (``checkpoint`` holds the state). The first
    epoch is budgeted at :data:`FIRST_EPOCH_S` for the device, later ones at the last epoch's measured cost.
    ``config.teacher_engine`` trains the epochs (the loop or the graph engine: the same draws and checkpoint, so a
    teacher may change engine between windows; each graph-engine row says ``"trainer": "graph"``).
    """
    recipe = recipe_from_config(config)
    epoch_cost, result = FIRST_EPOCH_S.get(device.type), None
    while True:
        done = epochs_done(checkpoint)
        if done >= recipe.epochs:
            return result if result is not None else _finished(recipe, train, test, device, checkpoint)
        if epoch_cost is not None and seconds_left() < 1.25 * epoch_cost:
            return None
        watch = Stopwatch()
        trainer = teacher_trainer(config.teacher_engine)
        result = trainer(recipe, train, test, device, checkpoint=checkpoint, progress=progress, stop_after=1)
        epoch_cost = watch.seconds
        row = result.log[-1]
        print(f"teacher epoch {row['epoch']}/{recipe.epochs} ({config.teacher_engine}, ran {result.info['compile']}): "
              f"loss {row['loss']:.4f} test {row['test_acc']:.2f}% ({row['images_per_s']:.0f} img/s, "
              f"{epoch_cost:.1f} s with evaluation)", flush=True)


def _finished(recipe, train, test, device, checkpoint) -> TrainResult:
    """The finished run held by ``checkpoint`` (the trainer returns at once when no epoch is left)."""
    return train_teacher(recipe, train, test, device, checkpoint=checkpoint, progress=False)


def ship_to(result: TrainResult, config: Config, source: str, device: torch.device, folder: Path,
            commit: str) -> dict:
    """Write the finished teacher as ``folder/teacher.pt`` (float32) and ``teacher.json`` (card, commit given)."""
    card = ship_teacher(result, recipe_from_config(config), source, device, weights=folder / "teacher.pt")
    card["commit"] = commit
    atomic_write_json(folder / "teacher.json", card)
    return card


def checkpoint_log(checkpoint: Path) -> list:
    """The per-epoch rows a window's scratch checkpoint holds (none when absent), read as tensors and plain data
    only."""
    state = load_checkpoint(checkpoint)  # weights_only; an unreadable one is moved aside
    return state["log"] if state else []


def epochs_done(checkpoint: Path) -> int:
    """Epochs a window's scratch checkpoint holds (0 when absent)."""
    return len(checkpoint_log(checkpoint))


def split_checkpoint(checkpoint: Path, folder: Path) -> dict:
    """Write ``checkpoint`` as the two resume files in ``folder`` (igkd_lib.campaign.resume_files); their SHA-256s."""
    state = load_checkpoint(checkpoint)
    if state is None:
        raise ValueError(f"checkpoint={checkpoint} is absent or unreadable; allowed: the window's teacher checkpoint")
    return write_parts(folder, state)


def join_checkpoint(folder: Path, checkpoint: Path, sha256: dict | None = None,
                    expected_meta: dict | None = None) -> bool:
    """Rebuild a checkpoint from the two files of :func:`split_checkpoint`; False when neither is there.

    ``sha256`` (name -> hash, from ``resume.json`` or ``window.json``) is required and verified first, the
    files are loaded as tensors and plain data only and checked against this checkout's teacher (and
    ``expected_meta``: the recipe and data of the run that resumes): any mismatch is an error.
    """
    if not any((Path(folder) / name).exists() for name in RESUME_FILES):
        return False
    state = read_resume(folder, sha256, expected_meta)
    atomic_torch_save(checkpoint, state)
    return True


def check_install(returned: Path, test: Cifar10) -> dict:
    """The card a window's ``teacher.pt`` + ``teacher.json`` would be installed with; writes nothing.

    The SHA-256 must match the card; the accuracy is measured again here (float32, on ``test``) and
    becomes the card's ``test_accuracy`` (the device's figure is kept as ``device_test_accuracy``).
    """
    loaded = load_shipped_teacher(returned)
    if loaded is None:
        raise ValueError(f"teacher={returned} is absent or does not match its card's SHA-256; allowed: the "
                         "teacher.pt and teacher.json of one window")
    model, card = loaded
    accuracy = measured_accuracy(model, test)
    return {**card, "device_test_accuracy": card["test_accuracy"], "test_accuracy": accuracy,
            "measured_on": f"{test.source} test split, {len(test)} images, float32 CPU"}


def write_install(returned: Path, card: dict, weights: Path = PAPER_WEIGHTS) -> None:
    """Copy the checked ``returned`` weights to ``weights`` and write ``card`` beside them (verified after)."""
    weights.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(weights) as tmp:
        shutil.copyfile(returned, tmp)
    if sha256_file(weights) != card["sha256"]:
        raise RuntimeError(f"the copy {weights} failed its SHA-256 check right after writing")
    atomic_write_json(weights.with_suffix(".json"), card)


def install(returned: Path, test: Cifar10, weights: Path = PAPER_WEIGHTS) -> dict:
    """Install a window's ``teacher.pt`` + ``teacher.json`` as the paper teacher; returns the installed card
    (:func:`check_install`, then :func:`write_install`)."""
    card = check_install(returned, test)
    write_install(returned, card, weights)
    return card
