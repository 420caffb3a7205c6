"""The teacher: its training recipes, the weights shipped with the book, and how they are verified.

``get_teacher(config)`` loads the shipped weights after checking their SHA-256; when they are absent,
do not match, or ``teacher_source="train"``, it trains a teacher with the profile's recipe instead
(cached by the recipe's hash). See chapter 4 ("The teacher").
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import models
from .augment import random_crop_flip, to_float
from .config import Config
from .data import Cifar10, load_splits
from .provenance import device_name, git_commit, resolve_device
from .storage import atomic_torch_save, atomic_write_json, sha256_file, stable_hash
from .train import TrainResult, train_loop, warmup_cosine

__all__ = ["TeacherRecipe", "CPU_RECIPE", "recipe_from_config", "train_teacher", "get_teacher", "TeacherInfo",
           "SHIPPED_WEIGHTS", "SHIPPED_CARD", "ship_teacher", "ship_checkpoint", "load_shipped_teacher", "cli"]

SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "teacher_mobilenetv2_cifar10.pt"
SHIPPED_CARD = SHIPPED_WEIGHTS.with_suffix(".json")


@dataclass(frozen=True)
class TeacherRecipe:
    """How a teacher is trained. ``resolutions`` maps a first epoch to the image size from then on."""

    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-2
    weight_decay: float = 1e-2
    warmup: float = 0.3
    momentum: float = 0.9
    label_smoothing: float = 0.0
    resolutions: tuple = ((0, 32),)
    padding: int = 4
    seed: int = 0

    def size_at(self, epoch: int) -> int:
        return [size for first, size in self.resolutions if first <= epoch][-1]


# The shipped teacher's recipe for a 2-core CPU: progressive resizing (16 -> 24 -> 32 px) makes the
# early epochs 2-5x cheaper; label smoothing and a higher peak rate make up for the short schedule.
CPU_RECIPE = TeacherRecipe(epochs=20, batch_size=128, lr=0.1, weight_decay=5e-4, warmup=0.15,
                           label_smoothing=0.1, resolutions=((0, 16), (8, 24), (14, 32)))


def recipe_from_config(config: Config) -> TeacherRecipe:
    """The paper's recipe with the profile's epochs, batch size, rate, weight decay and warm-up."""
    return TeacherRecipe(epochs=config.teacher_epochs, batch_size=config.teacher_batch_size, lr=config.teacher_lr,
                         weight_decay=config.teacher_weight_decay, warmup=config.teacher_warmup,
                         padding=config.crop_padding, seed=config.subset_seed)


def train_teacher(recipe: TeacherRecipe, train: Cifar10, test: Cifar10, device: torch.device,
                  checkpoint: Path | None = None, progress: bool = True, **loop_options) -> TrainResult:
    """Train a fresh teacher with ``recipe`` (SGD Nesterov, warm-up-cosine, crop + flip)."""
    torch.manual_seed(recipe.seed)  # the initial weights are part of the run
    model = models.teacher()
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                                weight_decay=recipe.weight_decay)
    steps = recipe.epochs * -(-len(train) // recipe.batch_size)

    def batch_fn(images, positions, generator, epoch):
        x = random_crop_flip(to_float(images), padding=recipe.padding, generator=generator)
        size = recipe.size_at(epoch)
        if size != x.shape[-1]:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return x, ()

    def loss_fn(net, x, y, extras):
        logits = net(x)
        return F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing), logits

    meta = {"recipe": dataclasses.asdict(recipe), "n_train": len(train), "source": train.source}
    return train_loop(model, optimizer, warmup_cosine(recipe.lr, steps, recipe.warmup), train, test,
                      epochs=recipe.epochs, batch_size=recipe.batch_size, seed=recipe.seed, device=device,
                      batch_fn=batch_fn, loss_fn=loss_fn, checkpoint=checkpoint, desc="teacher",
                      progress=progress, checkpoint_meta=meta, **loop_options)


@dataclass(frozen=True)
class TeacherInfo:
    """Where the teacher in use came from, and how good it is."""

    origin: str  # "shipped" or "trained"
    test_accuracy: float
    sha256: str
    data_source: str
    recipe: dict
    status: str = "complete"

    def describe(self) -> str:
        """One line for beside results: origin, accuracy, status and hash."""
        return (f"teacher: {self.origin}, {self.test_accuracy:.2f}% test accuracy ({self.status}), "
                f"sha256 {self.sha256[:12]}")


def ship_teacher(result: TrainResult, recipe: TeacherRecipe, data_source: str, device: torch.device,
                 weights: Path = SHIPPED_WEIGHTS) -> dict:
    """Write the weights (float32 state dict) and their card (SHA-256, recipe, log) atomically.

    The card's ``status`` is ``complete`` when the log covers every epoch of the recipe, else
    ``provisional`` (a checkpoint shipped before the end of its schedule; the book says so).
    """
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    atomic_torch_save(weights, state)
    status = "complete" if len(result.log) >= recipe.epochs else f"provisional: epoch {len(result.log)} of {recipe.epochs}"
    card = {"sha256": sha256_file(weights), "parameters": models.count_parameters(result.model),
            "test_accuracy": result.final_accuracy, "data_source": data_source, "recipe": dataclasses.asdict(recipe),
            "status": status, "trained_on": device_name(device), "commit": git_commit(), "log": result.log}
    atomic_write_json(weights.with_suffix(".json"), card)
    return card


def load_shipped_teacher(weights: Path = SHIPPED_WEIGHTS) -> tuple[nn.Module, dict] | None:
    """The shipped teacher in eval mode and its card, or None if absent or its SHA-256 does not match."""
    card_path = weights.with_suffix(".json")
    if not (weights.is_file() and card_path.is_file()):
        return None
    card = json.loads(card_path.read_text())
    if sha256_file(weights) != card.get("sha256"):
        return None
    model = models.teacher()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval(), card


def get_teacher(config: Config, progress: bool = True) -> tuple[nn.Module, TeacherInfo]:
    """The teacher the profile uses, on the profile's device, in eval mode, with its provenance."""
    device = resolve_device(config.device)
    shipped = load_shipped_teacher() if config.teacher_source == "shipped" else None
    if shipped is not None:
        return _on_device("shipped", *shipped, device)
    recipe = recipe_from_config(config)
    train, test = load_splits(config)
    key = stable_hash({"recipe": dataclasses.asdict(recipe), "train": train.indices.tolist(), "src": train.source})
    folder = Path(config.cache_dir) / "teachers" / key
    final = folder / "teacher.pt"
    cached = load_shipped_teacher(final)
    if cached is None:
        result = train_teacher(recipe, train, test, device, checkpoint=folder / "checkpoint.pt", progress=progress)
        ship_teacher(result, recipe, train.source, device, weights=final)
        cached = load_shipped_teacher(final)
    return _on_device("trained", *cached, device)


def _on_device(origin: str, model: nn.Module, card: dict, device: torch.device) -> tuple[nn.Module, TeacherInfo]:
    """A verified teacher and its card -> (model on ``device``, channels-last, eval mode; its TeacherInfo)."""
    info = TeacherInfo(origin, card["test_accuracy"], card["sha256"], card["data_source"], card["recipe"],
                       card.get("status", "complete"))
    return model.to(device=device, memory_format=torch.channels_last).eval(), info


def ship_checkpoint(checkpoint: Path, recipe: TeacherRecipe, weights: Path = SHIPPED_WEIGHTS) -> dict:
    """Ship the weights of a training checkpoint (possibly mid-schedule: the card says ``provisional``)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if state.get("meta", {}).get("recipe") != dataclasses.asdict(recipe):
        raise ValueError(f"checkpoint={checkpoint} was not trained with this recipe; allowed: a checkpoint of it")
    model = models.teacher()
    model.load_state_dict(state["model"])
    result = TrainResult(model=model, log=state["log"])
    return ship_teacher(result, recipe, state["meta"]["source"], torch.device("cpu"), weights=weights)


def cli(config: Config, args) -> int:
    """``python -m igkd_lib teacher``: train the shipped teacher (resumable), or ``--ship`` its checkpoint."""
    from .data import load_cifar10

    recipe = CPU_RECIPE if args.recipe == "cpu" else recipe_from_config(config)
    checkpoint = Path(config.cache_dir) / f"shipped-teacher-{stable_hash(dataclasses.asdict(recipe))}" / "checkpoint.pt"
    if not args.ship:
        train, test = load_cifar10("train", config), load_cifar10("test", config)
        result = train_teacher(recipe, train, test, resolve_device(config.device), checkpoint=checkpoint)
        print(f"trained: {result.final_accuracy:.2f}% after {len(result.log)} epochs; checkpoint {checkpoint}")
    card = ship_checkpoint(checkpoint, recipe)
    print(f"shipped {SHIPPED_WEIGHTS} ({card['status']}, {card['test_accuracy']:.2f}% test accuracy, "
          f"sha256 {card['sha256'][:12]})")
    return 0
