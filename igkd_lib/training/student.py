"""The student trainer for the four methods: baseline, KD, IG overlay, and KD + IG overlay.

The student (the teacher's ``features[:-cut]``) is trained with Adam at a constant rate (the paper).
Each batch is cropped, flipped and overlaid with its IG maps on the training device
(:func:`igkd_lib.data.augment.draws_batch`); with ``alpha > 0`` the teacher's logits are computed on
exactly that batch ("online"), or on the same crops and flips without the overlay ("online_clean": the
student is taught on an overlaid image what the teacher says of the plain one), or once on the clean
training images ("cached": cheaper, but a different signal, since the teacher never sees the crop, the
flip or the overlay the student sees), or as the official code did ("official":
:func:`igkd_lib.training.faults.official_teacher_logits`, a control).
Every precomputed teacher target comes from one function, :func:`teacher_logit_table`, shared by
the single-run and the wide trainer (:mod:`igkd_lib.training.wide`). Each epoch's randomness is drawn ahead
(:func:`igkd_lib.data.augment.epoch_draws`; the overlay from its own generator, so one seed gives every
method the same shuffles, crops and flips). See chapter 4 ("Distillation").
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from igkd_lib import models
from igkd_lib.config import METHODS, Config, group_fields
from igkd_lib.data.augment import draws_batch, epoch_draws, overlay_generator
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.provenance import resolve_device
from igkd_lib.training.batchnorm import recalibrate
from igkd_lib.training.distill import kd_loss
from igkd_lib.training.loop import TrainResult, autocast, predict_logits, prepare_model, train_loop

__all__ = ["METHODS", "method_config", "map_source_rows", "batch_and_loss", "train_student", "teacher_logit_table",
           "student_draw_fn", "uses_maps", "teacher_sees_clean", "check_maps"]

_METHOD_OVERRIDES = {"baseline": dict(alpha=0.0, p=0.0), "kd": dict(p=0.0), "ig": dict(alpha=0.0), "kd_ig": {}}
# Fields that do not change a run's numbers (left out of the checkpoint's identity).
_NOT_IN_META = group_fields("runtime")


def method_config(config: Config, method: str) -> Config:
    """The config of one method: baseline (alpha=0, p=0), kd (p=0), ig (alpha=0), kd_ig (unchanged)."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not allowed; allowed: {', '.join(METHODS)}")
    overrides = _METHOD_OVERRIDES[method]
    return config.replace(**overrides) if overrides else config


def map_source_rows(n: int, shuffle: bool, seed: int) -> torch.Tensor:
    """Which training row's map each row uses, (n,) int64: itself, or (``shuffle``) another row's.

    The shuffled control is a seeded cyclic derangement (no row keeps its own map when n > 1),
    fixed for the whole run.
    """
    if not shuffle or n < 2:
        return torch.arange(n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    source = torch.empty(n, dtype=torch.int64)
    source[order] = order.roll(-1)
    return source


def uses_maps(config: Config) -> bool:
    """Whether a (method-specific) config overlays maps at all."""
    return config.p > 0 and config.blend > 0


def teacher_sees_clean(config: Config) -> bool:
    """Whether the online teacher's input is the student's batch without the overlay ("online_clean", with maps)."""
    return config.alpha > 0 and config.teacher_logits == "online_clean" and uses_maps(config)


def teacher_logit_table(config: Config, teacher: nn.Module | None, train: Cifar10, device: torch.device,
                        progress: bool = False) -> torch.Tensor | None:
    """The precomputed teacher targets (N_train, classes) on ``device``, indexed by training position,
    or None where the target is computed online on the student's batch, with or without its overlay
    (``"online"``, ``"online_clean"``), or there is no KD.

    ``"cached"``: the teacher's logits on the clean training images; ``"official"``: the official code's
    fault (:func:`igkd_lib.training.faults.official_teacher_logits`).
    """
    if config.alpha == 0 or config.teacher_logits in ("online", "online_clean"):
        return None
    if config.teacher_logits == "official":  # the official code's fault, as a control
        from igkd_lib.training.faults import official_teacher_logits

        return official_teacher_logits(teacher, train, config, device, progress).to(device)
    return predict_logits(teacher, train.images, config.eval_batch_size, device, progress).to(device)


def student_draw_fn(config: Config, seed: int, n: int):
    """``draw_fn`` for :func:`igkd_lib.training.loop.train_loop`: the epoch's draws of
    :func:`igkd_lib.data.augment.epoch_draws`."""
    def draw_fn(generator: torch.Generator, epoch: int) -> dict:
        return epoch_draws(n, config, generator, overlay_generator(seed, epoch))

    return draw_fn


def batch_and_loss(config: Config, teacher: nn.Module | None, maps: torch.Tensor | None, train: Cifar10,
                   device: torch.device, seed: int = 0, progress: bool = False):
    """``(batch_fn, loss_fn)`` for :func:`igkd_lib.training.loop.train_loop` with :func:`student_draw_fn`'s draws,
    for an already method-specific config.

    ``maps`` (N, H, W) aligned with ``train`` rows (row i <-> ``train.indices[i]``) are moved to
    ``device`` once; ``teacher`` (eval mode) is needed only when ``config.alpha > 0``.
    """
    use_maps = uses_maps(config)
    maps_on_device = check_maps(maps, train).to(device) if use_maps else None
    source = map_source_rows(len(train), config.shuffle_maps, seed).to(device) if use_maps else None
    use_teacher = config.alpha > 0
    if use_teacher and teacher is None:
        raise ValueError(f"teacher=None is not allowed when alpha={config.alpha} > 0; allowed: a teacher model")
    if use_teacher:
        teacher = prepare_model(teacher, device).eval()
    table = teacher_logit_table(config, teacher, train, device, progress)
    aligned = config.map_alignment == "aligned"
    clean_teacher = teacher_sees_clean(config)

    def batch_fn(images, positions, draws, epoch):
        batch_maps = maps_on_device[source[positions]] if use_maps else None
        x = draws_batch(images, batch_maps, draws, padding=config.crop_padding, p=config.p, blend=config.blend,
                        aligned=aligned)
        if not use_teacher:
            return x, (None,)
        if table is not None:
            return x, (table[positions],)
        seen = draws_batch(images, None, draws, padding=config.crop_padding, p=0.0, blend=0.0) if clean_teacher else x
        with torch.no_grad(), autocast(device):
            return x, (teacher(seen.contiguous(memory_format=torch.channels_last)).float(),)

    def loss_fn(model, x, y, extras):
        logits = model(x)
        return kd_loss(logits, extras[0], y, temperature=config.temperature, alpha=config.alpha), logits

    return batch_fn, loss_fn


def train_student(config: Config, method: str, seed: int, *, teacher: nn.Module | None, maps: torch.Tensor | None,
                  train: Cifar10, test: Cifar10, checkpoint: Path | None = None, progress: bool = True,
                  **loop_options) -> TrainResult:
    """Train ``models.student(config.student_cut)`` with ``method`` and ``seed``; see :func:`batch_and_loss`.

    Adam at a constant ``config.student_lr`` for ``config.student_epochs``; a checkpoint each epoch
    (resumed when its config matches). Log rows: epoch, loss, train_acc, test_acc, seconds, images_per_s.
    ``loop_options`` go to :func:`igkd_lib.training.loop.train_loop` (e.g. ``stop_after``, ``per_step_sync``).
    The result's ``info`` records the compile choice that ran and the precision.
    """
    config = method_config(config, method)
    device = resolve_device(config.device)
    torch.manual_seed(seed)  # the student's initial weights
    model = models.student(config.student_cut, dropout=config.student_dropout,
                           normalise=config.student_normalise)
    batch_fn, loss_fn = batch_and_loss(config, teacher, maps, train, device, seed, progress)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.student_lr)
    before_eval = (lambda m: recalibrate(m, train.images)) if config.bn_recalibrate else None
    meta = {"method": method, "seed": seed, "n_train": len(train), "source": train.source,
            "config": {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_META}}
    return train_loop(model, optimizer, lambda step: config.student_lr, train, test,
                      epochs=config.student_epochs, batch_size=config.student_batch_size, seed=seed, device=device,
                      batch_fn=batch_fn, loss_fn=loss_fn, checkpoint=checkpoint, eval_batch_size=config.eval_batch_size,
                      desc=f"student {method} seed {seed}", progress=progress, checkpoint_meta=meta,
                      draw_fn=student_draw_fn(config, seed, len(train)), compile_choice=config.train_compile,
                      before_eval=before_eval, **loop_options)


def check_maps(maps: torch.Tensor | None, train: Cifar10) -> torch.Tensor:
    """``maps`` if its shape is (N_train, H, W) or (N_train, 1, H, W), else a ValueError."""
    expected = (len(train),) + tuple(train.images.shape[-2:])
    if maps is None or tuple(maps.shape) not in (expected, (expected[0], 1) + expected[1:]):
        got = None if maps is None else tuple(maps.shape)
        raise ValueError(f"maps of shape {got} are not allowed when p > 0; allowed: a tensor of shape {expected} "
                         "aligned with the training rows")
    return maps
