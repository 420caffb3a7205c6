"""``python -m igkd_lib bench campaign``: students·images/s of the student trainers, side by side in one run.

- ``single, per-step sync``: the single-run trainer as it was (each step uploads its draws and reads
  the loss and the correct count: host synchronisations in every step; same numbers),
- ``single, sync-free``: :func:`igkd_lib.training.student.train_student` today (draws uploaded once per epoch,
  sums read once per epoch),
- ``wide N=k grouped`` / ``serial`` / ``member``: :func:`igkd_lib.training.wide.train_group` with k members in
  each layout of :data:`igkd_lib.training.wide_model.LAYOUTS` (N = 1, 2, 4 on CPU; 1, 2, 4, 8, 16 on CUDA, where
  the serial layout, N ordinary passes in a row, is measured up to N = 4 only, and the member-major layout at
  N = 8, 16, 32: :data:`MEMBER_SIZES_ON_CUDA`).

Every design trains kd_ig (online teacher, overlay: the most work per image) for one epoch of
``steps`` batches of real CIFAR-10 images with random maps and a fresh teacher (throughput only), after
one warm-up epoch; each design is timed as its whole training call (set-up, the epoch, BatchNorm
recalibration where the profile asks for it, evaluation of 200 test images), the same work per student.
:mod:`igkd_lib.bench.pointwise` adds the kernel choice for the 1x1 convolutions. The ratios come last.
- ``graph N=k``: the graph engine (:func:`igkd_lib.training.graph_step.train_graph_group`: the teacher's logits
  from a table filled ahead of the steps, the whole step one CUDA graph on CUDA) with k members, in the
  wide layout the device uses; its warm-up call fills the teacher table (kept in the cache), so the timed
  call reads it: the steady state of a run whose table is full.

Targets: wide >= 0.9x single on CPU (in the layout the trainer uses there,
:func:`igkd_lib.training.wide_model.default_layout`); on a GPU, the best wide N >= 5x the per-step-sync single run.
:func:`engine_rows` sets today's design (wide grouped with CUDA-graph capture on a GPU; on a CPU the
wide trainer as it runs there, eager) and the graph engine, in the device's layout and member-major, side by side
at one N, each timed on its second epoch (the first pays for compilation, capture and the table); the target on a
GPU is >= 60,000 kd_ig students·images/s for the graph engine. Last, the teacher's training in its two engines
(:mod:`igkd_lib.bench.teacher_engines`; target on a GPU: the graph engine at >= 40,000 images/s).
"""
from __future__ import annotations

import torch

from igkd_lib import models
from igkd_lib.bench import teacher_engines
from igkd_lib.config import Config
from igkd_lib.console import print_table
from igkd_lib.data.cifar10 import load_splits
from igkd_lib.provenance import device_name, resolve_device
from igkd_lib.timing import Stopwatch
from igkd_lib.training.graph_step import train_graph_group
from igkd_lib.training.loop import COMPILE_CHOICES
from igkd_lib.training.student import train_student
from igkd_lib.training.wide import Member, train_group
from igkd_lib.training.wide_model import LAYOUTS, default_layout

__all__ = ["run", "single_rate", "cli", "group_sizes", "ratio_lines", "compile_rows", "engine_rows", "engine_lines",
           "SERIAL_MAX_ON_CUDA", "MEMBER_SIZES_ON_CUDA", "ENGINE_DESIGNS", "TODAY", "GRAPH", "GRAPH_MEMBER"]

SERIAL_MAX_ON_CUDA = 4  # beyond this N the serial layout is N single passes in a row: nothing more to learn
# the member-major layout is a candidate for large groups (its matmuls grow with N): measured from N = 8 up to 32
MEMBER_SIZES_ON_CUDA = (8, 16, 32)
SINGLES = ("single, per-step sync", "single, sync-free")


def group_sizes(device: torch.device) -> tuple[int, ...]:
    """The wide group sizes measured: (1, 2, 4) on CPU, (1, 2, 4, 8, 16) on CUDA."""
    return (1, 2, 4, 8, 16) if device.type == "cuda" else (1, 2, 4)


def _designs(device: torch.device, sizes, singles: bool, layouts, graph_sizes) -> list[dict]:
    """The designs measured, in order: ``{"design", "students", "layout", "engine"}`` (layout None for the
    singles)."""
    designs = [{"design": name, "students": 1, "layout": None, "engine": "single"} for name in SINGLES] \
        if singles else []
    for layout in layouts or LAYOUTS:
        if layout not in LAYOUTS:
            raise ValueError(f"layouts={layouts!r} is not allowed; allowed: a subset of {', '.join(LAYOUTS)}")
        cuda_sizes = MEMBER_SIZES_ON_CUDA if layout == "member" else group_sizes(device)
        designs += [{"design": f"wide N={k} {layout}", "students": k, "layout": layout, "engine": "wide"}
                    for k in sizes or (cuda_sizes if device.type == "cuda" else group_sizes(device))
                    if layout != "serial" or device.type != "cuda" or k <= SERIAL_MAX_ON_CUDA]
    used = default_layout(device)
    designs += [{"design": f"graph N={k}", "students": k, "layout": used, "engine": "graph"}
                for k in (sizes or group_sizes(device) if graph_sizes is None else graph_sizes)]
    return designs


def _seconds(design: dict, config: Config, data: tuple) -> float:
    """Wall time of one whole training call (model set-up, the epoch, recalibration, evaluation)."""
    teacher, maps, train, test = data
    watch = Stopwatch()
    if design["layout"] is not None:
        wide = config.replace(wide_layout=design["layout"])
        members = [Member(wide, "kd_ig", seed) for seed in range(design["students"])]
        trainer = train_graph_group if design["engine"] == "graph" else train_group
        trainer(members, teacher=teacher, maps=maps, train=train, test=test, progress=False)
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


def single_rate(config: Config, steps: int = 4) -> float:
    """Images/s of one kd_ig student trained as a chapter trains it (``single, sync-free``) on the config's device,
    over ``steps`` batches after a warm-up call: what a missing run would cost here (:mod:`igkd_lib.book.coverage`)."""
    config, n_images, data = _bench_data(config, steps, epochs=1)
    design = {"design": SINGLES[1], "students": 1, "layout": None, "engine": "single"}
    _seconds(design, config, data)
    return n_images / _seconds(design, config, data)


def run(config: Config, steps: int | None = None, sizes: tuple[int, ...] | None = None,
        singles: bool = True, layouts: tuple[str, ...] | None = None,
        graph_sizes: tuple[int, ...] | None = None) -> list[dict]:
    """One row per design: students, layout, engine, seconds, images/s per student and students·images/s.

    ``sizes``: the wide group sizes (default :func:`group_sizes`); ``layouts``: the wide layouts (default
    all); ``graph_sizes``: the graph engine's (default: ``sizes``; ``()``: none); ``singles=False`` leaves
    out the two single-run designs. Plain dicts (no pandas: the GPU window calls this).
    """
    device = resolve_device(config.device)
    designs = _designs(device, sizes, singles, layouts, graph_sizes)
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


TODAY, GRAPH, GRAPH_MEMBER = "today's design", "graph engine", "graph engine, member-major"
ENGINE_DESIGNS = (TODAY, GRAPH, GRAPH_MEMBER)


def _engine_settings(design: str, device: torch.device) -> dict:
    """Config overrides of a design of :data:`ENGINE_DESIGNS` on ``device``: today's is the wide trainer,
    grouped with CUDA-graph capture on CUDA (the fastest measured there), as it runs by default elsewhere."""
    cuda = device.type == "cuda"
    layout = "grouped" if cuda else default_layout(device)
    if design == TODAY:
        return {"train_engine": "wide", "wide_layout": layout, "train_compile": "cudagraph" if cuda else "none"}
    if design == GRAPH:
        return {"train_engine": "graph", "wide_layout": layout, "train_compile": "none"}
    if design == GRAPH_MEMBER:
        return {"train_engine": "graph", "wide_layout": "member", "train_compile": "none"}
    raise ValueError(f"design={design!r} is not allowed; allowed: {', '.join(ENGINE_DESIGNS)}")


def engine_rows(config: Config, members: int, steps: int | None = None,
                designs: tuple[str, ...] = ENGINE_DESIGNS) -> list[dict]:
    """Today's design and the graph engine side by side at ``members`` kd_ig runs: two epochs each, the
    second one's students·images/s (the first pays for compilation, graph capture and the teacher table)."""
    device = resolve_device(config.device)
    config, n_images, (teacher, maps, train, test) = _bench_data(
        config, steps or (40 if device.type == "cuda" else 4), epochs=2)
    rows = []
    for design in designs:
        settings = _engine_settings(design, device)
        group = [Member(config.replace(**settings), "kd_ig", seed) for seed in range(members)]
        trainer = train_graph_group if settings["train_engine"] == "graph" else train_group
        watch = Stopwatch()
        results = trainer(group, teacher=teacher, maps=maps, train=train, test=test, progress=False)
        info, second = results[0].info, results[0].log[1]["seconds"]
        rows.append({"design": design, "members": members, "layout": info["layout"], "ran": info["compile"],
                     "first_epoch_s": results[0].log[0]["seconds"], "second_epoch_s": second,
                     "students_images_per_s": members * n_images / second,
                     "teacher_s": info.get("teacher_s"), "teacher_inferences": info.get("teacher_inferences"),
                     "total_s": watch.seconds, "device": device_name(device), "device_type": device.type})
    return rows


def engine_lines(rows: list[dict], today: dict | None = None) -> list[str]:
    """The graph engine against today's design (its row in ``rows``, or ``today``: a row with
    ``students_images_per_s`` and a ``design`` label, e.g. the probe's compile row)."""
    by_design = {row["design"]: row for row in rows}
    today = by_design.get(TODAY, today)
    graphs = [by_design[name] for name in (GRAPH, GRAPH_MEMBER) if name in by_design]
    if not graphs or today is None:
        return []
    lines = []
    for new in graphs:
        target = "  (target on a GPU: >= 60,000 students·images/s)" if new["device_type"] == "cuda" else ""
        lines.append(f"{new['design']} ({new['layout']}) / today's design ({today['design']}, ran "
                     f"{today.get('ran', '?')}) at N={new['members']} = "
                     f"{new['students_images_per_s'] / today['students_images_per_s']:.2f}x "
                     f"({new['students_images_per_s']:.0f} vs {today['students_images_per_s']:.0f} students·images/s)"
                     + target)
    new = graphs[0]
    lines.append(f"graph engine's teacher: {new['teacher_inferences']} images in {new['teacher_s']:.2f} s over both "
                 f"epochs ({new['teacher_inferences'] / max(new['teacher_s'], 1e-9):.0f} teacher images/s: table "
                 "entries and overlaid images, inference in large batches)")
    return lines


def ratio_lines(rows: list[dict]) -> list[str]:
    """The ratios printed under the table (and kept by the GPU window). The CPU target applies to the
    layout the trainer uses on the rows' device (:func:`igkd_lib.training.wide_model.default_layout`)."""
    speed = {row["design"]: row["students_images_per_s"] for row in rows}
    if not rows or SINGLES[0] not in speed or SINGLES[1] not in speed:  # a probe whose singles failed: no ratios
        return []
    old, single = speed[SINGLES[0]], speed[SINGLES[1]]
    used = default_layout(torch.device(rows[0]["device_type"]))
    lines = [f"single sync-free / single per-step sync = {single / old:.2f}x"]
    for row in rows:
        if row.get("engine", "wide") == "wide" and row["layout"] is not None:
            on_cpu = row["device_type"] == "cpu" and row["layout"] == used
            target = "  (target on CPU >= 0.9x: the layout used on CPU)" if on_cpu else ""
            lines.append(f"{row['design']} / single sync-free = {speed[row['design']] / single:.2f}x{target}")
    best = max((row["design"] for row in rows if row.get("engine", "wide") == "wide" and row["layout"] is not None),
               key=speed.get, default=None)
    if best is not None:
        lines.append(f"best wide ({best}) / single per-step sync = {speed[best] / old:.2f}x  (target on a GPU >= 5x)")
    for row in rows:
        same = f"wide N={row['students']} {row['layout']}"
        if row.get("engine") == "graph" and same in speed:
            lines.append(f"{row['design']} / {same} = {speed[row['design']] / speed[same]:.2f}x")
    return lines


def cli(config: Config, args) -> int:
    """Print the table, then the ratios."""
    import pandas as pd

    rows = run(config)
    print_table(pd.DataFrame(rows).fillna({"layout": "-"}))
    print("\n".join(ratio_lines(rows)))
    device = resolve_device(config.device)
    engines = engine_rows(config, 8 if device.type == "cuda" else 2)
    today = ", ".join(f"{k}={v}" for k, v in _engine_settings(TODAY, device).items())
    print(f"\ntoday's design ({today}) and the graph engine, side by side:")
    print_table(pd.DataFrame(engines))
    print("\n".join(engine_lines(engines)))
    teachers = teacher_engines.rows(config)
    print("\nthe teacher's training (the profile's recipe): the epoch loop and the graph engine, side by side:")
    print_table(pd.DataFrame(teachers))
    print("\n".join(teacher_engines.lines(teachers)))
    return 0
