"""Paper-scale runs on a lent GPU: the queue, the window, and the results that accumulate.

``python -m igkd_lib campaign --prepare`` readies a checkout and prints the device command;
``campaign --budget-s S --out DIR`` is that command (trains the paper teacher if needed, the maps if
needed, then as many queued runs as the budget finishes, as wide groups); ``campaign --ingest DIR``
merges what came back into ``results/paper/``. ``--tiny`` runs the same path on a CPU at smoke size.
See the README, "Runs on a GPU".
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from igkd_lib.config import Config

__all__ = ["cli", "add_arguments", "TINY"]

_STARTED = time.monotonic()  # the budget counts from the import of the command, as early as it can
# --tiny: the smoke profile's sizes on the CPU, two members of one epoch; BatchNorm statistics as the
# paper profile leaves them (the wide trainer, like the paper, does not recalibrate them)
TINY = dict(device="cpu", bn_recalibrate=False)


def add_arguments(parser) -> None:
    """The ``campaign`` subcommand's options."""
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", type=Path, help="run a window; write what comes back into this folder")
    mode.add_argument("--ingest", type=Path, metavar="DIR", help="merge a window's returned folder into results/")
    mode.add_argument("--prepare", action="store_true", help="ready .window/ and print the device command")
    parser.add_argument("--budget-s", type=float, default=540.0, help="seconds the window may use (default 540)")
    parser.add_argument("--commit", default="unknown", help="the checkout's commit (.git does not travel)")
    parser.add_argument("--tiny", action="store_true",
                        help="the same path on the CPU at smoke size (2 members, 1 epoch)")
    parser.add_argument("--probe", action="store_true",
                        help="first measure the kernel and trainer choices (1x1 kernels, trainers, compile)")
    parser.add_argument("--max-group", type=int, default=16, help="most runs in one wide group (default 16)")
    parser.add_argument("--max-runs", type=int, default=None, help="most runs this window starts")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: cache_dir/campaign)")
    parser.add_argument("--results", type=Path, default=None, help="results folder (default: the checkout's results/)")
    parser.add_argument("--teacher-weights", type=Path, default=None,
                        help="the paper teacher's weights file (default: the package's; --tiny: one in --work)")
    parser.add_argument("--resume-dir", type=Path, default=None,
                        help="where an unfinished teacher's resume files are committed (default: "
                             "<results>/<profile>/teacher_resume; --tiny without --results: one in --work)")


def cli(config: Config, args) -> int:
    """Dispatch ``--prepare``, ``--ingest`` or a window (``--out``); errors exit 2 with a clear message."""
    try:
        if args.prepare:
            return _prepare(args)
        if args.ingest is not None:
            return _ingest(config, args)
        return _window(config, args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _paths(config: Config, args, tiny: bool) -> dict:
    from igkd_lib.campaign.resume_files import RESUME_DIR
    from igkd_lib.paths import RESULTS_DIR
    from igkd_lib.training.teacher import PAPER_WEIGHTS

    work = args.work or Path(config.cache_dir) / ("campaign-tiny" if tiny else "campaign")
    results = args.results if tiny else args.results or RESULTS_DIR
    resume = args.resume_dir or (Path(results) / config.profile / RESUME_DIR if results is not None
                                 else work / "resume")
    weights = args.teacher_weights or (work / "teacher.pt" if tiny else PAPER_WEIGHTS)
    return {"work": work, "teacher_weights": weights, "resume_dir": resume, "results_dir": results}


def _window(config: Config, args) -> int:
    from igkd_lib.campaign.budget import Clock
    from igkd_lib.campaign.window import WindowOptions, run_window

    if args.tiny:
        config = _tiny(config, args)
    paths = _paths(config, args, args.tiny)
    if args.max_group < 1 or (args.max_runs is not None and args.max_runs < 1):
        raise ValueError(f"--max-group={args.max_group} / --max-runs={args.max_runs} are not allowed; allowed: >= 1")
    options = WindowOptions(out=args.out, commit=args.commit, tiny=args.tiny, probe=args.probe,
                            max_group=2 if args.tiny else args.max_group, max_runs=args.max_runs, **paths)
    config = config.replace(ig_precision="fp32") if config.ig_precision == "auto" else config
    return run_window(config, options, Clock(args.budget_s, _STARTED))


def _tiny(config: Config, args) -> Config:
    """The smoke profile on the CPU (:data:`TINY`), with the command's ``--set`` overrides on top (never dropped)."""
    from igkd_lib.config import make_config, parse_override

    overrides = dict(parse_override(item) for item in getattr(args, "overrides", []))
    return make_config("smoke", **{"cache_dir": config.cache_dir, **TINY, **overrides})


def _ingest(config: Config, args) -> int:
    """Ingest a returned folder; where things go comes from this command's options (``--tiny``, ``--results``,
    ``--teacher-weights``, ``--resume-dir``), never from the folder."""
    from igkd_lib.campaign.ingest import check_mode, ingest
    from igkd_lib.campaign.returned import read_returned
    from igkd_lib.data.cifar10 import load_splits

    returned = check_mode(read_returned(args.ingest), args.tiny)  # before anything slow: the folder's claims
    if args.tiny:
        if args.results is None:
            raise ValueError("--tiny --ingest needs --results DIR; allowed: a --tiny window's folder ingested into "
                             "a results folder of its own (never into the committed results)")
        config = _tiny(config, args)
    paths = _paths(config, args, args.tiny)
    finished = (returned.meta.get("teacher") or {}).get("status") == "finished"
    test = load_splits(config)[1] if finished else None  # a finished teacher's accuracy is measured again here
    report = ingest(args.ingest, paths["results_dir"], paths["teacher_weights"], paths["resume_dir"], test,
                    tiny=args.tiny, config=config)
    for name, value in report.items():
        print(f"{name}: {value}")
    from igkd_lib.campaign.targets import readable_rows, target_lines

    targets = readable_rows(returned.meta.get("targets"))  # the GPU trainer's targets as the window measured them
    if targets:
        print("\n".join(target_lines(targets, bool(returned.meta.get("tiny")))))
    return 0


def _prepare(args) -> int:
    from igkd_lib.campaign.prepare import BUDGET_S, TIMEOUT_S, device_command, prepare, probe_needed

    ready = prepare()
    print(f"ready: {ready['bytes'] / 2**20:.1f} MiB travel (limit 64 MiB); commit {ready['commit']}")
    print(f"teacher: {ready['teacher']}")
    print("\nrun on the device (tool `run`), then ingest:")
    print("  kind:      nvidia-h200 (preferred for its memory bandwidth; nvidia-h100-x1 also works)")
    print(f"  timeout_s: {TIMEOUT_S}")
    print(f"  carry:     {ready['carry']}")
    print(f"  command:   {device_command(ready['commit'], BUDGET_S, probe=probe_needed())}")
    print("\nthen: python -m igkd_lib campaign --ingest <files_at folder of the reply>")
    return 0
