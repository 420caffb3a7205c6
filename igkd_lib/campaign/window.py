"""One GPU window: data, the paper teacher, the maps, then as many queued runs as the budget finishes.

:func:`run_window` is what ``python -m igkd_lib campaign --budget-s S --out DIR`` runs on the device
(and, with ``--tiny``, on a CPU at smoke size: the same code path). It imports nothing beyond torch,
torchvision, numpy, Pillow and tqdm (the device image has no package registry).
"""
from __future__ import annotations

import datetime
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from igkd_lib.attribution.maps import get_maps, maps_precision, throughput
from igkd_lib.campaign.admission import Rate, calibrate, group_seconds
from igkd_lib.campaign.budget import Clock
from igkd_lib.campaign.engine import (
    PROBE_COMPILES,
    PROBE_LAYOUTS,
    PROBE_SIZES,
    PROBE_STEPS,
    choose,
    compile_needless,
    current,
    read_engine,
)
from igkd_lib.campaign.ingest import done_keys
from igkd_lib.campaign.maps_check import bf16_agreement
from igkd_lib.campaign.paper_teacher import (
    checkpoint_log,
    epochs_done,
    join_checkpoint,
    measured_accuracy,
    ship_to,
    split_checkpoint,
    train_in_window,
)
from igkd_lib.campaign.queue import (
    TRAINER,
    compatible_runs,
    entry_config,
    entry_key,
    maps_signature,
    paper_queue,
    uses_maps,
)
from igkd_lib.campaign.results import WindowResults, summary_lines
from igkd_lib.campaign.resume_files import committed_hashes
from igkd_lib.campaign.run_studies import STUDIED, WindowStudies
from igkd_lib.campaign.targets import target_lines, target_rows
from igkd_lib.config import TEACHER_ENGINES, Config
from igkd_lib.data.cifar10 import SOURCE_LABELS, load_splits
from igkd_lib.provenance import device_name, resolve_device
from igkd_lib.storage import model_sha256
from igkd_lib.training import wide
from igkd_lib.training.graph_step import train_members
from igkd_lib.training.loop import precision_name
from igkd_lib.training.teacher import checkpoint_meta, load_shipped_teacher, recipe_from_config
from igkd_lib.training.wide_model import resolve_layout

__all__ = ["WindowOptions", "run_window"]


@dataclass(frozen=True)
class WindowOptions:
    """What one window does: output folder, scratch folder, paths that travel, limits."""

    out: Path
    work: Path
    teacher_weights: Path
    resume_dir: Path
    results_dir: Path | None
    commit: str = "unknown"
    tiny: bool = False
    max_group: int = 16
    max_runs: int | None = None
    reserve_s: float = 15.0  # seconds kept free at the end (writing results, the summary)
    calibration_steps: int = 24
    probe: bool = False  # measure the kernel and trainer choices first (bench pointwise, campaign, compile)


def run_window(config: Config, options: WindowOptions, clock: Clock) -> int:
    """Run the window; returns 0 when it ended cleanly (whatever it managed to run)."""
    device = resolve_device(config.device)
    _settle(device)
    results = WindowResults(options.out, _provenance(config, options, device, clock))
    with clock.phase("data"):
        train, test = load_splits(config)
    results.write_meta(data_source=SOURCE_LABELS[train.source], n_train=len(train), n_test=len(test))
    print(f"data: {SOURCE_LABELS[train.source]} ({len(train)} train / {len(test)} test), "
          f"{clock.elapsed():.1f} s", flush=True)
    if options.probe:
        with clock.phase("probe"):
            results.write_meta(probe=_probe(config, options, teacher=not options.teacher_weights.is_file()))
    config = _engine(config, options, results, device)
    with clock.phase("teacher"):
        teacher, sha = _teacher_phase(config, options, results, train, test, device, clock)
    if teacher is not None:
        _students_phase(config, options, results, teacher, sha, train, test, device, clock)
    return _finish(results, clock, len(train))


# --------------------------------------------------------------------------- provenance
def _settle(device: torch.device) -> None:
    """cudnn autotuning on CUDA (nondeterministic: bit-exact resume is a CPU promise)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def _provenance(config: Config, options: WindowOptions, device: torch.device, clock: Clock) -> dict:
    cuda = device.type == "cuda"
    return {
        "window": datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{options.commit}",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": options.commit, "profile": config.profile, "tiny": options.tiny, "budget_s": clock.budget_s,
        "device": device_name(device), "device_type": device.type, "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None, "python": platform.python_version(),
        "tf32": _tf32() if cuda else None,
        "precision": precision_name(device), "maps_precision": maps_precision(config, device),
        "trainer": TRAINER, "trainer_module": (wide.__doc__ or "").strip().splitlines()[0],
        "config": config.to_dict(),
    }


def _tf32() -> dict:
    """Whether float32 matrix products and convolutions may use TF32 on this CUDA device (as torch reports it)."""
    names = {"matmul": torch.backends.cuda.matmul, "cudnn": torch.backends.cudnn}
    return {name: getattr(backend, "allow_tf32", None) for name, backend in names.items()}


# --------------------------------------------------------------------------- probe
def _probe(config: Config, options: WindowOptions, teacher: bool) -> dict:
    """The measurements that choose the engine, in this window (kept in window.json): the trainers side by side
    (single per-step sync, single sync-free, wide in each layout of :data:`igkd_lib.campaign.engine.PROBE_LAYOUTS`
    at :data:`~igkd_lib.campaign.engine.PROBE_SIZES`, the graph engine), ``train_compile`` at the best N
    (:data:`~igkd_lib.campaign.engine.PROBE_COMPILES`) and the graph engine in both layouts there. A tiny (CPU)
    rehearsal measures the serial layout (the CPU's) and the member-major one at N = 1, 2, eagerly, and the
    1x1-convolution kernels. With ``teacher`` (the paper teacher is unfinished) it also measures the teacher's
    engines, the loop and the graph engine (:mod:`igkd_lib.bench.teacher_engines`)."""
    from igkd_lib.bench import campaign as bench_campaign
    from igkd_lib.bench import pointwise, teacher_engines

    cuda = resolve_device(config.device).type == "cuda"
    if options.tiny:
        steps, sizes, layouts, graph_sizes = 1, (1, 2), ("serial", "member"), None
        kernels = pointwise.run(config, reps=1, sizes=sizes)
        print("\n".join(f"probe: {line}" for line in pointwise.winner_lines(kernels)), flush=True)
    else:  # the 1x1 kernels' choice (batched matmul 1.57x at N = 16) is the member-major layout's, measured below;
        # the graph engine is measured at the best N in both layouts (engine_rows), not in the trainers' table
        steps, sizes, layouts, graph_sizes, kernels = PROBE_STEPS, PROBE_SIZES, PROBE_LAYOUTS, (), None
    failed: list = []  # designs that raised on this device: left out of the choice, never the end of the window
    trainers = []
    for index, layout in enumerate(layouts):  # the singles with the first layout, the graph rows with the last
        trainers += _guarded(f"wide {layout} layout", failed, lambda layout=layout, index=index: bench_campaign.run(
            config, steps=steps, sizes=sizes, layouts=(layout,), singles=index == 0,
            graph_sizes=graph_sizes if index == len(layouts) - 1 else ()))
    print("\n".join(f"probe: {line}" for line in bench_campaign.ratio_lines(trainers)), flush=True)
    wide = [row for row in trainers if row["design"].startswith("wide")]
    compiles, engines, skipped = [], [], []
    if wide:
        best = max(wide, key=lambda row: row["students_images_per_s"])
        measure = lambda choice: _guarded(f"train_compile={choice}", failed, lambda: bench_campaign.compile_rows(  # noqa: E731
            config, best["students"], steps=steps, choices=(choice,), layout=best["layout"]))
        compiles = measure("none")
        # the graph engine at the same N, timed the same way (second epoch), against the fastest compile choice
        for design in (bench_campaign.GRAPH, bench_campaign.GRAPH_MEMBER):
            engines += _guarded(design, failed, lambda design=design: bench_campaign.engine_rows(
                config, best["students"], steps=steps, designs=(design,)))
        # compiled steps are measured on CUDA only (on a CPU torch.compile would spend minutes compiling), and only
        # while they could still win: their compilation is the probe's longest part
        for choice in (c for c in PROBE_COMPILES if c != "none" and cuda):
            reason = compile_needless(compiles, engines)
            if reason:
                skipped.append({"what": f"train_compile={choice}", "why": reason})
                print(f"probe: train_compile={choice} not measured: {reason}", flush=True)
                continue
            compiles += measure(choice)
        for row in compiles:
            print(f"probe: train_compile={row['train_compile']} (ran {row['ran']}), N={row['members']}: "
                  f"{row['layout']} layout: {row['students_images_per_s']:.0f} students·images/s in the second epoch",
                  flush=True)
        fastest = max((row for row in compiles if row["ran"] == row["train_compile"]),
                      key=lambda row: row["students_images_per_s"], default=None)
        if fastest is not None:
            today = {**fastest, "design": f"wide N={fastest['members']} {fastest['layout']} "
                                          f"train_compile={fastest['train_compile']}"}
            print("\n".join(f"probe: {line}" for line in bench_campaign.engine_lines(engines, today)), flush=True)
    teachers = []
    for engine in TEACHER_ENGINES if teacher else ():
        teachers += _guarded(f"teacher {engine} engine", failed, lambda engine=engine: teacher_engines.rows(
            config, steps=1 if options.tiny else PROBE_STEPS, engines=(engine,)))
    print("\n".join(f"probe: {line}" for line in teacher_engines.lines(teachers)), flush=True)
    return {"pointwise": kernels, "trainers": trainers, "compile": compiles, "engines": engines, "teacher": teachers,
            "failed": failed, "skipped": skipped}


def _guarded(what: str, failed: list, measure) -> list:
    """``measure()``'s rows, or none when it raises: a design that fails on this device (the GPU paths run there first)
    is printed, kept in ``failed`` and left out of the choice; the window goes on."""
    try:
        return measure()
    except Exception as error:  # noqa: BLE001 - any failure of one measured design: leave it out, go on
        failed.append({"what": what, "error": f"{type(error).__name__}: {error}"[:500]})
        print(f"probe: {what} failed ({type(error).__name__}: {error}); left out of the choice", file=sys.stderr,
              flush=True)
        return []


def _engine(config: Config, options: WindowOptions, results: WindowResults, device: torch.device) -> Config:
    """The config with the committed engine choice applied, or with this window's probe's choice when
    none is committed yet or the committed one was chosen among other candidates (igkd_lib.campaign.engine);
    what applies is kept in window.json."""
    engine = read_engine(options.results_dir, config.profile)
    if not current(engine) and "probe" in results.meta:
        engine = choose(results.meta["probe"], device.type, results.meta["window"])
    if engine is not None:
        config = config.replace(**engine["settings"])
        print(f"engine: {engine['settings'] or 'defaults'} (window {engine['window']}'s probe)", flush=True)
    results.write_meta(engine=engine, layout=resolve_layout(config.wide_layout, device), config=config.to_dict())
    return config


# --------------------------------------------------------------------------- teacher
def _teacher_phase(config, options, results, train, test, device, clock):
    """The installed paper teacher (accuracy measured again here), or train / resume it now."""
    installed = load_shipped_teacher(options.teacher_weights)
    if installed is None and options.teacher_weights.is_file():
        raise ValueError(f"teacher weights {options.teacher_weights} do not match their card's SHA-256; allowed: "
                         "the installed files as committed (restore them; a damaged teacher is never replaced)")
    if installed is not None:
        model, card = installed
        model = model.to(device).eval()
        accuracy = measured_accuracy(model, test)
        print(f"teacher: installed {options.teacher_weights.name}, card {card['test_accuracy']:.2f}%, "
              f"measured here {accuracy:.2f}%", flush=True)
        results.write_meta(teacher={"status": "installed", "sha256": card["sha256"],
                                    "card_accuracy": card["test_accuracy"], "measured_accuracy": accuracy})
        return model, card["sha256"]
    checkpoint = options.work / "teacher" / "checkpoint.pt"
    _resume_teacher(config, options, train, checkpoint)
    before = epochs_done(checkpoint)
    result = train_in_window(config, train, test, device, checkpoint, lambda: clock.left() - options.reserve_s)
    log = result.log if result is not None else checkpoint_log(checkpoint)
    here = {"engine": config.teacher_engine, "epoch_seconds": [row["seconds"] for row in log[before:]]}
    if result is None:
        done = len(log)
        hashes = split_checkpoint(checkpoint, options.out) if done else {}
        print(f"teacher: {done}/{config.teacher_epochs} epochs when the budget ended; resume files written",
              flush=True)
        results.write_meta(teacher={"status": "unfinished", "epochs_done": done, "resume_sha256": hashes, **here})
        return None, None
    card = ship_to(result, config, train.source, device, options.out, options.commit)
    model = result.model.to(device).eval()
    accuracy = measured_accuracy(model, test)
    print(f"teacher: finished, {card['test_accuracy']:.2f}% in its log, measured again {accuracy:.2f}%", flush=True)
    results.write_meta(teacher={"status": "finished", "sha256": card["sha256"], **here,
                                "card_accuracy": card["test_accuracy"], "measured_accuracy": accuracy})
    return model, card["sha256"]


def _resume_teacher(config, options, train, checkpoint: Path) -> None:
    """Start the scratch checkpoint from the committed resume files where there are some (they win over a
    scratch checkpoint left on this machine): verified against their ``resume.json``, loaded as tensors and
    plain data, checked against this checkout's teacher and this window's recipe and data."""
    hashes = committed_hashes(options.resume_dir)
    if hashes is None:
        if checkpoint.is_file():
            print(f"teacher: resuming from this machine's checkpoint ({epochs_done(checkpoint)} epochs)", flush=True)
        return
    expected = checkpoint_meta(recipe_from_config(config), train)
    join_checkpoint(options.resume_dir, checkpoint, hashes, expected)
    print(f"teacher: resuming from {options.resume_dir} after epoch {epochs_done(checkpoint)} (committed resume "
          "files, SHA-256 verified)", flush=True)


# --------------------------------------------------------------------------- students
def _students_phase(config, options, results, teacher, sha, train, test, device, clock):
    done = done_keys(options.results_dir, config.profile)
    keyed = [(entry, entry_key(config, entry, sha, train, test, device)) for entry in paper_queue()]
    pending = [(e, k) for e, k in keyed if k not in done]
    results.write_meta(queue={"length": len(keyed), "done_before": len(keyed) - len(pending)})
    print(f"queue: {len(keyed)} runs, {len(keyed) - len(pending)} done before this window", flush=True)
    maps, started, calibrations, groups = {}, 0, [], []  # maps: maps_signature -> (N, H, W) maps
    studies = WindowStudies(config, teacher, test, device)  # chapter 8's measurements of Table 1's students
    while pending and (options.max_runs is None or started < options.max_runs):
        limit = options.max_group if options.max_runs is None else min(options.max_group, options.max_runs - started)
        with clock.phase("admission"):
            admitted = _admit(config, options, pending, limit, maps, teacher, train, test, device, clock,
                              calibrations, studies)
        results.write_meta(calibration=calibrations)
        if admitted is None:
            break
        group, predicted = admitted
        readers = [e for e, _ in group if uses_maps(config, e)]
        signature = maps_signature(config, readers[0]) if readers else None
        if readers and signature not in maps:
            maps[signature] = _maps_phase(entry_config(config, readers[0]), options, results, teacher, train, clock)
        with clock.phase("training") as phase:
            trained = _train(config, options, results, group, teacher, maps.get(signature), sha, train, test, device,
                             clock)
        _studies(options, results, group, trained, studies, clock)
        seconds = clock.spent["training"] - phase.before
        groups.append({"members": len(group), "predicted_s": predicted, "seconds": seconds})
        results.write_meta(groups=groups)
        started += len(group)
        pending = [(e, k) for e, k in pending if (e, k) not in group]


def _admit(config, options, pending, limit, maps_done, teacher, train, test, device, clock, calibrations, studies):
    """The largest group of the next compatible queued runs predicted to finish in the time left (their studies'
    measurements included), or None.

    Runs that need the maps come first in queue order; when no group with them fits (maps included),
    the next runs without maps are tried. ``maps_done``: the maps computed so far, by signature.
    """
    compatible, anchor = compatible_runs(config, pending)
    maps_ready = anchor is None or anchor in maps_done
    tries = [compatible]
    if not maps_ready:
        tries.append([(e, k) for e, k in compatible if not uses_maps(config, e)])
    for candidates in tries:
        size = min(limit, len(candidates))
        while size >= 1:
            if clock.left() - options.reserve_s <= _last_cost(calibrations):
                print("admission: too little time left to measure another group", flush=True)
                return None
            group = candidates[:size]
            rate = _calibrate(config, options, group, teacher, train, test, device)
            needs_maps = not maps_ready and any(uses_maps(config, e) for e, _ in group)
            c = entry_config(config, group[0][0])
            training = group_seconds(rate, c.student_epochs, len(train), len(test))
            reader = next((e for e, _ in group if uses_maps(config, e)), group[0][0])
            maps_s = _maps_seconds(entry_config(config, reader), teacher, train) if needs_maps else 0.0
            studies_s = 0.0 if studies.disabled else studies.predicted_s(sum(e.study in STUDIED for e, _ in group))
            predicted = training + maps_s + studies_s
            left = clock.left() - options.reserve_s
            calibrations.append({"members": size, "students_images_per_s": rate.students_images_per_s,
                                 "overhead_s": rate.overhead_s, "calibration_s": rate.calibration_s,
                                 "predicted_s": predicted, "studies_s": studies_s, "left_s": left,
                                 "with_maps": needs_maps, "admitted": predicted <= left})
            print(f"admission: {size} run(s){' + maps' if needs_maps else ''} predicted {predicted:.0f} s, "
                  f"{left:.0f} s left ({rate.students_images_per_s:.0f} students·images/s)", flush=True)
            if predicted <= left:
                return group, predicted
            size = _smaller(size, training, maps_s, left)
    print("admission: no queued run finishes in the time left", flush=True)
    return None


def _smaller(size: int, training_s: float, maps_s: float, left: float) -> int:
    """The next group size worth measuring: halved until it might fit. Fewer members never train more
    students·images/s in total, so a group of ``k`` needs at least ``training_s * k / size``."""
    smaller = size // 2
    while smaller >= 1 and training_s * smaller / size + maps_s > left:
        smaller //= 2
    return smaller


def _last_cost(calibrations: list) -> float:
    """Seconds the last calibration took (the cost of measuring one more group), 0 before the first."""
    return calibrations[-1]["calibration_s"] if calibrations else 0.0


def _calibrate(config, options, group, teacher, train, test, device) -> Rate:
    members = [wide.Member(entry_config(config, e), e.method, e.seed) for e, _ in group]
    # random maps of the right shape: only the timing matters here
    needs_maps = any(uses_maps(config, e) for e, _ in group)
    probe_maps = torch.rand(len(train), *train.images.shape[-2:]) if needs_maps else None
    steps = 1 if options.tiny else options.calibration_steps
    return calibrate(members, teacher=teacher, maps=probe_maps, train=train, test=test, device=device, steps=steps)


_MAPS_RATE: dict = {}


def _maps_seconds(config, teacher, train) -> float:
    """Predicted seconds of the maps of ``train`` (points/s measured once on a few images)."""
    if "points_per_s" not in _MAPS_RATE:
        probe = train.subset(torch.arange(min(64, len(train))))
        _MAPS_RATE["points_per_s"] = throughput(config, teacher, probe)
    return 1.1 * len(train) * config.ig_steps / _MAPS_RATE["points_per_s"]


def _maps_phase(config, options, results, teacher, train, clock) -> torch.Tensor:
    with clock.phase("maps"):
        if config.ig_precision == "bf16":
            agreement = bf16_agreement(config, teacher, train)
            print(f"maps: bf16 vs fp32 on {agreement['images']} images: Spearman {agreement['spearman_mean']:.4f} "
                  f"(min {agreement['spearman_min']:.4f}), max relative difference {agreement['max_rel_diff']:.3g}",
                  flush=True)
            results.write_meta(maps_agreement=agreement)
        found = get_maps(config, teacher=teacher, train=train, progress=False)
    print(f"maps: {len(found.maps)} images, {found.seconds:.1f} s ({'cache' if found.from_cache else 'computed'})",
          flush=True)
    results.write_meta(maps={"seconds": found.seconds, "key": found.key, "precision": config.ig_precision})
    return found.maps


def _train(config, options, results, group, teacher, maps, sha, train, test, device, clock) -> list:
    fields = {"device": results.meta["device"], "device_type": device.type, "precision": results.meta["precision"],
              "trainer": TRAINER, "data_source": train.source, "profile": config.profile, "commit": options.commit,
              "teacher_origin": "paper" if config.plan("paper_teacher") else "campaign", "teacher_sha256": sha,
              "teacher_acc": results.meta["teacher"]["measured_accuracy"], "window": results.meta["window"]}
    for entry, key in group:
        results.start(entry, key, config, fields)
    members = [wide.Member(entry_config(config, e), e.method, e.seed) for e, _ in group]

    def on_epoch(index: int, row: dict) -> None:
        entry, key = group[index]
        results.epoch(key, row)
        print(f"{entry.method} seed {entry.seed} {entry.variant} epoch {row['epoch']}: test {row['test_acc']:.2f}% "
              f"({row['images_per_s']:.0f} img/s)", flush=True)

    group_maps = maps if any(uses_maps(config, e) for e, _ in group) else None
    trained = train_members(members, teacher=teacher, maps=group_maps, train=train, test=test, device=device,
                               progress=False, on_epoch=on_epoch, should_stop=lambda: clock.left() < options.reserve_s)
    for (entry, key), result in zip(group, trained):
        if result.model is not None:
            results.weights(key, model_sha256(result.model), getattr(result, "info", None))
    return trained


def _studies(options, results, group, trained, studies: WindowStudies, clock) -> None:
    """Chapter 8's agreement and robustness of the group's finished students of :data:`STUDIED` studies, each while
    the budget allows (admission counted them in); a run left unmeasured is listed in window.json."""
    for (entry, key), result in zip(group, trained):
        if studies.disabled:
            return
        if entry.study not in STUDIED or results.runs[key]["row"]["status"] != "complete" or result.model is None:
            continue
        if clock.left() - options.reserve_s < studies.predicted_s(1):
            results.write_meta(studies_skipped=[*results.meta.get("studies_skipped", []), key])
            print(f"studies: too little time left to measure {entry.method} seed {entry.seed}", flush=True)
            continue
        try:
            with clock.phase("studies"):
                results.study(key, studies.measure(result.model))
        except Exception as error:  # noqa: BLE001 - a failing measurement ends the studies, never the training
            results.write_meta(studies_failed=f"{type(error).__name__}: {error}"[:500])
            print(f"studies: failed ({type(error).__name__}: {error}); no more studies in this window",
                  file=sys.stderr, flush=True)
            studies.disabled = True
            return
        results.write_meta(studies=studies.summary())
        agreement = results.studies[key]["agreement"]
        spearman = "-" if agreement["spearman"] is None else f"{agreement['spearman']:.3f}"
        print(f"studies: {entry.method} seed {entry.seed}: Spearman with the teacher's maps {spearman}, "
              f"top-10 % IoU {agreement['iou']:.3f} ({studies.student_s:.1f} s)", flush=True)


def _finish(results: WindowResults, clock: Clock, n_train: int) -> int:
    complete, partial = results.counts()
    images = sum(run["row"]["epochs"] * run["row"]["n_train"] for run in results.runs.values())
    student_s = clock.spent.get("training", 0.0)
    summary = {"runs finished": complete, "runs partial (not counted)": partial,
               "students·images/s": images / student_s if student_s > 0 else 0.0,
               "seconds per finished run": student_s / complete if complete else 0.0,
               **{f"seconds: {name}": seconds for name, seconds in clock.spent.items()},
               "seconds: total": clock.elapsed(), "budget (s)": clock.budget_s}
    targets = target_rows(results.meta, results.runs, clock.spent)
    results.write_meta(summary=summary, spent=clock.spent, targets=targets)
    print("\n".join(target_lines(targets, results.meta.get("tiny", False))), flush=True)
    print("\n".join(summary_lines(summary)), flush=True)
    return 0
