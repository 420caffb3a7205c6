"""The official code's faults, as functions this book can replay (it never commits them by default).

The official repository precomputed two per-image tables with a *shuffled* data loader that applied the
*training* augmentation (random crop and flip), stored them in the order the loader yielded the images,
and read them back by dataset index during student training:

- the IG maps: image i got the map of another image (the one the loader yielded i-th), computed on a
  randomly cropped and flipped view of it (:func:`official_pairing`, ``shuffle_maps=True``;
  :func:`augmented_views`, ``map_views="augmented"``); the map was also never cropped or flipped with its
  image (``map_alignment="official"``);
- the teacher's logits: "KD" distilled the soft labels of another, augmented image
  (:func:`official_teacher_logits`, ``teacher_logits="official"``).

:data:`OFFICIAL_CODE` switches all of them on at once (with the official student, which is this book's
default); :func:`fault_ablation_variants` removes one fault at a time (chapter 5, and the GPU campaign).
This book's own KD computes the teacher's logits on exactly the student's batch, overlay included.
"""
from __future__ import annotations

import torch
from torch import nn

from igkd_lib.config import Config
from igkd_lib.data.augment import random_crop_flip
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.validators import check_int

__all__ = ["PRECOMPUTE_SEED", "OFFICIAL_CODE", "FAULTS", "CONTROLS", "loader_order", "official_pairing",
           "augmented_views", "official_teacher_logits", "fault_ablation_variants", "fault_label"]

# The official tables were computed once and reused by every run: one fixed loader order and one
# augmented view per image, whatever the run's seed.
PRECOMPUTE_SEED = 0

# fault -> (the config overrides that commit it, what it is)
FAULTS: dict[str, tuple[dict, str]] = {
    "map order": ({"shuffle_maps": True}, "maps stored in a shuffled loader's order, read back by dataset index"),
    "map views": ({"map_views": "augmented"}, "maps computed on randomly cropped and flipped views"),
    "map alignment": ({"map_alignment": "official"}, "the map is not cropped or flipped with its image"),
    "teacher logits": ({"teacher_logits": "official"},
                       "teacher logits of augmented images stored in a shuffled loader's order, read back by index"),
}
# Chapter 5's controls of the overlay: KD + IG runs with one fault of the stored tables switched on.
CONTROLS: dict[str, dict] = {"shuffled": FAULTS["map order"][0], "official": FAULTS["map alignment"][0],
                             "logits": FAULTS["teacher logits"][0]}
# The official code as a whole: every fault above, and the official student (raw [0, 1] pixels, no
# dropout: this book's default too). Use as ``make_config(profile, **OFFICIAL_CODE)``.
OFFICIAL_CODE: dict = {**{k: v for overrides, _ in FAULTS.values() for k, v in overrides.items()},
                       "student_dropout": 0.0, "student_normalise": False}


def loader_order(n: int, seed: int = PRECOMPUTE_SEED) -> torch.Tensor:
    """The order a shuffled loader yields ``n`` rows in, (n,) int64: the k-th batch position holds row ``order[k]``."""
    check_int("n", n, 1)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def official_pairing(table: torch.Tensor, seed: int = PRECOMPUTE_SEED) -> torch.Tensor:
    """A per-row table (maps (N, H, W) or logits (N, C)) as the official code read it back.

    Stored in a shuffled loader's order and read as if in dataset order: row i of the result is the
    entry of row ``loader_order(N)[i]``, another row's for nearly every i.
    """
    return table[loader_order(len(table), seed)]


def augmented_views(images_uint8: torch.Tensor, config: Config, seed: int = PRECOMPUTE_SEED) -> torch.Tensor:
    """One randomly cropped (zero padding ``config.crop_padding``) and flipped view per image, uint8 (N, 3, H, W)."""
    generator = torch.Generator().manual_seed(seed)
    views = random_crop_flip(images_uint8.float(), padding=config.crop_padding, flip=config.flip, generator=generator)
    return views.round().clamp(0, 255).to(torch.uint8)


def official_teacher_logits(teacher: nn.Module, train: Cifar10, config: Config, device: torch.device,
                            progress: bool = False) -> torch.Tensor:
    """The official code's teacher-logit table, (N_train, 10) float32 on the CPU, read by training row.

    The teacher (eval mode) saw one augmented view of each image in a shuffled loader's order; row i
    holds the logits the loader produced i-th, i.e. those of the view of row ``loader_order(N)[i]``.
    """
    from igkd_lib.training.loop import predict_logits

    views = augmented_views(train.images, config)
    logits = predict_logits(teacher, views, config.eval_batch_size, device, progress)
    return official_pairing(logits)


def fault_ablation_variants(full: bool = True) -> list[dict]:
    """Config overrides for the fault ablation: the official code, then one fault removed at a time, then none.

    Run each with the methods the faults touch (``kd`` and ``kd_ig``; the map faults only matter when
    p > 0). The last entry (no overrides) is this book's method. ``full=False`` keeps the two ends only
    (the small version a CPU affords).
    """
    variants = [dict(OFFICIAL_CODE)]
    for name, (overrides, _) in FAULTS.items():
        fixed = {k: Config.__dataclass_fields__[k].default for k in overrides}
        variants.append({**OFFICIAL_CODE, **fixed})
    variants.append({})
    return variants if full else [variants[0], variants[-1]]


def fault_label(overrides: dict) -> str:
    """A short name of one :func:`fault_ablation_variants` entry: "official code", "... without <fault>",
    "this book"."""
    if not overrides:
        return "this book"
    missing = [name for name, (fault, _) in FAULTS.items() if any(overrides.get(k) != v for k, v in fault.items())]
    return "official code" + (f" without the {', '.join(missing)} fault" if missing else "")
