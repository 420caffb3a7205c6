"""The engine settings a GPU probe chose, kept so that every later window trains the same way.

The first window with ``--probe`` measures the wide trainer's layouts and ``train_compile`` choices
(:func:`igkd_lib.campaign.window._probe`); :func:`choose` turns those measurements into config
overrides, the window trains with them, and ingest commits them as ``results/<profile>/engine.json``.
Every later window reads that file (it travels with the checkout) and applies the same overrides, so
a run's key (which covers ``train_compile``) never changes from one window to the next and no run is
trained twice. Only settings that differ from the config's defaults are kept; eager stays the default
and the fallback (a compiled step that fails falls back to eager, and the run records what ran).

A choice records the :func:`candidates` it was made among (the wide layouts, the trainers, the compile choices, the
teacher's engines: measured while the paper teacher is unfinished).
When the code offers others (a new layout, a new trainer), the committed choice is no longer :func:`current`:
the next window probes again and its choice replaces the old one (runs trained before keep their own engine).
"""
from __future__ import annotations

from pathlib import Path

import torch

from igkd_lib.storage import atomic_write_json, read_json
from igkd_lib.training.wide_model import default_layout

__all__ = ["ENGINE_FILE", "COMPILE_MARGIN", "COMPILED_GAIN_BOUND", "compile_needless", "PROBE_LAYOUTS",
           "PROBE_COMPILES", "PROBE_SIZES", "PROBE_STEPS", "candidates", "current", "choose", "check_engine",
           "read_engine", "keep_engine"]

ENGINE_FILE = "engine.json"
# What a GPU window's probe measures (igkd_lib.campaign.window._probe), so what an engine is chosen among. The serial
# layout (N single passes in a row) measured 1,206-2,370 students·images/s on the H200 against the grouped layout's
# 2,022-9,442; torch.compile (inductor) 12,930 against CUDA-graph capture's 16,316 at N = 8, and its compilation was
# the longest part of that 299 s probe (window 20261204T155918Z): neither is measured again.
PROBE_LAYOUTS = ("grouped", "member")
PROBE_COMPILES = ("none", "cudagraph")
PROBE_SIZES = (8, 16, 32)  # the wide group sizes measured (memory is no limit on an H200 at these N)
# batches per measured epoch on a GPU (the benches' default is 40): the probe must fit 60 s, and at N = 16 one epoch of
# 24 batches of 64 is 24,576 student-images, 0.4 s at the 60,000 students·images/s aimed at
PROBE_STEPS = 24
# the most a compiled step has gained over eager on the H200: 16,316 against 11,654 students·images/s, 1.40x, for
# train_compile=cudagraph at N = 8 (window 20261204T155918Z); a bound of 1.5 on what compiling can add
COMPILED_GAIN_BOUND = 1.5
# a compiled step is kept only when it trains at least this much faster than eager in the probe
# (compilation costs start-up time in every window, and a few per cent are within the probe's noise)
COMPILE_MARGIN = 1.05


def candidates() -> list[str]:
    """What a GPU probe chooses among: the wide layouts, trainers, compile choices and group sizes it measures, and
    the teacher's engines."""
    from igkd_lib.config import TEACHER_ENGINES
    from igkd_lib.training.graph_step import ENGINES

    return ([f"layout={name}" for name in PROBE_LAYOUTS] + [f"engine={name}" for name in ENGINES]
            + [f"compile={name}" for name in PROBE_COMPILES] + [f"N={n}" for n in PROBE_SIZES]
            + [f"teacher_engine={name}" for name in TEACHER_ENGINES])


def current(engine: dict | None) -> bool:
    """Whether ``engine`` was chosen among today's :func:`candidates` (False for None and for a choice made before
    choices recorded them)."""
    return engine is not None and engine.get("candidates") == candidates()


def compile_needless(compiles: list[dict], engines: list[dict]) -> str | None:
    """Why a compiled step need not be measured (its compilation is the probe's longest part), or None: the graph
    engine already trains more than :data:`COMPILED_GAIN_BOUND` x :data:`COMPILE_MARGIN` times eager at the same N,
    more than compiling has ever added, so a compiled step could not be chosen over it."""
    eager = [row["students_images_per_s"] for row in compiles
             if row["train_compile"] == "none" and row["ran"] == "none"]
    graphs = [row["students_images_per_s"] for row in engines]
    if not eager or not graphs or max(graphs) < COMPILED_GAIN_BOUND * COMPILE_MARGIN * eager[0]:
        return None
    return (f"the graph engine trains {max(graphs) / eager[0]:.2f}x eager ({max(graphs):.0f} vs {eager[0]:.0f} "
            f"students·images/s), more than {COMPILED_GAIN_BOUND} x {COMPILE_MARGIN}, and compiling has added at most "
            "1.40x here")


def choose(probe: dict, device_type: str, window: str) -> dict:
    """``{"settings": config overrides, "window", "basis": the measured lines, "candidates"}`` from a probe's figures.

    On CUDA the graph engine (``train_engine="graph"``, measured at the wide trainer's best N in
    ``probe["engines"]``, in each layout measured there) is chosen, in place of a compile choice, when its fastest
    layout trains at least :data:`COMPILE_MARGIN` times faster than the fastest ``train_compile`` choice that ran as
    itself there; the graph engine then runs in that layout.
    """
    wide = [row for row in probe["trainers"] if row.get("layout") is not None and row.get("engine", "wide") == "wide"]
    if not wide:  # every wide design failed on the device (probe["failed"] says why): the defaults, for this window
        # only (chosen among no candidates, so never current: the next window probes again)
        return {"settings": {}, "window": window, "basis": ["no wide design measured: the defaults"], "candidates": []}
    best = max(wide, key=lambda row: row["students_images_per_s"])
    settings, basis = {}, [f"fastest wide design: {best['design']} ({best['students_images_per_s']:.0f} "
                           "students·images/s)"]
    if best["layout"] != default_layout(torch.device(device_type)):
        settings["wide_layout"] = best["layout"]
    ran = {row["train_compile"]: row["students_images_per_s"] for row in probe["compile"]
           if row["ran"] == row["train_compile"]}  # a choice that fell back measured eager, not itself
    eager = ran.get("none")
    if eager is not None:
        fastest = max(ran, key=ran.get)
        basis.append(", ".join(f"train_compile={name}: {value:.0f}" for name, value in ran.items()))
        if fastest != "none" and ran[fastest] >= COMPILE_MARGIN * eager:
            settings["train_compile"] = fastest
    graphs = [row for row in probe.get("engines", []) if row["design"].startswith("graph engine")]
    if graphs and ran and device_type == "cuda":  # elsewhere it runs eagerly: nothing to gain
        today, graph = max(ran.values()), max(graphs, key=lambda row: row["students_images_per_s"])
        basis += [f"{row['design']}: {row['students_images_per_s']:.0f} (ran {row['ran']}, {row.get('layout', '?')} "
                  f"layout) at N={row['members']}" for row in graphs]
        if graph["students_images_per_s"] >= COMPILE_MARGIN * today:
            settings.pop("train_compile", None)
            settings["train_engine"] = "graph"
            layout = graph.get("layout") or default_layout(torch.device(device_type))
            settings.pop("wide_layout", None)
            if layout != default_layout(torch.device(device_type)):
                settings["wide_layout"] = layout
    teacher = _teacher_choice(probe.get("teacher", []), device_type)
    if teacher is not None:
        basis.append(teacher[1])
        if teacher[0] != "loop":
            settings["teacher_engine"] = teacher[0]
    basis += [f"{row['what']} not measured: {row['why']}" for row in probe.get("skipped", [])]
    return {"settings": settings, "window": window, "basis": basis, "candidates": candidates()}


def _teacher_choice(rows: list[dict], device_type: str) -> tuple[str, str] | None:
    """``(teacher engine, basis line)`` from the probe's teacher rows (:mod:`igkd_lib.bench.teacher_engines`): the
    graph engine on CUDA where it trains at least :data:`COMPILE_MARGIN` times the loop's images/s; None without
    both rows (an installed teacher is not measured)."""
    by_engine = {row["engine"]: row for row in rows}
    if not {"loop", "graph"} <= set(by_engine):
        return None
    loop, graph = by_engine["loop"]["images_per_s"], by_engine["graph"]["images_per_s"]
    faster = device_type == "cuda" and graph >= COMPILE_MARGIN * loop
    return ("graph" if faster else "loop",
            f"teacher training: graph engine {graph:.0f} (ran {by_engine['graph']['ran']}) vs loop {loop:.0f} images/s")


def check_engine(engine, where: str) -> dict:
    """``engine`` as :func:`choose` makes it, or an error naming ``where`` and the field (it came from elsewhere)."""
    from igkd_lib.config import TEACHER_ENGINES
    from igkd_lib.training.graph_step import ENGINES
    from igkd_lib.training.loop import COMPILE_CHOICES
    from igkd_lib.training.wide_model import LAYOUTS

    allowed = {"wide_layout": LAYOUTS, "train_compile": COMPILE_CHOICES, "train_engine": ENGINES,
               "teacher_engine": TEACHER_ENGINES}
    listed = engine.get("candidates", []) if isinstance(engine, dict) else None
    if not (isinstance(engine, dict) and isinstance(engine.get("settings"), dict)
            and isinstance(engine.get("window"), str) and isinstance(engine.get("basis", []), list)
            and isinstance(listed, list) and all(isinstance(item, str) for item in listed)):
        raise ValueError(f"{where}={engine!r} is not allowed; allowed: {{settings, window, basis, candidates}} as a "
                         "probe chose it")
    for name, value in engine["settings"].items():
        if value not in allowed.get(name, ()):
            raise ValueError(f"{where}.settings.{name}={value!r} is not allowed; allowed: "
                             + "; ".join(f"{k}: {', '.join(v)}" for k, v in allowed.items()))
    return engine


def _path(results_dir: Path | None, profile: str) -> Path | None:
    return None if results_dir is None else Path(results_dir) / profile / ENGINE_FILE


def read_engine(results_dir: Path | None, profile: str) -> dict | None:
    """The committed engine choice of ``profile``, or None before the first probe was ingested."""
    path = _path(results_dir, profile)
    return read_json(path) if path is not None and path.is_file() else None


def keep_engine(results_dir: Path, profile: str, engine: dict) -> str:
    """Commit a window's engine choice unless a :func:`current` one is there already (the first probe's among
    today's candidates stays); a choice made among other candidates is replaced. Says which."""
    kept = read_engine(results_dir, profile)
    if kept is not None and (current(kept) or not current(engine)):
        same = kept["settings"] == engine["settings"]
        return (f"kept the engine of window {kept['window']}"
                + ("" if same else f" (this one chose {engine['settings']})"))
    atomic_write_json(_path(results_dir, profile), engine)
    chosen = f"engine {engine['settings'] or 'defaults'} from window {engine['window']}"
    if kept is None:
        return chosen
    old = kept["settings"] or "defaults"
    return f"{chosen}, in place of window {kept['window']}'s {old} (chosen among other candidates)"
