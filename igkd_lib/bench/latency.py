"""Inference latency and throughput of the teacher, the paper's student and the compression sweep.

Measured the way a deployer would: eval mode, ``torch.inference_mode``, warm-up, device
synchronisation (CUDA events and ``cudnn.benchmark`` on a GPU), many repeats, median and
interquartile range, thread count stated. Models of one comparison are timed interleaved (one call
each per round), so a load spike from another process hits all of them alike. Beside it, the
paper's method: one cold forward pass, teacher first. See chapter 6 ("Latency").

``python -m igkd_lib bench latency`` prints the tables; the student/teacher ratio comes last.
"""
from __future__ import annotations

import datetime as _dt
import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from igkd_lib import models
from igkd_lib.bench.variants import VariantSet, check_equal, fold_batchnorm, randomise_batchnorm, variants
from igkd_lib.config import Config
from igkd_lib.console import print_table
from igkd_lib.data.cifar10 import source_label
from igkd_lib.paths import LATENCY_DIR
from igkd_lib.provenance import device_name, provenance, resolve_device
from igkd_lib.storage import atomic_path, atomic_write_json, read_json
from igkd_lib.validators import check_int

__all__ = ["measure", "compare", "variants", "check_equal", "fold_batchnorm", "VariantSet", "cold_forward",
           "paper_method", "plan", "sweep", "variant_table", "save_results", "student_teacher_ratio", "cli",
           "PAPER", "load_results", "REFERENCE_DIR"]

# What the paper reports (RTX 3090, one cold forward pass each, teacher first).
PAPER = {"device": "RTX 3090 (paper)", "teacher_ms": 140.0, "student_ms": 13.0, "teacher_parameters": 2_236_682,
         "student_parameters": 543_498}


@contextmanager
def _threads(threads: int | None):
    """torch's intra-op thread count set to ``threads`` (None: unchanged) and restored after."""
    before = torch.get_num_threads()
    if threads is not None:
        check_int("threads", threads, 1)
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@contextmanager
def _cudnn_benchmark(device: torch.device):
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda" or before
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def _time_once(forward: Callable, x: torch.Tensor, device: torch.device) -> float:
    """Milliseconds of one call, synchronised (CUDA events on a GPU, ``perf_counter`` on a CPU)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        forward(x)
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    if device.type == "mps":
        torch.mps.synchronize()
    begin = time.perf_counter()
    forward(x)
    if device.type == "mps":
        torch.mps.synchronize()
    return (time.perf_counter() - begin) * 1e3


def _summary(times: list[float], batch_size: int) -> dict:
    q1, median, q3 = np.percentile(np.asarray(times), [25, 50, 75])
    return {"median_ms": float(median), "q1_ms": float(q1), "q3_ms": float(q3), "iqr_ms": float(q3 - q1),
            "iqr_pct": float(100 * (q3 - q1) / median), "throughput": float(batch_size * 1e3 / median)}


def compare(forwards: dict[str, Callable], batch_size: int, device="cpu", *, repeats: int = 30, warmup: int = 5,
            threads: int | None = None, seed: int = 0) -> dict[str, dict]:
    """Time several callables on one (batch_size, 3, 32, 32) batch, interleaved round by round.

    Returns ``name -> {median_ms, q1_ms, q3_ms, iqr_ms, iqr_pct, throughput (images/s), batch_size,
    repeats, warmup, threads, device}``; times are per batch."""
    check_int("batch_size", batch_size, 1)
    check_int("repeats", repeats, 1)
    check_int("warmup", warmup, 0)
    device = torch.device(device)
    for forward in forwards.values():
        if isinstance(forward, torch.nn.Module):
            forward.eval()
    x = torch.rand(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(seed)).to(device)
    times: dict[str, list[float]] = {name: [] for name in forwards}
    with _threads(threads) as used, _cudnn_benchmark(device), torch.inference_mode():
        for forward in forwards.values():
            for _ in range(warmup):
                forward(x)
        for _ in range(repeats):
            for name, forward in forwards.items():
                times[name].append(_time_once(forward, x, device))
        context = {"batch_size": batch_size, "repeats": repeats, "warmup": warmup, "threads": used,
                   "device": device_name(device)}
    return {name: {**_summary(series, batch_size), **context} for name, series in times.items()}


def measure(model: Callable, batch_size: int, device="cpu", *, repeats: int = 30, warmup: int = 5,
            threads: int | None = None) -> dict:
    """Latency of ``model`` on a (batch_size, 3, 32, 32) batch: median, quartiles and IQR in ms per batch,
    IQR as % of the median, throughput in images/s, and the batch size, repeats, threads and device."""
    return compare({"model": model}, batch_size, device, repeats=repeats, warmup=warmup, threads=threads)["model"]


def cold_forward(teacher: Callable, student: Callable, batch_size: int = 1, device="cpu",
                 order: str = "teacher_first") -> dict:
    """The paper's measurement: ONE forward pass of each, no warm-up, timed with a wall clock.

    Pass freshly built models in a process that has run nothing yet (see :func:`paper_method`):
    whichever goes first pays the one-off costs (allocator, kernel selection, library start-up)."""
    check_int("batch_size", batch_size, 1)
    if order not in ("teacher_first", "student_first"):
        raise ValueError(f"order={order!r} is not allowed; allowed: teacher_first, student_first")
    device = torch.device(device)
    x = torch.rand(batch_size, 3, 32, 32).to(device)
    pair = [("teacher", teacher), ("student", student)]
    ms = {}
    with torch.no_grad():
        for name, model in pair if order == "teacher_first" else pair[::-1]:
            model.eval()
            ms[name] = _time_once(model, x, device)
    return {"order": order, "teacher_ms": ms["teacher"], "student_ms": ms["student"],
            "speedup": ms["teacher"] / ms["student"], "batch_size": batch_size, "device": device_name(device)}


def _cold_main(cut: int, device: str, order: str, threads: int) -> None:
    torch.set_num_threads(threads)
    device = torch.device(device)
    teacher, student = models.teacher().to(device), models.student(cut).to(device)
    print(json.dumps(cold_forward(teacher, student, 1, device, order)))


def paper_method(config: Config, *, orders=("teacher_first", "student_first"), trials: int = 1,
                 threads: int | None = None) -> pd.DataFrame:
    """:func:`cold_forward` in a fresh Python process per trial and order, like the paper's script."""
    device = resolve_device(config.device).type
    threads = threads or torch.get_num_threads()
    rows = []
    for order in orders:
        for trial in range(trials):
            code = (f"from igkd_lib.bench.latency import _cold_main; "
                    f"_cold_main({config.student_cut}, {device!r}, {order!r}, {threads})")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            rows.append({"trial": trial, "threads": threads, **json.loads(out.stdout.strip().splitlines()[-1])})
    return pd.DataFrame(rows)


def plan(config: Config) -> dict:
    """Batch sizes, repeats per batch size, warm-up and cuts of the sweep, the variants' repeats, whether
    compiled variants are built and whether tables are saved: the profile's ``latency`` plan on this device
    (:data:`igkd_lib.config.PLANS`), the config's own ``student_cut`` always among the cuts."""
    found = dict(config.plan("latency", resolve_device(config.device).type))
    if config.student_cut not in found["cuts"]:
        found["cuts"] = (config.student_cut, *found["cuts"])
    return found


def _sweep_models(cuts, device: torch.device) -> dict[str, tuple[int | None, torch.nn.Module]]:
    torch.manual_seed(0)  # latency does not depend on the weights' values; fixed anyway
    found = {"teacher": (None, models.teacher())}
    for cut in cuts:
        found[f"student cut {cut}"] = (cut, models.student(cut))
    return {name: (cut, model.eval().to(device)) for name, (cut, model) in found.items()}


def sweep(config: Config, *, batch_sizes=None, repeats=None, warmup: int | dict | None = None, cuts=None,
          threads: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Teacher and students ``student(cut)`` for ``cuts``: one row per (model, batch size) with
    parameters, MACs, median/quartiles/IQR in ms per batch and throughput. Defaults: :func:`plan`."""
    defaults = plan(config)
    batch_sizes = tuple(batch_sizes or defaults["batch_sizes"])
    for batch_size in batch_sizes:
        check_int("batch_size", batch_size, 1)
    repeats = repeats or defaults["repeats"]
    warmup = defaults["warmup"] if warmup is None else warmup
    device = resolve_device(config.device)
    found = _sweep_models(tuple(defaults["cuts"] if cuts is None else cuts), device)
    sizes = {name: {"cut": cut, "parameters": models.count_parameters(model), "macs": models.count_macs(model)}
             for name, (cut, model) in found.items()}
    rows = []
    for batch_size in tqdm(batch_sizes, desc="latency sweep", disable=not progress):
        count = repeats if isinstance(repeats, int) else repeats.get(batch_size, min(repeats.values()))
        warm = warmup if isinstance(warmup, int) else warmup.get(batch_size, min(warmup.values()))
        timed = compare({name: model for name, (_, model) in found.items()}, batch_size, device,
                        repeats=count, warmup=warm, threads=threads)
        rows += [{"model": name, **sizes[name], **timed[name]} for name in found]
    return pd.DataFrame(rows)


def _compile_wanted(config: Config, compile: bool | None, device: torch.device, cut: int | None) -> bool:
    """``compile=None``: where the profile's plan builds compiled variants, and on a CPU only the student
    (compiling takes ~1 min per model)."""
    if compile is not None:
        return compile
    return plan(config)["compile"] and (device.type != "cpu" or cut is not None)


def variant_table(config: Config, *, batch_size: int = 1, repeats: int | None = None, warmup: int = 3,
                  threads: int | None = None, compile: bool | None = None, onnx: bool = True) -> pd.DataFrame:
    """Every deployment variant of the teacher and the paper's student, timed interleaved per model, with
    its largest difference from eager. ``compile=None``: see :func:`_compile_wanted`."""
    device = resolve_device(config.device)
    repeats = repeats or plan(config)["variant_repeats"]
    rows = []
    for name, (cut, model) in _sweep_models((config.student_cut,), device).items():
        randomise_batchnorm(model)  # trained-like statistics, so folding is not a no-op
        example = torch.rand(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
        with _threads(threads) as used:
            found = variants(model, example, compile=_compile_wanted(config, compile, device, cut),
                             onnx=onnx, threads=used)
        checks = check_equal(found, example)
        timed = compare(dict(found), batch_size, device, repeats=repeats, warmup=warmup, threads=threads)
        for variant, stats in timed.items():
            rows.append({"model": name, "variant": variant, "status": "ok", **stats,
                         "max_abs_diff": checks[variant]["max_abs_diff"], "equal": checks[variant]["equal"]})
        rows += [{"model": name, "variant": variant, "status": reason} for variant, reason in found.unavailable.items()]
    table = pd.DataFrame(rows)
    eager = table[table.variant == "eager"].set_index("model").median_ms
    table["speedup_vs_eager"] = table.model.map(eager) / table.median_ms
    return table


def student_teacher_ratio(table: pd.DataFrame, cut: int = 5, batch_size: int = 1) -> dict:
    """Median latency of ``student cut {cut}`` over the teacher's at one batch size, with MACs and parameters."""
    rows = table[table.batch_size == batch_size].set_index("model")
    if "teacher" not in rows.index or f"student cut {cut}" not in rows.index:
        raise ValueError(f"cut={cut!r}, batch_size={batch_size!r}: not in the table")
    teacher, student = rows.loc["teacher"], rows.loc[f"student cut {cut}"]
    return {"cut": cut, "batch_size": batch_size, "teacher_ms": teacher.median_ms, "student_ms": student.median_ms,
            "latency_ratio": student.median_ms / teacher.median_ms, "speedup": teacher.median_ms / student.median_ms,
            "macs_ratio": teacher.macs / student.macs, "parameter_ratio": teacher.parameters / student.parameters}


def save_results(table: pd.DataFrame, config: Config, folder="results/latency", extra: dict | None = None,
                 stem: str | None = None) -> Path:
    """Write ``<device kind>_<date>.csv`` and a ``.json`` of provenance beside it (atomically)."""
    kind = resolve_device(config.device).type
    stem = stem or f"{kind}_{_dt.date.today().isoformat()}"
    path = Path(folder) / f"{stem}.csv"
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    meta = {**provenance(config, source_label(config)),
            "threads": sorted({int(t) for t in table.threads.dropna()}) if "threads" in table else None,
            "device": (sorted(set(table.device.dropna())) if "device" in table
                       else device_name(resolve_device(config.device))),
            "written": _dt.datetime.now().isoformat(timespec="seconds"), **(extra or {})}
    atomic_write_json(path.with_suffix(".json"), meta)
    return path


REFERENCE_DIR = LATENCY_DIR  # the committed measurements the chapters read


def load_results(folder: str | Path = REFERENCE_DIR, stem: str | None = None) -> dict | None:
    """The newest committed run (or ``stem``): sweep, variants, cold tables and its provenance; None if absent."""
    folder = Path(folder)
    stems = sorted(p.stem for p in folder.glob("*.csv") if not p.stem.endswith(("_variants", "_cold")))
    if stem is None and not stems:
        return None
    stem = stem or stems[-1]
    tables = {name: pd.read_csv(folder / f"{stem}{suffix}.csv")
              for name, suffix in (("sweep", ""), ("variants", "_variants"), ("cold", "_cold"))}
    return {**tables, "provenance": read_json(folder / f"{stem}.json"), "stem": stem}


def _print(title: str, table: pd.DataFrame, columns: list[str]) -> None:
    print_table(table, columns, ".3g", title)


def cli(config: Config, args=None) -> int:
    """``python -m igkd_lib bench latency``: sweep, variants, the paper's method, then the ratio."""
    threads = config.num_threads or torch.get_num_threads()
    with _threads(threads):
        print(f"latency on {device_name(resolve_device(config.device))}, profile {config.profile}")
    table = sweep(config, threads=threads)
    _print("sweep (ms per batch; throughput in images/s)", table,
           ["model", "parameters", "macs", "batch_size", "median_ms", "iqr_ms", "iqr_pct", "throughput"])
    table_v = variant_table(config, threads=threads)
    _print("deployment variants at batch 1", table_v,
           ["model", "variant", "median_ms", "iqr_ms", "speedup_vs_eager", "max_abs_diff", "equal", "status"])
    cold = paper_method(config, threads=threads)
    _print("the paper's method: one cold forward pass each, fresh process", cold,
           ["order", "teacher_ms", "student_ms", "speedup"])
    if not plan(config)["save"]:
        print(f"\n{config.profile} profile: tables not saved")
    else:
        path = save_results(table, config)
        save_results(table_v, config, stem=path.stem + "_variants")
        save_results(cold, config, stem=path.stem + "_cold")
        print(f"\nsaved {path} (+ _variants, _cold, .json provenance)")
    r = student_teacher_ratio(table, config.student_cut)
    print(f"student/teacher (cut {r['cut']}, batch 1, median): {r['latency_ratio']:.3f} "
          f"({r['student_ms']:.2f} ms / {r['teacher_ms']:.2f} ms; {r['speedup']:.2f}x faster; "
          f"MACs {r['macs_ratio']:.2f}x fewer; parameters {r['parameter_ratio']:.2f}x fewer)")
    return 0
