"""``python -m igkd_lib``: the command line. Every subcommand takes ``--profile`` and ``--set key=value``.

Subcommands hand the one :class:`Config` to a ``cli(config, args)`` function of the module that
does the work, so the command line and the notebooks run the same code. Every failure the user can
act on ends with one ``error: ...`` message on stderr and a non-zero exit status, never a traceback:
2 for a value that is not allowed (:class:`ConfigError`, ``ValueError``), 1 for a run that could not
be done (data unavailable, teacher weights that do not verify, a loss that became non-finite, a file
that could not be written), 130 when interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from igkd_lib.config import METHODS, PROFILES, make_config, parse_override

__all__ = ["main", "build_parser"]

# subcommand -> (module with a ``cli(config, args)`` function, help)
_COMMANDS = {
    "info": ("igkd_lib.book.info", "models, parameter counts, MACs, data source, device and profile"),
    "precompute": ("igkd_lib.attribution.maps",
                   "precompute the teacher's IG maps of the training set (cached, resumable)"),
    "train": ("igkd_lib.campaign.local_runs", "train one student (--method, --seed)"),
    "run": ("igkd_lib.campaign.local_runs", "run methods x seeds of a profile and print the results table"),
    "teacher": ("igkd_lib.training.teacher_shipping",
                "train the shipped teacher (resumable; --ship writes its weights into the package)"),
    "official": ("igkd_lib.evidence.official",
                 "the authors' published students: accuracy in the name vs measured here"),
    "claims": ("igkd_lib.evidence.claim_sources",
               "the paper's claims with verdicts: --source official | paper | quick"),
    "book": ("igkd_lib.book.build", "execute the chapters with papermill and build the Jupyter Book"),
    "campaign": ("igkd_lib.campaign",
                 "paper-scale runs on a GPU window: --prepare, --budget-s S --out DIR, --ingest DIR"),
}
_BENCHES = {
    "ig": ("igkd_lib.bench.ig", "IG engine against captum and the forward+backward floor (points/s)"),
    "train": ("igkd_lib.bench.training", "student KD+IG training throughput against the floor and the official design"),
    "latency": ("igkd_lib.bench.latency", "teacher and student latency and throughput, with deployment variants"),
    "campaign": ("igkd_lib.bench.campaign",
                 "students·images/s: single run (per-step sync, sync-free), wide trainer, graph engine; "
                 "the teacher's engines"),
    "pointwise": ("igkd_lib.bench.pointwise", "the wide student's 1x1 convolutions: grouped conv vs batched matmul"),
    "teacher": ("igkd_lib.bench.teacher_engines", "teacher training images/s: the epoch loop and the graph engine"),
}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick", choices=sorted(PROFILES), help="profile (default: quick)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field by name; repeatable")
    parser.add_argument("--preset", choices=("official",), default=None,
                        help="official: replay the official code as a whole (igkd_lib.training.faults.OFFICIAL_CODE); "
                             "--set overrides still apply on top")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m igkd_lib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in _COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        _common(command)
        if name in ("train", "run"):
            command.add_argument("--method", dest="methods", action="append", choices=METHODS,
                                 help="method (repeatable; default: all four for run, kd_ig for train)")
        if name == "train":
            command.add_argument("--seed", type=int, default=0)
        if name == "teacher":
            command.add_argument("--recipe", choices=("cpu", "paper"), default="cpu",
                                 help="cpu: progressive-resizing recipe for a 2-core CPU; paper: the profile's")
            command.add_argument("--ship", action="store_true", help="only ship the latest checkpoint's weights")
            command.add_argument("--from-shipped", action="store_true",
                                 help="start after the stages the shipped weights finished "
                                      "(a machine without the training cache)")
        if name == "claims":
            command.add_argument("--source", choices=("official", "paper", "quick"), default="official",
                                 help="official: the authors' ten-run file (both versions); paper: results/paper/"
                                      "runs.csv; quick: this cache's finished runs of the profile")
        if name == "official":
            command.add_argument("--robustness", action="store_true",
                                 help="the six students under corruption and their IG agreement with the teacher, "
                                      "paired over images: print the committed results/robustness/ (computed there "
                                      "once when absent)")
            command.add_argument("--recompute", action="store_true",
                                 help="with --robustness: measure again and rewrite results/robustness/")
        if name == "book":
            command.add_argument("--force", action="store_true", help="re-execute every chapter, fresh or not")
        if name == "campaign":
            from igkd_lib.campaign import add_arguments

            add_arguments(command)
            command.set_defaults(profile="paper")
    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    for name, (_, help_text) in _BENCHES.items():
        _common(bench_sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _run_failures() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "this run could not be done" (exit 1), as opposed to a bug (traceback)."""
    from igkd_lib.data.cifar10 import DataUnavailable
    from igkd_lib.errors import NonFiniteLossError, WeightsError

    return DataUnavailable, WeightsError, NonFiniteLossError, OSError


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit status (0: done; 1: the run failed; 2: a bad value; 130: interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        overrides = dict(parse_override(item) for item in args.overrides)
        if getattr(args, "preset", None) == "official":
            from igkd_lib.training.faults import OFFICIAL_CODE

            overrides = {**OFFICIAL_CODE, **overrides}
        config = make_config(args.profile, **overrides)
        from igkd_lib.book.notebook import prepare_runtime

        prepare_runtime(config)
        module_name = _BENCHES[args.bench][0] if args.command == "bench" else _COMMANDS[args.command][0]
        if args.command == "official" and (args.robustness or args.recompute):  # the study of the same students
            module_name = "igkd_lib.evidence.robustness"
        result = importlib.import_module(module_name).cli(config, args)
    except ValueError as error:  # ConfigError included: a value that is not allowed
        return _fail(error, 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except _run_failures() as error:
        return _fail(error, 1)
    return int(result or 0)


def _fail(error: BaseException | str, status: int) -> int:
    print(f"error: {error}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
