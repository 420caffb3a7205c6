"""The GPU trainer's targets, read from what one window measured: kept in ``window.json`` and printed last.

The issue's bar for the GPU path: the students' graph engine at >= 60,000 kd_ig students·images/s, the teacher's
graph engine at >= 40,000 images/s (both from the probe, each design timed on its second epoch), a probe of at
most 60 s, and at most 10 s of warm-up before a trainer's first steady epoch (its first epoch in the window
against the median of its later ones: cuDNN autotuning, graph capture, the teacher table's first entries). A
figure the window did not measure is ``None`` ("not measured"), never a guess.
"""
from __future__ import annotations

import statistics

__all__ = ["TARGETS", "target_rows", "target_lines", "warmup_s", "readable_rows"]

# (figure, comparison, target): the figures every window reports
TARGETS = (
    ("students' graph engine, kd_ig students·images/s (probe, second epoch)", ">=", 60_000.0),
    ("teacher's graph engine, images/s (probe, second epoch)", ">=", 40_000.0),
    ("probe (s)", "<=", 60.0),
    ("students: warm-up before the first steady epoch, worst group (s)", "<=", 10.0),
    ("teacher: warm-up before the first steady epoch (s)", "<=", 10.0),
)


def warmup_s(seconds: list) -> float | None:
    """The first epoch's seconds minus the median of the later ones; None with fewer than two epochs."""
    if len(seconds) < 2:
        return None
    return float(seconds[0] - statistics.median(seconds[1:]))


def _probe_rates(probe: dict | None) -> tuple[float | None, float | None]:
    """(best graph-engine students·images/s, teacher graph engine images/s) among the probe's rows."""
    if not probe:
        return None, None
    graphs = [row["students_images_per_s"] for row in probe.get("engines") or []
              if str(row.get("design", "")).startswith("graph engine")]
    teachers = [row["images_per_s"] for row in probe.get("teacher") or [] if row.get("engine") == "graph"]
    return (max(graphs) if graphs else None), (teachers[0] if teachers else None)


def target_rows(meta: dict, runs: dict, spent: dict) -> list[dict]:
    """One row per :data:`TARGETS` figure: value (None: not measured here), target, met (None when not measured)."""
    students, teacher = _probe_rates(meta.get("probe"))
    groups = [warmup_s([row["seconds"] for row in run["log"]]) for run in runs.values()]
    groups = [value for value in groups if value is not None]
    teacher_epochs = (meta.get("teacher") or {}).get("epoch_seconds") or []
    values = (students, teacher, spent.get("probe"), max(groups) if groups else None, warmup_s(teacher_epochs))
    rows = []
    for (figure, comparison, target), value in zip(TARGETS, values):
        met = None if value is None else (value >= target if comparison == ">=" else value <= target)
        rows.append({"figure": figure, "value": value, "target": f"{comparison} {target:,.0f}", "met": met})
    return rows


def target_lines(rows: list[dict], tiny: bool) -> list[str]:
    """The rows as lines, the bar named as a GPU's (a tiny CPU rehearsal only exercises the path)."""
    lines = ["", "the GPU trainer's targets" + (" (a CPU rehearsal: figures of this machine)" if tiny else ""),
             "-" * 52]
    for row in rows:
        value = "not measured" if row["value"] is None else f"{row['value']:,.1f}"
        verdict = "" if row["met"] is None else ("  met" if row["met"] else "  not met")
        lines.append(f"{row['figure']}: {value} (target {row['target']}){verdict}")
    return lines


def readable_rows(rows) -> list[dict]:
    """The rows of a returned ``window.json`` that have the form :func:`target_rows` writes (it came from elsewhere:
    anything else is left out, never printed as a figure)."""
    def readable(row) -> bool:
        return (isinstance(row, dict) and isinstance(row.get("figure"), str) and isinstance(row.get("target"), str)
                and (row.get("value") is None or (isinstance(row["value"], (int, float))
                                                  and not isinstance(row["value"], bool)))
                and row.get("met") in (None, True, False))

    return [row for row in rows if readable(row)] if isinstance(rows, list) else []
