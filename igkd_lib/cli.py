"""``python -m igkd_lib``: the command line. Every subcommand takes ``--profile`` and ``--set key=value``.

Subcommands hand the one :class:`Config` to a ``cli(config, args)`` function of the module that
does the work, so the command line and the notebooks run the same code.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .config import PROFILES, ConfigError, make_config, parse_override

__all__ = ["main", "build_parser"]

# subcommand -> (module with a ``cli(config, args)`` function, help)
_COMMANDS = {
    "info": ("igkd_lib.info", "models, parameter counts, MACs, data source, device and profile"),
    "precompute": ("igkd_lib.maps", "precompute the teacher's IG maps of the training set (cached, resumable)"),
    "train": ("igkd_lib.experiments", "train one student (--method, --seed)"),
    "run": ("igkd_lib.experiments", "run methods x seeds of a profile and print the results table"),
    "teacher": ("igkd_lib.teacher", "train the shipped teacher (resumable; --ship writes its weights into the package)"),
    "book": ("igkd_lib.book", "execute the chapters with papermill and build the Jupyter Book"),
}
_BENCHES = {
    "ig": ("igkd_lib.bench.ig", "IG engine against captum and the forward+backward floor (points/s)"),
    "train": ("igkd_lib.bench.training", "student KD+IG training throughput against the floor and the official design"),
    "latency": ("igkd_lib.bench.latency", "teacher and student latency and throughput, with deployment variants"),
    "campaign": ("igkd_lib.bench.campaign", "students·images/s: single run (per-step sync, sync-free) and wide trainer"),
}
_METHODS = ("baseline", "kd", "ig", "kd_ig")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick", choices=sorted(PROFILES), help="profile (default: quick)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field by name; repeatable")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m igkd_lib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in _COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        _common(command)
        if name in ("train", "run"):
            command.add_argument("--method", dest="methods", action="append", choices=_METHODS,
                                 help="method (repeatable; default: all four for run, kd_ig for train)")
        if name == "train":
            command.add_argument("--seed", type=int, default=0)
        if name == "teacher":
            command.add_argument("--recipe", choices=("cpu", "paper"), default="cpu",
                                 help="cpu: progressive-resizing recipe for a 2-core CPU; paper: the profile's")
            command.add_argument("--ship", action="store_true", help="only ship the latest checkpoint's weights")
            command.add_argument("--from-shipped", action="store_true",
                                 help="start after the stages the shipped weights finished (a machine without the training cache)")
        if name == "book":
            command.add_argument("--force", action="store_true", help="re-execute every chapter, fresh or not")
    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    for name, (_, help_text) in _BENCHES.items():
        _common(bench_sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = dict(parse_override(item) for item in args.overrides)
        config = make_config(args.profile, **overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    module_name = _BENCHES[args.bench][0] if args.command == "bench" else _COMMANDS[args.command][0]
    module = importlib.import_module(module_name)
    result = module.cli(config, args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
