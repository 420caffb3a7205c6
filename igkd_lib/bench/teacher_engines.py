"""``python -m igkd_lib bench teacher``: the teacher's training, the epoch loop and the graph engine side by side.

Each engine of :data:`igkd_lib.config.TEACHER_ENGINES` (``loop``: :func:`igkd_lib.training.teacher.train_teacher`, the
trainer of the paper teacher's first 66 epochs; ``graph``: :func:`igkd_lib.training.teacher_graph.train_teacher_graph`)
trains the profile's teacher recipe (batch 256 at ``paper``) from the same fresh weights for two epochs of
``steps`` batches of real CIFAR-10 images. The figure is the second epoch's images/s (the first pays for cuDNN
autotuning and, on CUDA, the graph capture); an epoch's seconds include evaluating 200 test images, as in
training. Target on a GPU: the graph engine at >= 40,000 images/s (:data:`TEACHER_TARGET`). A GPU window's probe
runs this while the paper teacher is unfinished, and the engine choice follows it (igkd_lib.campaign.engine).
"""
from __future__ import annotations

import dataclasses

import torch

from igkd_lib.config import TEACHER_ENGINES, Config
from igkd_lib.console import print_table
from igkd_lib.data.cifar10 import load_splits
from igkd_lib.provenance import device_name, resolve_device
from igkd_lib.timing import Stopwatch
from igkd_lib.training.teacher import recipe_from_config
from igkd_lib.training.teacher_graph import teacher_trainer

__all__ = ["TEACHER_TARGET", "rows", "lines", "cli"]

TEACHER_TARGET = 40_000  # teacher training images/s the graph engine is meant to reach on a GPU window


def rows(config: Config, steps: int | None = None, engines: tuple[str, ...] = TEACHER_ENGINES) -> list[dict]:
    """One row per engine: the second epoch's seconds and images/s, what ran, the set-up. Plain dicts (the GPU
    window calls this)."""
    device = resolve_device(config.device)
    steps = steps or (30 if device.type == "cuda" else 2)
    recipe = dataclasses.replace(recipe_from_config(config), epochs=2)
    n_images = steps * recipe.batch_size
    train, test = load_splits(config.replace(n_train=max(config.n_train, n_images)))
    train, test = train.subset(torch.arange(n_images)), test.subset(torch.arange(min(len(test), 200)))
    measured = []
    for engine in engines:
        watch = Stopwatch()
        result = teacher_trainer(engine)(recipe, train, test, device, progress=False)
        second = result.log[1]["seconds"]
        measured.append({"engine": engine, "ran": result.info["compile"], "batch_size": recipe.batch_size,
                         "steps": steps, "first_epoch_s": result.log[0]["seconds"], "second_epoch_s": second,
                         "images_per_s": n_images / second, "total_s": watch.seconds, "device": device_name(device),
                         "device_type": device.type, "precision": result.info["precision"]})
    return measured


def lines(measured: list[dict]) -> list[str]:
    """The graph engine against the loop, as a ratio (with the GPU target where the rows ran on CUDA)."""
    by_engine = {row["engine"]: row for row in measured}
    if not {"loop", "graph"} <= set(by_engine):
        return []
    loop, graph = by_engine["loop"], by_engine["graph"]
    target = f"  (target on a GPU: >= {TEACHER_TARGET:,} images/s)" if graph["device_type"] == "cuda" else ""
    return [f"teacher training: graph engine (ran {graph['ran']}) / loop = "
            f"{graph['images_per_s'] / loop['images_per_s']:.2f}x ({graph['images_per_s']:.0f} vs "
            f"{loop['images_per_s']:.0f} images/s, batch {graph['batch_size']}){target}"]


def cli(config: Config, args) -> int:
    """Print the table, then the ratio."""
    import pandas as pd

    measured = rows(config)
    print_table(pd.DataFrame(measured))
    print("\n".join(lines(measured)))
    return 0
