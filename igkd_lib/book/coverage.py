"""What a chapter's figures rest on: the runs of each method, where they were read from, and the runs that are
missing (neither in the run cache nor committed under ``results/<profile>/``, and not trained because the
config's ``train_missing`` is false, as on the paper profile), with what training them would cost here.

``runs`` is a table of :func:`igkd_lib.evidence.experiments.run_grid`; its ``attrs["missing"]`` lists the runs left
out.
"""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from igkd_lib.config import Config

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["seed_ranges", "runs_line", "missing_table", "missing_note", "show_coverage", "students_line"]


def seed_ranges(seeds) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``."""
    seeds, parts = sorted(int(s) for s in seeds), []
    for seed in seeds:
        if parts and seed == parts[-1][1] + 1:
            parts[-1][1] = seed
        else:
            parts.append([seed, seed])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def runs_line(runs: pd.DataFrame) -> str:
    """One line: how many runs the chapter's figures rest on, per method (and variant), and where they came from."""
    from igkd_lib.evidence.experiments import RUN_CACHE

    if runs.empty:
        return "these figures rest on no run yet"
    keys = ["variant", "method"] if "variant" in runs and runs["variant"].nunique() > 1 else ["method"]
    counts = runs.groupby(keys, sort=False)["seed"].nunique()
    per = ", ".join(f"{' '.join(str(k) for k in (key if isinstance(key, tuple) else (key,)))}: {n}"
                    for key, n in counts.items())
    origins = runs["origin"].fillna(RUN_CACHE) if "origin" in runs else [RUN_CACHE] * len(runs)
    where = ", ".join(f"{n} {o}" for o, n in Counter(origin.split(" (")[0] for origin in origins).items())
    return f"these figures rest on {len(runs)} run(s) (seeds per arm: {per}; {where})"


def missing_table(runs: pd.DataFrame) -> pd.DataFrame:
    """variant, method, the missing seeds and how many: one row per arm that lacks runs."""
    import pandas as pd

    missing = pd.DataFrame(runs.attrs.get("missing", []), columns=["variant", "method", "seed"])
    if missing.empty:
        return pd.DataFrame(columns=["variant", "method", "missing seeds", "n missing"])
    grouped = missing.groupby(["variant", "method"], sort=False)["seed"]
    return pd.DataFrame([{"variant": v, "method": m, "missing seeds": seed_ranges(s), "n missing": len(s)}
                         for (v, m), s in grouped])


_RATES: dict = {}


def _rate(config: Config) -> float:
    """One student's images/s on this device, measured once per process and student shape."""
    from igkd_lib.bench.campaign import single_rate

    key = (config.device, config.student_cut, config.student_batch_size, config.n_train, config.profile)
    if key not in _RATES:
        _RATES[key] = single_rate(config)
    return _RATES[key]


def missing_note(config: Config, runs: pd.DataFrame, rate: float | None = None) -> str:
    """What the queue still lacks for this chapter and what training it here would take, or "" when nothing is
    missing. ``rate``: images/s of one student on this device (measured, :func:`igkd_lib.bench.campaign.single_rate`,
    when not given)."""
    missing = runs.attrs.get("missing", [])
    if not missing:
        return ""
    from igkd_lib.provenance import device_name, resolve_device

    if rate is None:
        rate = _rate(config)

    images = len(missing) * config.student_epochs * config.n_train
    return (f"{len(missing)} run(s) of this chapter are not in the run cache nor committed under "
            f"results/{config.profile}/ and were not trained (train_missing={config.train_missing}). "
            f"Training them here, with overrides={{'train_missing': True}}: {len(missing)} x {config.student_epochs} "
            f"epochs x {config.n_train:,} images at {rate:,.0f} images/s (one student on "
            f"{device_name(resolve_device(config.device))}, measured just now) is about {images / rate / 3600:,.1f} "
            "hours; the GPU campaign (README, \"Runs on a GPU\") trains them in windows.")


def show_coverage(config: Config, runs: pd.DataFrame, what: str, name: str) -> None:
    """Print what ``what``'s figures rest on (:func:`runs_line`) and, where runs are missing, show the numbered
    table of them (label ``name``) with :func:`missing_note` under it."""
    from igkd_lib.book.notebook import table_note

    print(f"{what}: {runs_line(runs)}")
    if runs.attrs.get("missing"):
        table_note(missing_table(runs), f"Runs of {what} that the queue still lacks", name,
                   missing_note(config, runs))


def students_line(students: dict, missing=()) -> str:
    """One line: which students the agreement and robustness studies examine, and which runs' students are not on
    this machine (``missing``: (method, seed) from :func:`igkd_lib.evidence.studies.study_students`)."""
    line = f"these studies examine {len(students)} student(s): {', '.join(students) or 'none'}"
    if not missing:
        return line
    by_method: dict = {}
    for method, seed in missing:
        by_method.setdefault(method, []).append(seed)
    absent = "; ".join(f"{method} seeds {seed_ranges(seeds)}" for method, seeds in by_method.items())
    return (f"{line}. Not on this machine: the students of {len(missing)} run(s) ({absent}); a committed run keeps its "
            "row and log, not its weights, so their maps and corrupted-image accuracies are not measured here "
            "(overrides={'train_missing': True} trains them here)")
