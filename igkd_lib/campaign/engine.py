"""The engine settings a GPU probe chose, kept so that every later window trains the same way.

The first window with ``--probe`` measures the wide trainer's layouts and ``train_compile`` choices
(:func:`igkd_lib.campaign.window._probe`); :func:`choose` turns those measurements into config
overrides, the window trains with them, and ingest commits them as ``results/<profile>/engine.json``.
Every later window reads that file (it travels with the checkout) and applies the same overrides, so
a run's key (which covers ``train_compile``) never changes from one window to the next and no run is
trained twice. Only settings that differ from the config's defaults are kept; eager stays the default
and the fallback (a compiled step that fails falls back to eager, and the run records what ran).
"""
from __future__ import annotations

from pathlib import Path

import torch

from igkd_lib.storage import atomic_write_json, read_json
from igkd_lib.training.wide_model import default_layout

__all__ = ["ENGINE_FILE", "COMPILE_MARGIN", "choose", "check_engine", "read_engine", "keep_engine"]

ENGINE_FILE = "engine.json"
# a compiled step is kept only when it trains at least this much faster than eager in the probe
# (compilation costs start-up time in every window, and a few per cent are within the probe's noise)
COMPILE_MARGIN = 1.05


def choose(probe: dict, device_type: str, window: str) -> dict:
    """``{"settings": config overrides, "window", "basis": the measured lines}`` from a probe's figures.

    On CUDA the graph engine (``train_engine="graph"``, measured at the wide trainer's best N in
    ``probe["engines"]``) is chosen, in place of a compile choice, when it trains at least
    :data:`COMPILE_MARGIN` times faster than the fastest ``train_compile`` choice that ran as itself there.
    """
    wide = [row for row in probe["trainers"] if row.get("layout") is not None and row.get("engine", "wide") == "wide"]
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
    graph = next((row for row in probe.get("engines", []) if row["design"] == "graph engine"), None)
    if graph is not None and ran and device_type == "cuda":  # elsewhere it runs eagerly: nothing to gain
        today = max(ran.values())
        basis.append(f"graph engine: {graph['students_images_per_s']:.0f} (ran {graph['ran']}) at N={graph['members']}")
        if graph["students_images_per_s"] >= COMPILE_MARGIN * today:
            settings.pop("train_compile", None)
            settings["train_engine"] = "graph"
    return {"settings": settings, "window": window, "basis": basis}


def check_engine(engine, where: str) -> dict:
    """``engine`` as :func:`choose` makes it, or an error naming ``where`` and the field (it came from elsewhere)."""
    from igkd_lib.training.loop import COMPILE_CHOICES
    from igkd_lib.training.wide_model import LAYOUTS

    allowed = {"wide_layout": LAYOUTS, "train_compile": COMPILE_CHOICES}
    if not (isinstance(engine, dict) and isinstance(engine.get("settings"), dict)
            and isinstance(engine.get("window"), str) and isinstance(engine.get("basis", []), list)):
        raise ValueError(f"{where}={engine!r} is not allowed; allowed: {{settings, window, basis}} as a probe chose it")
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
    """Commit a window's engine choice unless one is there already (the first probe's stays); says which."""
    kept = read_engine(results_dir, profile)
    if kept is not None:
        same = kept["settings"] == engine["settings"]
        return (f"kept the engine of window {kept['window']}"
                + ("" if same else f" (this one chose {engine['settings']})"))
    atomic_write_json(_path(results_dir, profile), engine)
    return f"engine {engine['settings'] or 'defaults'} from window {engine['window']}"
