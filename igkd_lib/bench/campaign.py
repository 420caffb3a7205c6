"""``python -m igkd_lib bench campaign``: students·images/s of the student trainers, side by side in one run.

- ``single, per-step sync``: the single-run trainer as it was (each step uploads its draws and reads
  the loss and the correct count: host synchronisations in every step; same numbers),
- ``single, sync-free``: :func:`igkd_lib.training.student.train_student` today (draws uploaded once per epoch,
  sums read once per epoch),
- ``wide N=k grouped`` / ``wide N=k serial``: :func:`igkd_lib.training.wide.train_group` with k members in each
  layout of :data:`igkd_lib.training.wide_model.LAYOUTS` (N = 1, 2, 4 on CPU; 1, 2, 4, 8, 16 on CUDA, where the
  serial layout, N ordinary passes in a row, is measured up to N = 4 only).

Every design trains kd_ig (online teacher, overlay: the most work per image) for one epoch of
``steps`` batches of real CIFAR-10 images with random maps and a fresh teacher (throughput only), after
one warm-up epoch; each design is timed as its whole training call (set-up, the epoch, BatchNorm
recalibration where the profile asks for it, evaluation of 200 test images), the same work per student.
:mod:`igkd_lib.bench.pointwise` adds the kernel choice for the 1x1 convolutions. The ratios come last.
Targets: wide >= 0.9x single on CPU (in the layout the trainer uses there,
:func:`igkd_lib.training.wide_model.default_layout`); on a GPU, the best wide N >= 5x the per-step-sync single run.
"""
from __future__ import annotations

import torch

from igkd_lib import models
from igkd_lib.config import Config
from igkd_lib.console import print_table
from igkd_lib.data.cifar10 import load_splits
from igkd_lib.provenance import device_name, resolve_device
from igkd_lib.timing import Stopwatch
from igkd_lib.training.loop import COMPILE_CHOICES
from igkd_lib.training.student import train_student
from igkd_lib.training.wide import Member, train_group
from igkd_lib.training.wide_model import LAYOUTS, default_layout

__all__ = ["run", "cli", "group_sizes", "ratio_lines", "compile_rows", "SERIAL_MAX_ON_CUDA"]

SERIAL_MAX_ON_CUDA = 4  # beyond this N the serial layout is N single passes in a row: nothing more to learn
SINGLES = ("single, per-step sync", "single, sync-free")


def group_sizes(device: torch.device) -> tuple[int, ...]:
    """The wide group sizes measured: (1, 2, 4) on CPU, (1, 2, 4, 8, 16) on CUDA."""
    return (1, 2, 4, 8, 16) if device.type == "cuda" else (1, 2, 4)


def _designs(device: torch.device, sizes, singles: bool, layouts) -> list[dict]:
    """The designs measured, in order: ``{"design", "students", "layout"}`` (layout None for the singles)."""
    designs = [{"design": name, "students": 1, "layout": None} for name in SINGLES] if singles else []
    for layout in layouts or LAYOUTS:
        if layout not in LAYOUTS:
            raise ValueError(f"layouts={layouts!r} is not allowed; allowed: a subset of {', '.join(LAYOUTS)}")
        designs += [{"design": f"wide N={k} {layout}", "students": k, "layout": layout}
                    for k in sizes or group_sizes(device)
                    if layout == "grouped" or device.type != "cuda" or k <= SERIAL_MAX_ON_CUDA]
    return designs


def _seconds(design: dict, config: Config, data: tuple) -> float:
    """Wall time of one whole training call (model set-up, the epoch, recalibration, evaluation)."""
    teacher, maps, train, test = data
    watch = Stopwatch()
    if design["layout"] is not None:
        wide = config.replace(wide_layout=design["layout"])
        members = [Member(wide, "kd_ig", seed) for seed in range(design["students"])]
        train_group(members, teacher=teacher, maps=maps, train=train, test=test, progress=False)
    else:
        train_student(config, "kd_ig", 0, teacher=teacher, maps=maps, train=train, test=test, progress=False,
                      per_step_sync=design["design"] == SINGLES[0])
    return watch.seconds


def _bench_data(config: Config, steps: int, epochs: int) -> tuple[Config, int, tuple]:
    """``(config for epochs of steps batches, images, (fresh teacher, random maps, train, 200 test images))``:
    real CIFAR-10 images, maps and teacher only for throughput."""
    n_images = steps * config.student_batch_size
    config = config.replace(student_epochs=epochs, n_train=max(config.n_train, n_images))
    train, test = load_splits(config)
    train, test = train.subset(torch.arange(n_images)), test.subset(torch.arange(min(len(test), 200)))
    maps = torch.rand(len(train), 32, 32, generator=torch.Generator().manual_seed(0)) ** 3
    torch.manual_seed(0)
    return config, n_images, (models.teacher().eval(), maps, train, test)


def run(config: Config, steps: int | None = None, sizes: tuple[int, ...] | None = None,
        singles: bool = True, layouts: tuple[str, ...] | None = None) -> list[dict]:
    """One row per design: students, layout, seconds, images/s per student and students·images/s.

    ``sizes``: the wide group sizes (default :func:`group_sizes`); ``layouts``: the wide layouts (default
    all); ``singles=False`` leaves out the two single-run designs. Plain dicts (no pandas: the GPU
    window calls this).
    """
    device = resolve_device(config.device)
    designs = _designs(device, sizes, singles, layouts)
    config, n_images, data = _bench_data(config, steps or (40 if device.type == "cuda" else 16), epochs=1)
    steps = n_images // config.student_batch_size
    rows = []
    for design in designs:
        _seconds(design, config, data)  # warm-up (allocator, kernels, compilation)
        seconds = _seconds(design, config, data)
        students = design["students"]
        rows.append({**design, "seconds": seconds,
                     "images_per_s": n_images / seconds, "students_images_per_s": students * n_images / seconds,
                     "steps": steps, "batch_size": config.student_batch_size, "device": device_name(device),
                     "device_type": device.type,
                     "compile": config.train_compile})
    return rows


def compile_rows(config: Config, members: int, steps: int | None = None,
                 choices: tuple[str, ...] = COMPILE_CHOICES, layout: str | None = None) -> list[dict]:
    """The wide trainer at ``members`` (in ``layout``, None: the config's) under each ``train_compile``
    choice: two epochs each, the second one's students·images/s (the first pays for compilation), and
    what ran (a failing choice falls back; ``cudagraph`` is plain ``compile`` off CUDA)."""
    device = resolve_device(config.device)
    config, n_images, (teacher, maps, train, test) = _bench_data(
        config, steps or (40 if device.type == "cuda" else 4), epochs=2)
    config = config.replace(wide_layout=layout) if layout is not None else config
    rows = []
    for choice in choices:
        group = [Member(config.replace(train_compile=choice), "kd_ig", seed) for seed in range(members)]
        watch = Stopwatch()
        results = train_group(group, teacher=teacher, maps=maps, train=train, test=test, progress=False)
        second = results[0].log[1]["seconds"]
        rows.append({"train_compile": choice, "ran": results[0].info["compile"], "members": members,
                     "layout": results[0].info["layout"],
                     "first_epoch_s": results[0].log[0]["seconds"], "second_epoch_s": second,
                     "students_images_per_s": members * n_images / second,
                     "total_s": watch.seconds, "device": device_name(device)})
    return rows


def ratio_lines(rows: list[dict]) -> list[str]:
    """The ratios printed under the table (and kept by the GPU window). The CPU target applies to the
    layout the trainer uses on the rows' device (:func:`igkd_lib.training.wide_model.default_layout`)."""
    speed = {row["design"]: row["students_images_per_s"] for row in rows}
    old, single = speed[SINGLES[0]], speed[SINGLES[1]]
    used = default_layout(torch.device(rows[0]["device_type"]))
    lines = [f"single sync-free / single per-step sync = {single / old:.2f}x"]
    for row in rows:
        if row["layout"] is not None:
            on_cpu = row["device_type"] == "cpu" and row["layout"] == used
            target = "  (target on CPU >= 0.9x: the layout used on CPU)" if on_cpu else ""
            lines.append(f"{row['design']} / single sync-free = {speed[row['design']] / single:.2f}x{target}")
    best = max((row["design"] for row in rows if row["layout"] is not None), key=speed.get)
    lines.append(f"best wide ({best}) / single per-step sync = {speed[best] / old:.2f}x  (target on a GPU >= 5x)")
    return lines


def cli(config: Config, args) -> int:
    """Print the table, then the ratios."""
    import pandas as pd

    rows = run(config)
    print_table(pd.DataFrame(rows).fillna({"layout": "-"}))
    print("\n".join(ratio_lines(rows)))
    return 0
