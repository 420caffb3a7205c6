"""One configuration object for the whole book: profiles, overrides and validation.

A chapter's ``parameters`` cell names a profile and any overrides; ``make_config`` turns them into
one frozen :class:`Config` that every function of :mod:`igkd_lib` takes. Explained in the
introduction of the book ("Profiles").
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from igkd_lib.validators import require

__all__ = ["Config", "ConfigError", "PROFILES", "PLANS", "make_config", "parse_override", "default_cache_dir",
           "METHODS", "FIELD_GROUPS", "KEY_DEFAULTS_LEFT_OUT", "group_fields"]

METHODS = ("baseline", "kd", "ig", "kd_ig")  # the four students of Table 1, in the paper's order

IG_METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")
IG_BASELINES = ("black", "mean")
IG_TARGETS = ("label", "prediction")
DEVICES = ("auto", "cpu", "cuda", "mps")
DATA_SOURCES = ("auto", "torchvision", "offline")
MAP_ALIGNMENTS = ("aligned", "official")
# online: the teacher sees the student's exact batch (overlay included); online_clean: the same crops and
# flips without the overlay; cached: the clean images once; official: the official code's fault
# (igkd_lib.training.faults)
TEACHER_LOGITS = ("online", "online_clean", "cached", "official")
MAP_VIEWS = ("clean", "augmented")  # augmented: maps of randomly cropped and flipped views (the official maps)
TEACHER_SOURCES = ("shipped", "train")
# where the overlay maps come from (igkd_lib.attribution.sources); "ig" is the paper's
MAP_SOURCES = ("ig", "ig_untrained", "ig_weak", "grad_x_input", "smoothgrad", "sobel", "constant")
STUDENT_CUTS = (3, 5, 7, 9, 11, 13, 15, 17)
# the overlay-source study (chapter 8, the campaign's queue); ig_weak last: it equals ig until a
# paper-profile teacher is installed (igkd_lib.attribution.sources)
SOURCE_STUDY = ("ig", "ig_untrained", "grad_x_input", "smoothgrad", "sobel", "constant", "ig_weak")
TRAIN_COMPILES = ("none", "compile", "cudagraph")
WIDE_LAYOUTS = ("auto", "grouped", "serial", "member")  # igkd_lib.training.wide_model.LAYOUTS; auto: the device's
TRAIN_ENGINES = ("wide", "graph")  # igkd_lib.training.graph_step.ENGINES
TEACHER_ENGINES = ("loop", "graph")  # igkd_lib.training.teacher_graph.TEACHER_ENGINES
# Upper bounds where a larger value cannot be meant (and would only fail, or overflow, later).
MAX_TEMPERATURE = 100.0
MAX_LR = 10.0
MAX_IG_STEPS = 10_000
MAX_EXPONENT = 100.0  # map ** s with a larger s flushes every map to zero
_NOT_OVERRIDABLE = {"profile": "choose it with --profile (command line) or the profile parameter (papermill)"}
IG_PRECISIONS = ("auto", "fp32", "bf16")


# What each cached artifact and each stage depends on, declared once: the run key
# (igkd_lib.evidence.experiments.run_key), the maps key (igkd_lib.attribution.maps.maps_key), the in-process memos
# of the
# teacher and maps, the wide trainer's groups (igkd_lib.training.wide.GROUP_FIELDS) and a checkpoint's identity
# (igkd_lib.training.student) are derived from these groups. Every field of Config is in at least one group
# (tests/test_config.py checks it): a new field goes where it belongs, and every key that covers that
# group covers it.
FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    # where and which runs: never part of what a run computes (nor of a checkpoint's identity)
    # (wide_layout, like num_threads, changes only the order of float roundings: not in a run's key)
    # (train_engine too: the graph engine computes the wide trainer's runs, tested equal on CPU; teacher_engine
    # likewise computes the teacher loop's run, tested equal on CPU)
    # (train_missing says whether a run that is neither cached nor committed is trained, or left out and listed)
    "runtime": ("profile", "device", "num_threads", "cache_dir", "data_root", "seeds", "wide_layout", "train_engine",
                "teacher_engine", "train_missing"),
    "data": ("data_source", "n_train", "n_test", "subset_seed"),
    # what the trained teacher depends on (igkd_lib.training.teacher.recipe_from_config)
    "teacher": ("teacher_source", "teacher_epochs", "teacher_batch_size", "teacher_lr", "teacher_weight_decay",
                "teacher_warmup", "crop_padding", "subset_seed"),
    # what the maps depend on besides the teacher, the data and their arithmetic
    "maps": ("ig_steps", "ig_method", "ig_baseline", "ig_target", "map_views", "map_source"),
    # how the maps are computed: ig_chunk changes only the speed (bit-identical maps, tested); ig_precision
    # enters the keys as its resolved value (igkd_lib.attribution.maps.maps_precision)
    "maps_arithmetic": ("ig_chunk", "ig_precision"),
    "student": ("student_cut", "student_epochs", "student_batch_size", "student_lr", "student_dropout",
                "student_normalise", "crop_padding", "flip", "train_compile", "bn_recalibrate"),
    # the evaluation's batch: speed only, but the members of one wide group evaluate together
    "evaluation": ("eval_batch_size",),
    "method": ("alpha", "p"),  # which of the method's parts are on (igkd_lib.training.student.method_config)
    "kd": ("temperature", "teacher_logits"),
    "overlay": ("blend", "exponent_low", "exponent_high", "map_alignment", "shuffle_maps"),
}
# Fields left out of a key at these values, so the keys made before the field existed still hold.
KEY_DEFAULTS_LEFT_OUT = {"map_views": "clean", "map_source": "ig", "bn_recalibrate": False}


def group_fields(*groups: str) -> tuple[str, ...]:
    """The fields of ``groups`` (names of :data:`FIELD_GROUPS`), in order, each once."""
    unknown = [g for g in groups if g not in FIELD_GROUPS]
    if unknown:
        raise ValueError(f"groups={unknown!r} are not allowed; allowed: {', '.join(FIELD_GROUPS)}")
    return tuple(dict.fromkeys(name for group in groups for name in FIELD_GROUPS[group]))


class ConfigError(ValueError):
    """A configuration value that is not allowed; the message names the field and what is allowed."""


def default_cache_dir() -> str:
    """``$IGKD_CACHE`` if set, else ``~/.cache/igkd``."""
    return os.environ.get("IGKD_CACHE", str(Path.home() / ".cache" / "igkd"))


@dataclass(frozen=True)
class Config:
    """Every knob of the pipeline. Build one with :func:`make_config`, never by hand."""

    profile: str = "quick"
    device: str = "auto"
    num_threads: int = 0  # 0: leave torch's default
    cache_dir: str = field(default_factory=default_cache_dir)
    # data
    data_source: str = "auto"
    data_root: str = ""
    n_train: int = 50_000
    n_test: int = 10_000
    subset_seed: int = 0
    # seeds of repeated student runs
    seeds: tuple = (0,)
    # a chapter's run that is neither in the run cache nor committed under results/<profile>/: trained (True), or
    # left out of the chapter's tables and listed as missing (False: the paper profile, which reads what GPU
    # windows committed; set it to true to train the missing runs, e.g. more seeds on a GPU)
    train_missing: bool = True
    # teacher
    teacher_source: str = "shipped"
    teacher_epochs: int = 100
    teacher_batch_size: int = 256
    teacher_lr: float = 1e-2
    teacher_weight_decay: float = 1e-2
    teacher_warmup: float = 0.3
    # which engine trains a teacher: the epoch loop (igkd_lib.training.teacher), or one CUDA graph a step
    # (igkd_lib.training.teacher_graph: the same draws, the same run); a window's probe may choose
    teacher_engine: str = "loop"
    # student
    student_cut: int = 5
    student_epochs: int = 100
    student_batch_size: int = 64
    student_lr: float = 1e-3
    student_dropout: float = 0.0  # the official student has none (this book's earlier default: 0.2)
    student_normalise: bool = False  # the official student takes raw [0, 1] pixels
    crop_padding: int = 4
    flip: bool = True
    # student step: eager ("none"), torch.compile, or torch.compile with CUDA-graph capture (CUDA only);
    # a failing choice falls back to eager and the run records what ran
    train_compile: str = "none"
    # how the wide trainer runs a group (igkd_lib.training.wide_model): grouped kernels, the members one by one,
    # or auto (serial on CPU, grouped elsewhere; a window's probe may choose, igkd_lib.campaign.engine)
    wide_layout: str = "auto"
    # which engine trains a group: the wide trainer (igkd_lib.training.wide), or the graph engine
    # (igkd_lib.training.graph_step: the teacher's logits from a table, the whole step one CUDA graph); a window's
    # probe may choose
    train_engine: str = "wide"
    eval_batch_size: int = 500
    bn_recalibrate: bool = False  # recompute BatchNorm statistics on clean training images before each evaluation
    # integrated gradients
    ig_steps: int = 50
    ig_method: str = "gausslegendre"
    ig_baseline: str = "black"
    ig_target: str = "label"
    ig_chunk: int = 0  # interpolation points per forward/backward; 0: the device's (igkd_lib.attribution.ig.AUTO_CHUNK)
    ig_precision: str = "auto"  # the maps' arithmetic: auto = bf16 autocast on CUDA, fp32 elsewhere
    # distillation and overlay
    temperature: float = 2.5
    alpha: float = 0.01
    p: float = 0.1
    blend: float = 0.5
    exponent_low: float = 1.0
    exponent_high: float = 2.0
    map_alignment: str = "aligned"
    map_views: str = "clean"
    map_source: str = "ig"  # the overlay maps: the teacher's IG (paper) or a control (igkd_lib.attribution.sources)
    shuffle_maps: bool = False
    teacher_logits: str = "online"

    def replace(self, **overrides: Any) -> "Config":
        """A validated copy with some fields changed (same rules as :func:`make_config`)."""
        return make_config(self.profile, self, **overrides)

    def plan(self, name: str, device_type: str | None = None):
        """The profile's ``name`` plan (:data:`PLANS`); ``device_type="cpu"`` picks its ``{name}_cpu`` where it
        has one."""
        plans = PLANS[self.profile]
        if device_type == "cpu" and f"{name}_cpu" in plans:
            return plans[f"{name}_cpu"]
        if name not in plans:
            raise ValueError(f"name={name!r} is not allowed; allowed: "
                             f"{', '.join(k for k in plans if not k.endswith('_cpu'))}")
        return plans[name]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key_fields(self, *names: str) -> dict:
        """The named fields, for cache keys."""
        return {name: getattr(self, name) for name in names}

    def group_key(self, *groups: str) -> dict:
        """The fields of ``groups`` (:data:`FIELD_GROUPS`) for a cache key, those at a
        :data:`KEY_DEFAULTS_LEFT_OUT` value left out."""
        missing = object()
        return {name: getattr(self, name) for name in group_fields(*groups)
                if KEY_DEFAULTS_LEFT_OUT.get(name, missing) != getattr(self, name)}


# smoke and quick recompute BatchNorm's running statistics before each evaluation (bn_recalibrate):
# in runs of a few hundred steps the running averages lag the weights (igkd_lib.training.batchnorm); the
# paper did not, so `paper` leaves it off. ig_chunk is left to the device (0) on every profile.
_SMOKE = dict(
    n_train=256, n_test=200, seeds=(0,), teacher_epochs=1, teacher_batch_size=64,
    student_epochs=1, student_batch_size=64, ig_steps=8, eval_batch_size=200, bn_recalibrate=True,
)
# quick: what the default `make book` runs, sized for a 2-core CPU, set-up included (the README's "Where the time
# goes" has the measurements behind each choice). A student trains at ~150 images/s at batch 32 (twice the steps
# of the paper's 64 for the same images); next to a training image, the teacher's forward for KD costs 0.31, an
# evaluated test image 0.38 and a BatchNorm-recalibration image 0.42. The book trains four distinct runs on quick
# (chapter 4's four methods at seed 0; chapters 5 and 8 and the summary pages read them from the run cache); one
# seed, 8 IG points (Gauss-Legendre), evaluation in batches of 128 (cheaper per image on a CPU than 500).
# Three epochs: baseline seed 0 reached 32.6, 37.4, 42.9 % after epochs 1-3 (a fourth gave 42.2 % for ~90 s more,
# eight reached 48.1 % for ~5 more minutes).
_QUICK = dict(
    n_train=2048, n_test=1000, seeds=(0,), teacher_epochs=3, teacher_batch_size=128,
    student_epochs=3, student_batch_size=32, ig_steps=8, eval_batch_size=128, bn_recalibrate=True,
)
_PAPER = dict(
    n_train=50_000, n_test=10_000, seeds=tuple(range(10)), teacher_source="shipped",
    teacher_epochs=100, teacher_batch_size=256, student_epochs=100, student_batch_size=64,
    ig_steps=50, eval_batch_size=1000, bn_recalibrate=False, train_missing=False,
)
PROFILES: dict[str, dict] = {"smoke": _SMOKE, "quick": _QUICK, "paper": _PAPER}

# What each profile runs beyond the fields above, read with Config.plan(name): the chapters' grids and
# the benchmarks' sizes, so no module outside this one branches on a profile's name.
# ablation: chapter 5's grids: small on smoke; on quick the paper's values only, no control (every run
# is chapter 4's: a quick run costs a minute or more, and the default book stays within 12 minutes);
# the full grid on paper. Values equal to the paper's share the default run with chapter 4.
# latency: the sweep's batch sizes, repeats per batch size, warm-up, cuts, the variants' repeats (on a
# CPU the paper profile uses latency_cpu: warm-up 5 and 100 batch-1 repeats keep the teacher's IQR under
# 10% of its median on a quiet CPU; batch 256, 4 s a call on 2 cores, is left to GPUs), whether
# torch.compile variants are built and whether the tables are saved under results/latency; the config's
# own student_cut is always swept too.
# studies: chapter 8's sizes: the overlay sources, teacher signals and student cuts trained (one seed on
# smoke and quick; runs that coincide with chapter 4's are read from the run cache), probe images for
# the agreement, test images and severities for the robustness (paper on a CPU, studies_cpu: 32 probe images, since IG
# at 50 points costs ~0.3 s per image and model there, and 300 corrupted test images at the committed study's
# severities 1, 3, 5: 1,000 took 209 s for the authors' three students; those students on the whole test set are
# chapter 7's committed study, results/robustness).
# maps: chapter 2's maps: of the whole training subset (sample None), or of its first `sample` images (the paper
# profile on a CPU, maps_cpu: 50,000 maps x 50 points take hours there; the full cache is a GPU window's work).
# paper_teacher: the GPU-trained paper teacher is this profile's teacher where installed.
# commit_results: a full `python -m igkd_lib run` merges its rows into results/paper/runs.csv.
_CPU_LATENCY = dict(batch_sizes=(1, 8, 64), repeats={1: 100, 8: 20, 64: 5}, warmup={1: 5, 8: 2, 64: 1},
                    cuts=STUDENT_CUTS, variant_repeats=40, compile=True, save=True)
PLANS: dict[str, dict] = {
    "smoke": dict(
        ablation=dict(p_values=(0.0, 0.1), temperatures=(2.5, 5.0), alphas=(0.01,), blends=(0.5, 0.75), seeds=(0,),
                      controls=("shuffled", "official", "logits"), faults="ends"),
        latency=dict(batch_sizes=(1, 8), repeats={1: 10, 8: 5}, warmup=2, cuts=(17,), variant_repeats=10,
                     compile=False, save=False),
        studies=dict(sources=("ig", "sobel", "constant"), signals=TEACHER_LOGITS, cuts=(5, 17), n_probe=8,
                     n_robust=100, severities=(5,)),
        maps=dict(sample=None), paper_teacher=False, commit_results=False),
    "quick": dict(
        ablation=dict(p_values=(0.0, 0.1), temperatures=(2.5,), alphas=(0.01,), blends=(0.5,), seeds=(0,),
                      controls=(), faults="none"),
        # quick trains no source or signal run of its own (the ig/online run is chapter 4's): one costs as much
        # as one of chapter 4's four, which the 12-minute book cannot afford (_QUICK); -p sources '["ig","sobel"]'
        # or -p signals '["online","online_clean"]' runs them. Its one new student is cut 17 (2 k parameters, a
        # small fraction of a cut-5 run), trained alone and with KD + IG for the compression figure.
        # 32 probe images and 100 corrupted test images per version: chapter 8's studies on quick are a labelled
        # demonstration (the evidence is the committed paper-scale study of chapter 7); the latency sweep times the
        # four cuts of chapter 6's size table (paper's latency_cpu times all eight)
        studies=dict(sources=("ig",), signals=("online",), cuts=(5, 17), n_probe=32, n_robust=100, severities=(3,)),
        latency=dict(_CPU_LATENCY, cuts=(3, 5, 9, 17)), maps=dict(sample=None), paper_teacher=False,
        commit_results=False),
    "paper": dict(
        ablation=dict(p_values=(0.0, 0.1, 0.25, 0.5), temperatures=(1.5, 2.5, 4.0), alphas=(0.001, 0.01, 0.1),
                      blends=(0.25, 0.5, 0.75), seeds=(0, 1, 2), controls=("shuffled", "official", "logits"),
                      faults="full"),
        latency=dict(batch_sizes=(1, 8, 64, 256), repeats={1: 200, 8: 100, 64: 50, 256: 30}, warmup=10,
                     cuts=STUDENT_CUTS, variant_repeats=200, compile=True, save=True),
        studies=dict(sources=SOURCE_STUDY, signals=TEACHER_LOGITS, cuts=STUDENT_CUTS, n_probe=500, n_robust=10_000,
                     severities=(1, 2, 3, 4, 5)),
        studies_cpu=dict(sources=SOURCE_STUDY, signals=TEACHER_LOGITS, cuts=STUDENT_CUTS, n_probe=32, n_robust=300,
                         severities=(1, 3, 5)),
        latency_cpu=_CPU_LATENCY, maps=dict(sample=None), maps_cpu=dict(sample=256), paper_teacher=True,
        commit_results=True),
}


def make_config(profile: str = "quick", _base: Config | None = None, /, **overrides: Any) -> Config:
    """Build a validated :class:`Config` from a profile name and overrides by field name.

    Overrides may be given as strings (from the CLI or papermill); they are converted to the
    field's type. An unknown field, a wrong type or a value out of range raises :class:`ConfigError`.
    """
    if profile not in PROFILES:
        raise ConfigError(f"profile={profile!r} is not a profile; allowed: {', '.join(PROFILES)}")
    for name, why in _NOT_OVERRIDABLE.items():
        if name in overrides:
            raise ConfigError(f"{name}={overrides[name]!r} cannot be overridden; {why}")
    names = {f.name for f in fields(Config)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown config field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(names))}")
    values = dict(PROFILES[profile]) if _base is None else _base.to_dict()
    values["profile"] = profile
    hints = typing.get_type_hints(Config)
    for name, value in overrides.items():
        values[name] = _coerce(name, value, hints[name])
    if _base is None:
        for name in values:
            values[name] = _coerce(name, values[name], hints[name])
    config = Config(**values)
    _validate(config)
    return config


def parse_override(text: str) -> tuple[str, str]:
    """Split ``key=value`` from ``--set``; the value is converted later by :func:`make_config`."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _coerce(name: str, value: Any, hint: Any) -> Any:
    kind = {int: "an integer", float: "a number", bool: "true or false", str: "a string", tuple: "a list of integers"}
    try:
        if hint is bool:
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.lower() in ("true", "1", "yes")
            if isinstance(value, bool):
                return value
            raise TypeError
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value) if not isinstance(value, str) else int(value.strip())
        if hint is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value.strip() if isinstance(value, str) else value)
        if hint is tuple:
            if isinstance(value, str):
                value = (json.loads(value) if value.strip().startswith("[")
                         else [v for v in value.split(",") if v.strip()])
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = [value]
            if any(isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()) for v in value):
                raise TypeError  # 1.5 is not a seed (int() would truncate it silently)
            items = tuple(int(v) for v in value)
            return items
        if hint is str:
            if not isinstance(value, (str, os.PathLike)):
                raise TypeError
            return str(value)
    except (TypeError, ValueError, json.JSONDecodeError):
        pass
    raise ConfigError(f"{name}={value!r} has the wrong type; expected {kind.get(hint, hint)}")


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    require(ok, name, value, allowed, ConfigError)


def _validate(c: Config) -> None:
    for f in fields(Config):  # inf passes every comparison below; it can only be a mistake
        value = getattr(c, f.name)
        _check(not isinstance(value, float) or math.isfinite(value), f.name, value, "a finite number")
    choices = dict(
        device=DEVICES, data_source=DATA_SOURCES, ig_method=IG_METHODS, ig_baseline=IG_BASELINES,
        ig_target=IG_TARGETS, map_alignment=MAP_ALIGNMENTS, map_views=MAP_VIEWS, teacher_logits=TEACHER_LOGITS,
        teacher_source=TEACHER_SOURCES, ig_precision=IG_PRECISIONS, map_source=MAP_SOURCES,
        train_compile=TRAIN_COMPILES, wide_layout=WIDE_LAYOUTS, train_engine=TRAIN_ENGINES,
        teacher_engine=TEACHER_ENGINES,
    )
    for name, allowed in choices.items():
        value = getattr(c, name)
        _check(value in allowed or (name == "device" and re.fullmatch(r"cuda:\d+", value) is not None), name, value,
               ", ".join(allowed) + (", cuda:N (N a GPU index)" if name == "device" else ""))
    _check(c.student_cut in STUDENT_CUTS, "student_cut", c.student_cut, ", ".join(map(str, STUDENT_CUTS)))
    _check(1 <= c.n_train <= 50_000, "n_train", c.n_train, "an integer in [1, 50000]")
    _check(1 <= c.n_test <= 10_000, "n_test", c.n_test, "an integer in [1, 10000]")
    for name in ("teacher_epochs", "student_epochs", "teacher_batch_size", "student_batch_size",
                 "eval_batch_size", "ig_steps"):
        _check(getattr(c, name) >= 1, name, getattr(c, name), "an integer >= 1")
    for name in ("teacher_batch_size", "student_batch_size", "eval_batch_size"):  # one batch of the whole set at most
        _check(getattr(c, name) <= 50_000, name, getattr(c, name), "an integer in [1, 50000]")
    _check(0 <= c.ig_chunk <= 100_000, "ig_chunk", c.ig_chunk, "an integer in [0, 100000] (0: the device's default)")
    _check(c.ig_steps <= MAX_IG_STEPS, "ig_steps", c.ig_steps, f"an integer in [1, {MAX_IG_STEPS}]")
    _check(c.ig_method != "riemann_trapezoid" or c.ig_steps >= 2, "ig_steps", c.ig_steps,
           "an integer >= 2 with ig_method='riemann_trapezoid' (the rule needs both ends)")
    for name in ("num_threads", "crop_padding", "subset_seed"):
        _check(getattr(c, name) >= 0, name, getattr(c, name), "an integer >= 0")
    _check(c.num_threads <= 1024, "num_threads", c.num_threads, "an integer in [0, 1024] (0: torch's default)")
    _check(c.crop_padding <= 32, "crop_padding", c.crop_padding, "an integer in [0, 32] (pixels around the image)")
    _check(c.subset_seed < 2**31, "subset_seed", c.subset_seed, "an integer in [0, 2**31)")
    _check(0.0 <= c.student_dropout < 1.0, "student_dropout", c.student_dropout, "a number in [0, 1)")
    for name in ("alpha", "p", "blend", "teacher_warmup"):
        _check(0.0 <= getattr(c, name) <= 1.0, name, getattr(c, name), "a number in [0, 1]")
    _check(0 < c.temperature <= MAX_TEMPERATURE, "temperature", c.temperature, f"a number in (0, {MAX_TEMPERATURE:g}]")
    for name in ("teacher_lr", "student_lr"):
        _check(0 < getattr(c, name) <= MAX_LR, name, getattr(c, name), f"a number in (0, {MAX_LR:g}]")
    _check(0 <= c.teacher_weight_decay <= 1, "teacher_weight_decay", c.teacher_weight_decay, "a number in [0, 1]")
    _check(0 < c.exponent_low <= c.exponent_high <= MAX_EXPONENT, "exponent_low/exponent_high",
           (c.exponent_low, c.exponent_high), f"0 < exponent_low <= exponent_high <= {MAX_EXPONENT:g}")
    _check(len(c.seeds) >= 1 and all(0 <= s < 2**31 for s in c.seeds), "seeds", c.seeds,
           "a non-empty list of integers in [0, 2**31)")
    _check(len(set(c.seeds)) == len(c.seeds), "seeds", c.seeds, "distinct seeds (a repeated seed repeats the same run)")
    _check(bool(c.cache_dir), "cache_dir", c.cache_dir, "a directory path")
