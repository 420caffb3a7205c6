"""The experiment runner: methods x seeds (x config variants), each finished run cached, one tidy table.

``run_one`` trains one student and caches its row and per-epoch log in
``{cache_dir}/runs/<key>.json``; the key covers every config field that changes the run (after the
method's own settings, and dropping knobs the method does not use), the seed, the teacher's SHA-256
and the data indices. Re-executing a chapter therefore skips every run already done, and chapters
share runs whose configs coincide. A run's JSON carries a SHA-256 of its content
(:func:`igkd_lib.storage.write_checked_json`): the file is small and is the only record of a run that
took minutes to hours, and a flipped digit in an accuracy would otherwise be read as a result; one
that does not verify is moved aside and the run trained again. See chapters 4 and 5.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from igkd_lib.config import PLANS, Config, group_fields
from igkd_lib.data.cifar10 import Cifar10, load_splits
from igkd_lib.provenance import device_name, git_commit, resolve_device
from igkd_lib.storage import atomic_torch_save, read_checked_json, stable_hash, write_checked_json
from igkd_lib.timing import Stopwatch
from igkd_lib.training import student as _student
from igkd_lib.training.faults import CONTROLS
from igkd_lib.training.loop import interactive, precision_name
from igkd_lib.validators import check_int

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ablation_seeds", "run_one", "run_grid", "learning_curves", "run_key", "variant_label",
           "ablation_variants", "ABLATION_GRIDS", "RUN_VERSION", "clear_memo", "overlay_results", "run_files",
           "rows_with_logs", "without_logs", "TRAINED_HERE", "RUN_CACHE", "LOCAL_ORIGINS"]

# Bump when a change of the training code makes cached runs stale.
RUN_VERSION = 2  # 2: the overlay draws from its own generator (paired arms); epoch draws made ahead

# What the process-wide memos depend on (igkd_lib.config.FIELD_GROUPS), where they are read from included.
_SPLITS_FIELDS = (*group_fields("data"), "cache_dir", "data_root")
_TEACHER_FIELDS = (*group_fields("teacher", "data"), "device", "cache_dir", "data_root")
# Knobs recorded in every row (the ones chapters vary).
_ROW_KNOBS = ("p", "blend", "temperature", "alpha", "map_alignment", "map_views", "shuffle_maps", "teacher_logits",
              "bn_recalibrate")


# Chapter 5's grids by profile: a view of the profiles' ``ablation`` plans (igkd_lib.config.PLANS).
ABLATION_GRIDS: dict[str, dict] = {name: plans["ablation"] for name, plans in PLANS.items()}

# The columns (and their types) of a run table with no rows, so that summaries and filters work on it unchanged.
_EMPTY_COLUMNS = {"variant": object, "method": object, "seed": int, "final_acc": float, "best_epoch_acc": float,
                  "epochs": int, "data_source": object, "profile": object, "teacher_origin": object,
                  "teacher_acc": float, "run_key": object, "cached": bool, "origin": object}

# Where run_one found a run (its row's ``origin``) when not in the committed results (committed_runs.ORIGIN):
# trained by this call, or read from this machine's run cache. Only these have their weights here.
TRAINED_HERE, RUN_CACHE = "trained here", "run cache"
LOCAL_ORIGINS = (TRAINED_HERE, RUN_CACHE)

_MEMO: dict[str, object] = {}


def clear_memo() -> None:
    """Forget the teacher, maps and data splits held by this process."""
    _MEMO.clear()


def _memo(kind: str, config: Config, names, build):
    key = kind + ":" + stable_hash(config.key_fields(*names))
    if key not in _MEMO:
        _MEMO[key] = build()
    return _MEMO[key]


def _splits(config: Config) -> tuple[Cifar10, Cifar10]:
    return _memo("splits", config, _SPLITS_FIELDS, lambda: load_splits(config))


def _teacher(config: Config, progress: bool):
    from igkd_lib.training.teacher import get_teacher

    return _memo("teacher", config, _TEACHER_FIELDS, lambda: get_teacher(config, progress=progress))


def _maps(config: Config, progress: bool):
    from igkd_lib.attribution.maps import get_maps

    teacher, _ = _teacher(config, progress)
    train, _ = _splits(config)
    names = (*_TEACHER_FIELDS, *group_fields("maps", "maps_arithmetic"))
    return _memo("maps", config, names, lambda: get_maps(config, teacher=teacher, train=train, progress=progress))


def run_key(config: Config, method: str, seed: int, teacher_sha: str, train: Cifar10, test: Cifar10, *,
            trainer: str = "single", device: torch.device | None = None) -> str:
    """The cache key of one run: the fields that matter for ``method`` (after ``method_config``).

    Knobs the method does not use are left out, so runs that coincide are shared between chapters.
    The device type, its precision (:func:`igkd_lib.training.loop.precision_name`) and the ``trainer``
    ("single" or "wide")
    are part of it: a bf16 GPU run and an fp32 CPU run never share a key.
    """
    if trainer not in ("single", "wide"):
        raise ValueError(f"trainer={trainer!r} is not allowed; allowed: single, wide")
    device = device or resolve_device(config.device)
    c = _student.method_config(config, method)
    fields = c.group_key("data", "student", "method")
    if c.alpha > 0:
        fields.update(c.group_key("kd"))
        if c.teacher_logits == "online_clean" and not _student.uses_maps(c):  # no overlay to leave out
            fields["teacher_logits"] = "online"
    if c.p > 0:
        from igkd_lib.attribution.maps import maps_precision

        fields.update(c.group_key("overlay", "maps"), maps_precision=maps_precision(c, device))
    # the method's effect is its knobs: kd_ig with p = 0 is the same run as kd
    fields.update(seed=int(seed), teacher=teacher_sha, version=RUN_VERSION, source=train.source,
                  train=stable_hash(train.indices.tolist()), test=stable_hash(test.indices.tolist()),
                  device_type=device.type, precision=precision_name(device), trainer=trainer)
    return stable_hash(fields)


def _run_path(config: Config, key: str) -> Path:
    return Path(config.cache_dir) / "runs" / f"{key}.json"


def run_files(config: Config, key: str) -> tuple[Path, Path]:
    """A run's row file (``.json``) and its student's final weights (a state dict, ``.weights.pt``)."""
    path = _run_path(config, key)
    return path, path.with_suffix(".weights.pt")


def _load_cached(path: Path, key: str) -> dict | None:
    stored = read_checked_json(path)
    ok = isinstance(stored, dict) and stored.get("key") == key and isinstance(stored.get("log"), list)
    return stored if ok and stored["log"] else None


def run_one(config: Config, method: str, seed: int, *, progress: bool = True, cached_only: bool = False) -> dict | None:
    """Train (or read) one student; returns its tidy row with the per-epoch log under ``log``.

    A run is read from the run cache, else from the runs committed under ``results/<profile>/``
    (:mod:`igkd_lib.evidence.committed_runs`: same run key under the committed run's device type and trainer),
    else trained. With ``cached_only``, or ``config.train_missing`` false (the paper profile), a run found in
    neither place is not trained: the result is None.

    Row fields: method, seed, final_acc, best_epoch_acc (the best epoch's test accuracy: chosen on the
    test set, so optimistic; not the best of n seeds), epochs, seconds, device, data_source,
    profile, commit, n_train, the knobs p, blend, temperature, alpha, map_alignment, shuffle_maps,
    teacher_logits (as the method uses them), teacher_origin, teacher_acc, run_key, cached, origin
    ("trained here", "run cache" or "committed (...)"); a committed row also keeps its window's own fields.
    """
    if method not in _student.METHODS:
        raise ValueError(f"method={method!r} is not allowed; allowed: {', '.join(_student.METHODS)}")
    check_int("seed", seed, 0)
    train, test = _splits(config)
    teacher, info = _teacher(config, progress)
    key = run_key(config, method, seed, info.sha256, train, test)
    path = _run_path(config, key)
    stored = _load_cached(path, key)
    if stored is None:
        committed = _committed(config, method, seed, info.sha256, train, test)
        if committed is not None:
            return {**committed, "method": method, "cached": True}
    if stored is None and (cached_only or not config.train_missing):
        return None
    if stored is None:
        stored = _train(config, method, seed, key, path, teacher, info, train, test, progress)
        stored["row"].update(cached=False, origin=TRAINED_HERE)
    else:
        stored["row"].update(cached=True, origin=RUN_CACHE)
        if "best_acc" in stored["row"]:  # runs cached before the column was renamed
            stored["row"]["best_epoch_acc"] = stored["row"].pop("best_acc")
    return {**stored["row"], "method": method, "log": stored["log"]}


def _committed(config: Config, method: str, seed: int, teacher_sha: str, train: Cifar10, test: Cifar10) -> dict | None:
    """The run as committed under ``results/<profile>/``, if a committed run has its key under one of the committed
    runs' (device type, trainer) pairs; else None."""
    from igkd_lib.evidence import committed_runs

    committed = committed_runs.load(config.profile)
    for device_type, trainer in committed.trainers():
        key = run_key(config, method, seed, teacher_sha, train, test, trainer=trainer, device=torch.device(device_type))
        found = committed.run(key)
        if found is not None:
            return found
    return None


def _train(config, method, seed, key, path, teacher, info, train, test, progress) -> dict:
    c = _student.method_config(config, method)
    maps = torch.as_tensor(_maps(config, progress).maps) if c.p > 0 else None
    watch = Stopwatch()
    result = _student.train_student(config, method, seed, teacher=teacher, maps=maps, train=train, test=test,
                                    checkpoint=path.with_suffix(".pt"), progress=progress)
    row = {"method": method, "seed": int(seed), "final_acc": float(result.final_accuracy),
           "best_epoch_acc": float(result.best_accuracy), "epochs": len(result.log),
           "seconds": watch.seconds, "device": device_name(resolve_device(config.device)),
           "data_source": train.source, "profile": config.profile, "commit": git_commit(),
           "n_train": len(train), **c.key_fields(*_ROW_KNOBS),
           "teacher_origin": info.origin, "teacher_acc": float(info.test_accuracy), "run_key": key}
    stored = {"key": key, "row": row, "log": [dict(r) for r in result.log]}
    if isinstance(result.model, torch.nn.Module):  # the final weights, for studies of trained students
        atomic_torch_save(run_files(config, key)[1],
                          {k: v.detach().cpu() for k, v in result.model.state_dict().items()})
    write_checked_json(path, stored)
    path.with_suffix(".pt").unlink(missing_ok=True)  # the checkpoint only served resuming
    return stored


def variant_label(overrides: dict | None) -> str:
    """A short label for a dict of config overrides: ``"p=0.1, blend=0.5"``, or ``"default"``."""
    if not overrides:
        return "default"
    return ", ".join(f"{k}={v}" for k, v in overrides.items())


def rows_with_logs(config, methods, seeds, variants, progress, cached_only=False, missing: list | None = None):
    """One row per (variant, method, seed), each with its per-epoch ``log``: trained, or read (:func:`run_one`).
    A run that is neither read nor trained is left out, and appended to ``missing`` as (variant, method, seed)."""
    methods = list(methods) if methods is not None else list(_student.METHODS)
    seeds = list(config.seeds if seeds is None else seeds)
    variants = list(variants) if variants else [{}]
    jobs = [(v, m, s) for v in variants for m in methods for s in seeds]
    # a bar in a terminal or a live notebook; in batch runs (papermill) only the runs' epoch lines
    bar = tqdm(jobs, desc="runs", disable=not (progress and interactive()), unit="run")
    for overrides, method, seed in bar:
        bar.set_postfix_str(f"{method} seed {seed} {variant_label(overrides)}")
        row = run_one(config.replace(**overrides) if overrides else config, method, int(seed), progress=progress,
                      cached_only=cached_only)
        if row is not None:
            yield {"variant": variant_label(overrides), **row}
        elif missing is not None:
            missing.append((variant_label(overrides), method, int(seed)))


def run_grid(config: Config, methods=None, seeds=None, variants: list[dict] | None = None,
             progress: bool = True, cached_only: bool = False) -> pd.DataFrame:
    """Tidy table, one row per (variant, method, seed); ``variants`` are config overrides (ablations).

    ``methods`` None means all four; ``seeds`` None means the profile's. ``cached_only`` trains
    nothing and keeps only the runs already finished (for views that show results where they exist).
    ``frame.attrs["missing"]`` lists the (variant, method, seed) left out (:func:`run_one` returned None).
    """
    missing: list = []
    frame = without_logs(list(rows_with_logs(config, methods, seeds, variants, progress, cached_only, missing)))
    if frame.empty:  # nothing read or trained (the paper profile before the GPU campaign): the columns still exist
        frame = frame.reindex(columns=list(_EMPTY_COLUMNS)).astype(_EMPTY_COLUMNS)
    frame.attrs["missing"] = missing
    return frame


def without_logs(rows: list[dict]) -> pd.DataFrame:
    """The run table of ``rows_with_logs``' rows, their per-epoch logs left out."""
    import pandas as pd

    return pd.DataFrame([{k: v for k, v in row.items() if k != "log"} for row in rows])


def learning_curves(config: Config, methods=None, seeds=None, variants: list[dict] | None = None,
                    progress: bool = True) -> pd.DataFrame:
    """Per-epoch log rows (epoch, loss, train_acc, test_acc, seconds, images_per_s) with variant, method, seed."""
    import pandas as pd

    rows = []
    for row in rows_with_logs(config, methods, seeds, variants, progress):
        for entry in row["log"]:
            rows.append({"variant": row["variant"], "method": row["method"], "seed": row["seed"], **entry})
    return pd.DataFrame(rows)


def ablation_seeds(profile: str, seeds=None) -> tuple:
    """The seeds of chapter 5's runs: ``seeds`` when given, else the profile's (one seed on smoke and quick)."""
    if profile not in PLANS:
        raise ValueError(f"profile={profile!r} is not allowed; allowed: {', '.join(PLANS)}")
    return tuple(seeds) if seeds is not None else PLANS[profile]["ablation"]["seeds"]


def ablation_variants(config: Config, which: str, **values) -> list[dict]:
    """Config overrides of one chapter-5 ablation: ``"p"``, ``"temperature_alpha"``, ``"blend"``,
    ``"controls"`` (the aligned default, then the grid's ``controls``: shuffled maps, the official
    code's unaligned maps, its teacher-logit table), ``"faults"``
    (:func:`igkd_lib.training.faults.fault_ablation_variants`).
    ``values`` (e.g. ``p_values``) replace the profile's grid (its ``ablation`` plan,
    :data:`igkd_lib.config.PLANS`) where not None."""
    grid = {**config.plan("ablation"), **{k: v for k, v in values.items() if v is not None}}
    if which == "p":
        return [{"p": float(p)} for p in grid["p_values"]]
    if which == "temperature_alpha":
        return [{"temperature": float(t), "alpha": float(a)} for t in grid["temperatures"] for a in grid["alphas"]]
    if which == "blend":
        return [{"blend": float(b)} for b in grid["blends"]]
    if which == "controls":
        unknown = sorted(set(grid["controls"]) - set(CONTROLS))
        if unknown:
            raise ValueError(f"controls={unknown} is not allowed; allowed: {', '.join(CONTROLS)}")
        return [{}] + [dict(CONTROLS[name]) for name in grid["controls"]]
    if which == "faults":  # the grid's "full" list, its two "ends" (official code, this book), or "none"
        from igkd_lib.training.faults import fault_ablation_variants

        allowed = ("full", "ends", "none")
        if grid["faults"] not in allowed:
            raise ValueError(f"faults={grid['faults']!r} is not allowed; allowed: {', '.join(allowed)}")
        return [] if grid["faults"] == "none" else fault_ablation_variants(full=grid["faults"] == "full")
    raise ValueError(f"which={which!r} is not allowed; allowed: p, temperature_alpha, blend, controls, faults")


def overlay_results(config: Config, seeds=None) -> pd.DataFrame:
    """Chapter 5's finished KD + IG runs over p and the blend ratio, for the overlay explorer (never trains)."""
    variants = ablation_variants(config, "p") + ablation_variants(config, "blend")
    return run_grid(config, ["kd_ig"], seeds=ablation_seeds(config.profile, seeds), variants=variants,
                    progress=False, cached_only=True)
