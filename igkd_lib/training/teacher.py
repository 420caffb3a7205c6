"""The teacher the book uses: loaded from the shipped weights and verified, or trained on demand.

``get_teacher(config)`` loads the shipped weights after checking their SHA-256 against their card
(:func:`verify_weights`); weights that are absent or do not verify are an error (:class:`WeightsError`),
never silently replaced. Only ``teacher_source="train"`` trains a teacher with the profile's recipe
(cached by the recipe's hash; a damaged cached teacher is moved aside and trained again). A teacher
below :data:`SHIPPED_TARGET` says so in :meth:`TeacherInfo.describe`. See chapter 4 ("The teacher").
How the shipped weights were produced (staged CPU recipes, ``python -m igkd_lib teacher``) lives in
:mod:`igkd_lib.training.teacher_shipping`.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from igkd_lib import models
from igkd_lib.config import Config
from igkd_lib.data.augment import random_crop_flip, to_float
from igkd_lib.data.cifar10 import Cifar10, load_splits
from igkd_lib.errors import WeightsError
from igkd_lib.paths import PACKAGE
from igkd_lib.provenance import device_name, git_commit, resolve_device
from igkd_lib.storage import (
    atomic_torch_save,
    atomic_write_json,
    model_sha256,
    move_aside,
    read_json,
    sha256_file,
    stable_hash,
)
from igkd_lib.training.loop import TrainResult, train_loop, warmup_cosine

__all__ = ["TeacherRecipe", "AveragedTeacherRecipe", "recipe_from_config", "teacher_cache_key", "checkpoint_meta",
           "train_teacher", "teacher_start", "teacher_optimizer", "resized",
           "get_teacher", "TeacherInfo", "SHIPPED_WEIGHTS", "PAPER_WEIGHTS", "SHIPPED_TARGET", "preferred_weights",
           "ship_teacher", "load_shipped_teacher", "verify_weights", "WeightsError"]

SHIPPED_WEIGHTS = PACKAGE / "weights" / "teacher_mobilenetv2_cifar10.pt"
# the GPU-trained paper teacher, where a campaign installed it (igkd_lib.campaign.paper_teacher.install)
PAPER_WEIGHTS = SHIPPED_WEIGHTS.with_name("teacher_paper_mobilenetv2_cifar10.pt")
SHIPPED_TARGET = 90.0  # test accuracy (%) a teacher is meant to reach; below it, every description says so


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


@dataclass(frozen=True)
class AveragedTeacherRecipe(TeacherRecipe):
    """A recipe whose result is an exponential moving average of the weights (decay per step),
    buffers (batch-norm statistics) included. A subclass, so the plain recipes' dicts (in the shipped card's
    stages, and in the stages' checkpoint keys) have no ``ema_decay``."""

    ema_decay: float = 0.999


def teacher_cache_key(recipe: TeacherRecipe, train: Cifar10) -> str:
    """The cache folder's name of a teacher trained by ``recipe`` on ``train``."""
    return stable_hash({"recipe": dataclasses.asdict(recipe), "train": train.indices.tolist(), "src": train.source})


def recipe_from_config(config: Config) -> TeacherRecipe:
    """The paper's recipe with the profile's epochs, batch size, rate, weight decay and warm-up."""
    return TeacherRecipe(epochs=config.teacher_epochs, batch_size=config.teacher_batch_size, lr=config.teacher_lr,
                         weight_decay=config.teacher_weight_decay, warmup=config.teacher_warmup,
                         padding=config.crop_padding, seed=config.subset_seed)


def checkpoint_meta(recipe: TeacherRecipe, train: Cifar10) -> dict:
    """What a teacher's checkpoint must hold to be resumed by ``recipe`` on ``train`` (its recipe and data)."""
    return {"recipe": dataclasses.asdict(recipe), "n_train": len(train), "source": train.source}


def teacher_start(recipe: TeacherRecipe, train: Cifar10, init: dict | None = None) -> tuple[nn.Module, dict]:
    """``(initial model, checkpoint meta)`` of a run of ``recipe`` on ``train``: fresh weights from the recipe's
    seed, or ``init`` (a state dict; the meta then names its hash, so a checkpoint resumes only the same start)."""
    torch.manual_seed(recipe.seed)  # the initial weights are part of the run
    model = models.teacher()
    meta = checkpoint_meta(recipe, train)
    if init is not None:
        model.load_state_dict(init)
        meta["init_sha256"] = model_sha256(model)
    return model, meta


def teacher_optimizer(model: nn.Module, recipe: TeacherRecipe, lr: float | torch.Tensor | None = None,
                      fused: bool | None = None) -> torch.optim.SGD:
    """The recipe's SGD with Nesterov momentum (``lr``: the recipe's peak, or a tensor the caller sets each step)."""
    return torch.optim.SGD(model.parameters(), lr=recipe.lr if lr is None else lr, momentum=recipe.momentum,
                           nesterov=True, weight_decay=recipe.weight_decay, fused=fused)


def resized(x: torch.Tensor, size: int) -> torch.Tensor:
    """A batch (N, C, H, W) at ``size`` x ``size`` (bilinear, antialiased), as the recipe's epoch asks; unchanged
    at its own size."""
    if size == x.shape[-1]:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def train_teacher(recipe: TeacherRecipe, train: Cifar10, test: Cifar10, device: torch.device,
                  checkpoint: Path | None = None, progress: bool = True, init: dict | None = None,
                  **loop_options) -> TrainResult:
    """Train a teacher with ``recipe`` (SGD Nesterov, warm-up-cosine, crop + flip), from fresh weights
    or, given ``init`` (a state dict, e.g. an earlier stage's result), from those."""
    model, meta = teacher_start(recipe, train, init)
    optimizer = teacher_optimizer(model, recipe)
    steps = recipe.epochs * -(-len(train) // recipe.batch_size)

    def batch_fn(images, positions, generator, epoch):
        return resized(random_crop_flip(to_float(images), padding=recipe.padding, generator=generator),
                       recipe.size_at(epoch)), ()

    def loss_fn(net, x, y, extras):
        logits = net(x)
        return F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing), logits

    if isinstance(recipe, AveragedTeacherRecipe):
        loop_options["average"] = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay),
                                                use_buffers=True)
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
    log: tuple = ()  # the card's per-epoch rows (epoch, loss, train_acc, test_acc, seconds, images_per_s)
    trained_on: str = ""
    commit: str = ""
    stages: tuple = ()  # the card's recipe of each stage, for a teacher trained in stages

    @property
    def below_target(self) -> bool:
        """Whether the teacher (shipped or trained) falls short of :data:`SHIPPED_TARGET`."""
        return self.test_accuracy < SHIPPED_TARGET

    def describe(self) -> str:
        """One line for beside results: origin, accuracy, status (and a shortfall of the shipped target), hash."""
        short = f", below the {SHIPPED_TARGET:.0f}% target" if self.below_target else ""
        return (f"teacher: {self.origin}, {self.test_accuracy:.2f}% test accuracy ({self.status}{short}), "
                f"sha256 {self.sha256[:12]}")

    def training_provenance(self) -> str:
        """Where the teacher's training log comes from: its card's device, commit, data source and recipe."""
        epochs = sum(stage["epochs"] for stage in self.stages)
        return (f"{self.origin} teacher's training log ({len(self.log)} of {epochs} epochs, {self.status}) — "
                f"trained on {self.trained_on or 'unknown device'} · commit {self.commit or 'unknown'} · "
                f"data {self.data_source} · sha256 {self.sha256[:12]}")


def ship_teacher(result: TrainResult, recipe: TeacherRecipe, data_source: str, device: torch.device,
                 weights: Path = SHIPPED_WEIGHTS, history: tuple = (), planned: tuple | None = None) -> dict:
    """Write the weights (float32 state dict) and their card (SHA-256, recipes, log) atomically.

    ``history`` holds the ``(recipe, log)`` of earlier stages this result continued from; the card's
    log joins them (epochs numbered on, each row with its stage and image size). Its ``status`` is
    ``complete`` when every epoch of the ``planned`` stages (default: those trained) is done, else
    ``provisional: epoch k of n`` (shipped before the end of its schedule; the book says so).
    """
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    atomic_torch_save(weights, state)
    stages = [*history, (recipe, result.log)]
    log, done = [], 0
    for stage, (stage_recipe, stage_log) in enumerate(stages):
        for row in stage_log:
            within = row["epoch"] - 1
            log.append({**row, "epoch": done + row["epoch"], "stage": stage + 1,
                        "image_size": stage_recipe.size_at(within)})
        done += len(stage_log)
    total = sum(r.epochs for r in (planned if planned is not None else [r for r, _ in stages]))
    status = "complete" if done >= total else f"provisional: epoch {done} of {total}"
    card = {"sha256": sha256_file(weights), "parameters": models.count_parameters(result.model),
            "test_accuracy": result.final_accuracy, "data_source": data_source, "recipe": dataclasses.asdict(recipe),
            "stages": [dataclasses.asdict(r) for r, _ in stages], "status": status,
            "trained_on": device_name(device), "commit": git_commit(), "log": log}
    atomic_write_json(weights.with_suffix(".json"), card)
    return card


# what :func:`ship_teacher` writes into every card (the shipped one, trained ones, the paper teacher's)
_CARD_FIELDS = ("sha256", "test_accuracy", "data_source", "recipe", "stages", "status", "log", "trained_on", "commit")


def verify_weights(weights: Path, card_path: Path | None = None) -> dict:
    """The card (dict) of ``weights`` after checking the file's SHA-256 against the card's.

    Raises :class:`WeightsError` naming the file when the card is missing, does not parse or lacks
    its fields, and naming the file and both hashes when the SHA-256 does not match.
    """
    weights = Path(weights)
    card_path = Path(card_path) if card_path is not None else weights.with_suffix(".json")
    try:
        card = json.loads(card_path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"{weights} has no card: {card_path} is missing (restore both files)") from None
    except (OSError, ValueError) as error:
        raise WeightsError(f"the card {card_path} of {weights} is damaged ({type(error).__name__}: {error}); "
                           "restore it (e.g. git checkout -- <file>)") from None
    missing = [k for k in _CARD_FIELDS if not isinstance(card, dict) or k not in card]
    if missing:
        raise WeightsError(f"the card {card_path} of {weights} is damaged: it lacks {', '.join(missing)}")
    actual = sha256_file(weights)
    if actual != card["sha256"]:
        raise WeightsError(f"{weights} does not verify: its SHA-256 is {actual}, its card {card_path.name} says "
                           f"{card['sha256']}. Restore the file (e.g. git checkout -- {weights.name}), or train a "
                           "teacher on purpose with teacher_source=train")
    return card


def load_shipped_teacher(weights: Path = SHIPPED_WEIGHTS) -> tuple[nn.Module, dict] | None:
    """The shipped teacher in eval mode and its card; None if the weights file is absent.

    Weights that are present but do not verify (or whose card is damaged) raise :class:`WeightsError`
    (:func:`verify_weights`): a damaged teacher is never used, nor silently replaced.
    """
    weights = Path(weights)
    if not weights.is_file():
        return None
    card = verify_weights(weights)
    model = models.teacher()
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as error:  # verified bytes that are not a teacher's state dict
        raise WeightsError(f"{weights} verifies but is not a teacher's weights ({type(error).__name__})") from None
    return model.eval(), card


def preferred_weights(config: Config, paper: Path = PAPER_WEIGHTS, cpu: Path = SHIPPED_WEIGHTS) -> Path:
    """The shipped weights ``config`` uses: the paper teacher where the profile's plan says so (``paper``; when
    installed), and on every other profile where its accuracy, measured on the same data source, beats the CPU
    teacher's."""
    if not (paper.is_file() and paper.with_suffix(".json").is_file()):
        return cpu
    if config.plan("paper_teacher"):
        return paper
    try:
        ours, theirs = read_json(paper.with_suffix(".json")), read_json(cpu.with_suffix(".json"))
    except (OSError, ValueError):
        return cpu
    same_data = ours.get("data_source") == theirs.get("data_source")
    return paper if same_data and ours.get("test_accuracy", 0) > theirs.get("test_accuracy", 0) else cpu


def get_teacher(config: Config, progress: bool = True) -> tuple[nn.Module, TeacherInfo]:
    """The teacher the profile uses, on the profile's device, in eval mode, with its provenance."""
    device = resolve_device(config.device)
    if config.teacher_source == "shipped":
        # the GPU-trained paper teacher where installed, better
        weights = preferred_weights(config, cpu=SHIPPED_WEIGHTS)
        shipped = load_shipped_teacher(weights)
        if shipped is None:
            raise WeightsError(f"the shipped teacher {weights} is absent; restore it, or train one on "
                               "purpose with teacher_source=train")
        return _on_device("shipped" if weights == SHIPPED_WEIGHTS else "paper", *shipped, device)
    recipe = recipe_from_config(config)
    train, test = load_splits(config)
    folder = Path(config.cache_dir) / "teachers" / teacher_cache_key(recipe, train)
    final = folder / "teacher.pt"
    cached = _cached_teacher(final)
    if cached is None:
        result = train_teacher(recipe, train, test, device, checkpoint=folder / "checkpoint.pt", progress=progress)
        ship_teacher(result, recipe, train.source, device, weights=final)
        cached = load_shipped_teacher(final)
    return _on_device("trained", *cached, device)


def _cached_teacher(final: Path) -> tuple[nn.Module, dict] | None:
    """A trained teacher from the cache; one that does not verify is moved aside (and trained again)."""
    try:
        return load_shipped_teacher(final)
    except WeightsError as error:
        for path in (final, final.with_suffix(".json")):
            if path.is_file():
                move_aside(path, str(error))
        return None


def _on_device(origin: str, model: nn.Module, card: dict, device: torch.device) -> tuple[nn.Module, TeacherInfo]:
    """A verified teacher and its card -> (model on ``device``, channels-last, eval mode; its TeacherInfo)."""
    info = TeacherInfo(origin, card["test_accuracy"], card["sha256"], card["data_source"], card["recipe"],
                       card["status"], tuple(card["log"]), card["trained_on"], card["commit"], tuple(card["stages"]))
    return model.to(device=device, memory_format=torch.channels_last).eval(), info


