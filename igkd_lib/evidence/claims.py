"""The paper's claims, each with a verdict from one source of evidence: supported, contradicted, inconclusive,
not tested.

A comparison is a Welch difference of means with its 95% interval, p-value and the smallest difference
the design detects at 80% power (:func:`igkd_lib.evidence.stats.welch_difference`). Verdicts over the family of
tested comparisons of one source use Holm-adjusted p-values:

- **supported**: Holm p < 0.05 and the difference has the paper's sign;
- **contradicted**: Holm p < 0.05 the other way, or the whole 95% interval lies below the smallest
  effect of interest (:data:`SMALLEST_EFFECT`, 0.2 points) in the paper's direction;
- **inconclusive**: otherwise; **not tested**: fewer than two runs in an arm, or no such runs.

0.2 points is 20 of CIFAR-10's 10,000 test images: one evaluation of a ~92% student already has a
binomial standard error of about 0.27 points, so a smaller gain cannot be told from which test images
happen to be hard, and no practical claim rests on it. Absolute claims compare like with like (a mean
with the authors' ten-run mean; a best of n with a best of n at the same n) and only on canonical
CIFAR-10 (:data:`ABSOLUTE_MARGIN`). The same function feeds the results summary and the findings page
(:func:`igkd_lib.evidence.claim_sources.evidence`); ``python -m igkd_lib claims --source official|paper|quick``
prints one source.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from igkd_lib.config import METHODS
from igkd_lib.evidence.reference import (
    PAPER_DEFAULTS,
    PAPER_LATENCY_MS,
    PAPER_REPORTED,
    PAPER_TEACHER,
)
from igkd_lib.evidence.stats import holm, interaction, welch_difference, wilson_interval

__all__ = ["VERDICTS", "SMALLEST_EFFECT", "ABSOLUTE_MARGIN", "LEVEL", "COLUMNS", "claims_table", "official_claims",
           "size_claim", "latency_claim", "variant_overrides", "teacher_claim", "checkpoint_claim", "power_by_source",
           "checked_runs", "rows_table"]

VERDICTS = ("supported", "contradicted", "inconclusive", "not tested")
SMALLEST_EFFECT = 0.2  # points of accuracy
ABSOLUTE_MARGIN = 0.5  # points: an absolute number is reproduced when the 95% CI of ours - theirs lies within this
LEVEL = 0.05
COLUMNS = ["claim", "paper", "source", "n", "difference", "ci_low", "ci_high", "p", "p_holm", "detectable",
           "verdict", "evidence"]
_KNOBS = {"alpha": 0.0, "p": 0.0, "temperature": PAPER_DEFAULTS["temperature"], "blend": PAPER_DEFAULTS["blend"],
          "map_alignment": "aligned", "shuffle_maps": False, "map_views": "clean", "teacher_logits": "online",
          "map_source": "ig", "student_cut": 5}
_FROM_VARIANT = ("map_source", "student_cut")  # knobs a run row records only in its variant label (campaign studies)
_METHOD_KNOBS = {"baseline": {}, "kd": {"alpha": PAPER_DEFAULTS["alpha"]}, "ig": {"p": PAPER_DEFAULTS["p"]},
                 "kd_ig": {"alpha": PAPER_DEFAULTS["alpha"], "p": PAPER_DEFAULTS["p"]}}
_R = PAPER_REPORTED
_COMPARISONS = (
    ("KD beats the student trained alone", "kd", "baseline"),
    ("IG overlay beats the student trained alone", "ig", "baseline"),
    ("KD + IG beats the student trained alone", "kd_ig", "baseline"),
    ("KD + IG beats KD alone", "kd_ig", "kd"),
    ("KD + IG beats the IG overlay alone", "kd_ig", "ig"),
)
_NO_RUNS = "no runs of this kind in this source"


# --------------------------------------------------------------------------- selecting runs
def variant_overrides(variant) -> dict:
    """``"student_cut=7, p=0.1"`` -> {"student_cut": "7", "p": "0.1"}
    (:func:`igkd_lib.evidence.experiments.variant_label`)."""
    if not isinstance(variant, str) or variant in ("default", ""):
        return {}
    return dict(part.split("=", 1) for part in variant.split(", ") if "=" in part)


def _with_knobs(runs: pd.DataFrame) -> pd.DataFrame:
    """Fill knob columns a table lacks (the official file has none), or values it lacks, with the paper's settings;
    the overlay source and the student cut of campaign study runs come from their variant label."""
    runs = runs.copy()
    for name in _FROM_VARIANT:
        if name not in runs.columns and "variant" in runs.columns:
            runs[name] = [variant_overrides(v).get(name) for v in runs["variant"]]
    for name, default in _KNOBS.items():
        fill = pd.Series([_METHOD_KNOBS.get(m, {}).get(name, default) for m in runs["method"]], index=runs.index)
        runs[name] = runs[name].where(runs[name].notna(), fill) if name in runs.columns else fill
    return runs


def _dedupe(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per run: a run shared by two sweeps (kd_ig at p = 0 is the KD run) counts once per selection."""
    if "run_key" in rows.columns and rows["run_key"].notna().all():
        return rows.drop_duplicates("run_key")
    keys = [c for c in ("seed", "alpha", "p", "temperature", "blend", "map_alignment", "shuffle_maps", "map_views",
                        "teacher_logits") if c in rows]
    return rows.drop_duplicates(keys) if len(keys) > 1 else rows


def _paper_settings(runs: pd.DataFrame, free=()) -> pd.Series:
    """Rows whose knobs are the paper's, except the ``free`` ones (knobs a run does not use may take any value)."""
    d = PAPER_DEFAULTS
    kd = (runs["alpha"] == 0) | ((("alpha" in free) | (runs["alpha"] == d["alpha"])) &
                                 (("temperature" in free) | (runs["temperature"] == d["temperature"])))
    maps = (runs["p"] == 0) | ((("p" in free) | (runs["p"] == d["p"])) &
                               (("blend" in free) | (runs["blend"] == d["blend"])))
    kd &= (runs["alpha"] == 0) | (runs["teacher_logits"] == "online")
    controls = (runs["map_alignment"] == "aligned") & (runs["shuffle_maps"].astype(str) != "True") & \
        (runs["map_views"] == "clean")
    student = (runs["student_cut"].astype(int) == 5) & ((runs["p"] == 0) | (runs["map_source"] == "ig"))
    return kd & maps & student & (controls | (runs["p"] == 0))


def _arms(runs: pd.DataFrame) -> dict:
    """Final accuracies of the four methods at the paper's settings, each run once."""
    keep = _paper_settings(runs)
    arms = {}
    for method, knobs in _METHOD_KNOBS.items():
        uses = (runs["alpha"] > 0) == ("alpha" in knobs)
        uses &= (runs["p"] > 0) == ("p" in knobs)
        arms[method] = _dedupe(runs[keep & uses]).final_acc.to_numpy(float)
    return arms


# --------------------------------------------------------------------------- one claim each
def _row(claim: str, paper: str, source: str, **fields) -> dict:
    return {"claim": claim, "paper": paper, "source": source, **{c: fields.get(c, math.nan) for c in COLUMNS[3:]},
            **{k: v for k, v in fields.items() if k in ("n", "verdict", "evidence", "_direction")}}


def _difference_row(claim: str, paper: str, source: str, a, b, names=("a", "b"), direction: int = 1) -> dict:
    d = welch_difference(a, b)
    if min(d["n_a"], d["n_b"]) == 0:
        return _row(claim, paper, source, n="0", verdict=VERDICTS[3], evidence=_NO_RUNS)
    text = (f"{names[0]} {d['mean_a']:.2f} (n={d['n_a']}) − {names[1]} {d['mean_b']:.2f} (n={d['n_b']}) = "
            f"{d['difference']:+.2f}")
    if not math.isnan(d["ci_low"]):
        text += (f" [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]; detectable at 80% power: "
                 f"{d['detectable']:.2f}")
    return _row(claim, paper, source, n=f"{d['n_a']} vs {d['n_b']}", evidence=text or d["note"], _direction=direction,
                **{k: d[k] for k in ("difference", "ci_low", "ci_high", "p", "detectable")})


def _interaction_row(arms: dict, source: str) -> dict:
    best = _R["kd_ig"] - _R["kd"] - _R["ig"] + _R["baseline"]
    claim, paper = "KD and IG combine sub-additively (interaction < 0)", f"{best:+.2f} on best runs"
    if min(len(v) for v in arms.values()) == 0:
        return _row(claim, paper, source, n="0", verdict=VERDICTS[3], evidence=_NO_RUNS)
    d = interaction(arms)
    n = "/".join(str(len(arms[m])) for m in METHODS)
    text = f"KD+IG − KD − IG + baseline on means = {d['difference']:+.2f}"
    if not math.isnan(d["ci_low"]):
        text += f" [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]; detectable at 80% power: {d['detectable']:.2f}"
    return _row(claim, paper, source, n=n, evidence=text, _direction=-1,
                **{k: d[k] for k in ("difference", "ci_low", "ci_high", "p", "detectable")})


def _best_setting_row(rows: pd.DataFrame, column: str, expected, claim: str, paper: str, source: str) -> dict:
    """``column == expected`` gives the highest mean: expected against the best of the other values."""
    rows = _dedupe(rows).assign(_value=rows[column].astype(str))
    means = rows.groupby("_value")["final_acc"].mean().sort_values(ascending=False)
    if len(means) < 3 or str(expected) not in means.index:  # with two values it is another claim's comparison
        return _row(claim, paper, source, n=str(len(rows)), verdict=VERDICTS[3],
                    evidence=f"{len(means)} value(s) of {column} at the paper's other settings (needs 3 or more)")
    rival = means.index[1] if means.index[0] == str(expected) else means.index[0]
    pick = lambda v: rows.loc[rows["_value"] == v, "final_acc"]  # noqa: E731
    return _difference_row(claim, paper, source, pick(str(expected)), pick(rival),
                           (f"{column}={expected}", f"{column}={rival}"))


def _absolute_row(kd_ig, source: str, canonical: bool, theirs=None) -> dict:
    """The combined student's accuracy: a mean against the authors' ten-run mean, a best of n against their best."""
    claim, paper = "the KD + IG student reaches 92.45% (best of 10 runs)", f"{_R['kd_ig']:.2f}"
    values = np.asarray(kd_ig, dtype=float)
    if len(values) == 0:
        return _row(claim, paper, source, n="0", verdict=VERDICTS[3], evidence=_NO_RUNS)
    best = f"best of {len(values)}: {values.max():.2f}"
    if theirs is None:  # the authors' own file: is the reported number its best of 10?
        verdict = VERDICTS[0] if values.max() >= _R["kd_ig"] - 0.005 else VERDICTS[1]
        mean = welch_difference(values, values)
        return _row(claim, paper, source, n=str(len(values)), verdict=verdict, difference=values.max() - _R["kd_ig"],
                    evidence=f"{best} (like with like); their mean {mean['mean_a']:.2f}")
    if not canonical:
        return _row(claim, paper, source, n=str(len(values)), verdict=VERDICTS[3],
                    evidence=f"{best}, mean {values.mean():.2f}: not comparable in absolute terms (not canonical "
                             "CIFAR-10, or not the paper's recipe)")
    row = _difference_row(claim, paper, source, values, theirs, ("ours", "the authors' ten-run mean"))
    same_n = f"; {best} vs their best of {len(theirs)}: {np.max(theirs):.2f}" if len(values) == len(theirs) else ""
    row["evidence"] += same_n
    row["_absolute"] = True
    return row


def teacher_claim(accuracy: float, n: int, canonical: bool, source: str) -> dict:
    """The teacher's accuracy against the paper's 93.91% (Wilson interval; only on canonical CIFAR-10)."""
    claim, paper = "the teacher (MobileNetV2) reaches 93.91%", f"{PAPER_TEACHER:.2f}"
    acc, low, high = wilson_interval(round(accuracy * n / 100), n)
    text = f"{acc:.2f}% [{low:.2f}, {high:.2f}] on {n} test images (Wilson 95%)"
    if not canonical:
        return _row(claim, paper, source, n=str(n), verdict=VERDICTS[3],
                    evidence=text + "; JPEG offline copy: not comparable with canonical CIFAR-10")
    verdict = VERDICTS[1] if high < PAPER_TEACHER else VERDICTS[0]  # reached or exceeded: supported
    return _row(claim, paper, source, n=str(n), difference=acc - PAPER_TEACHER, ci_low=low - PAPER_TEACHER,
                ci_high=high - PAPER_TEACHER, verdict=verdict, evidence=text)


def size_claim() -> dict:
    """The student's size: the parameters of both models, counted."""
    from igkd_lib import models

    teacher, student = models.count_parameters(models.teacher()), models.count_parameters(models.student(5))
    ratio = teacher / student
    return _row("the student is 4.1x smaller than the teacher", "2.24 M -> 0.54 M parameters",
                "this build (parameter count)", n="-", difference=ratio,
                verdict=VERDICTS[0] if round(ratio, 1) == 4.1 else VERDICTS[1],
                evidence=f"{teacher:,} / {student:,} parameters = {ratio:.2f}x")


def latency_claim(results: dict | None) -> dict:
    """The student's speed-up over the teacher, from chapter 6's committed measurement (batch 1, median).

    Supported when the measured speed-up is within a factor of 2 of the paper's (140 ms / 13 ms = 10.8x).
    """
    paper_ratio = PAPER_LATENCY_MS["teacher"] / PAPER_LATENCY_MS["student"]
    claim, paper = "the student is about 10x faster than the teacher", "140 ms -> 13 ms (10.8x)"
    if results is None:
        return _row(claim, paper, "chapter 6", n="-", verdict=VERDICTS[3], evidence="no committed latency measurement")
    from igkd_lib.bench.latency import student_teacher_ratio

    r = student_teacher_ratio(results["sweep"])
    device = ", ".join(results["provenance"].get("device", [])) if isinstance(
        results["provenance"].get("device"), list) else results["provenance"].get("device", "")
    ok = paper_ratio / 2 <= r["speedup"] <= paper_ratio * 2
    return _row(claim, paper, f"chapter 6 ({results['stem']}, {device})", n="-", difference=r["speedup"],
                verdict=VERDICTS[0] if ok else VERDICTS[1],
                evidence=f"warm median at batch 1: teacher {r['teacher_ms']:.2f} ms, student {r['student_ms']:.2f} ms"
                         f" = {r['speedup']:.2f}x (MACs ratio {r['macs_ratio']:.2f}x); the paper's 10.8x came from "
                         "one cold forward pass")


def checkpoint_claim(measured: pd.DataFrame | None) -> dict:
    """The published students reach the accuracies in their names, on the test images with exact pixels.

    ``measured``: :func:`igkd_lib.evidence.official.measure_checkpoints`. Supported when every name's number lies in
    its file's Wilson 95% interval, contradicted when one lies outside.
    """
    claim, paper = "the published students reach the accuracies in their names", "file names (TestAcc...)"
    source = "the authors' published checkpoints"
    rows = measured[measured["note"] == ""] if measured is not None and len(measured) else pd.DataFrame()
    if rows.empty:
        return _row(claim, paper, source, n="0", verdict=VERDICTS[3], evidence="not measured in this build")
    inside = (rows["canonical_ci_low"] <= rows["reported_acc"]) & (rows["reported_acc"] <= rows["canonical_ci_high"])
    gap = rows["canonical_acc"] - rows["reported_acc"]
    text = (f"{int(inside.sum())} of {len(rows)} names inside their file's interval on "
            f"{int(rows['canonical_n'].iloc[0])} "
            f"exact-pixel test images; measured minus named: {gap.min():+.2f} to {gap.max():+.2f} points")
    return _row(claim, paper, source, n=f"{len(rows)} files", difference=float(gap.mean()),
                verdict=VERDICTS[0] if inside.all() else VERDICTS[1], evidence=text)


# --------------------------------------------------------------------------- verdicts
def _verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """Holm over the rows with a p-value, then each row's verdict (rows that have one keep it)."""
    table = table.copy()
    table["p_holm"] = holm(table["p"].to_numpy(float))
    for i, row in table.iterrows():
        if isinstance(row.get("verdict"), str):
            continue
        table.at[i, "verdict"] = _verdict(row)
        if not math.isnan(row["p"]):
            table.at[i, "evidence"] = f"{row['evidence']}; p={row['p']:.3g}, Holm {table.at[i, 'p_holm']:.3g}"
    return table


def _verdict(row) -> str:
    if math.isnan(row["ci_low"]):
        return VERDICTS[3]
    if row.get("_absolute") is True:  # ours - theirs: equivalence within the margin
        if -ABSOLUTE_MARGIN < row["ci_low"] and row["ci_high"] < ABSOLUTE_MARGIN:
            return VERDICTS[0]
        outside = row["ci_low"] > ABSOLUTE_MARGIN or row["ci_high"] < -ABSOLUTE_MARGIN
        return VERDICTS[1] if outside else VERDICTS[2]
    direction = row["_direction"]
    towards = max(direction * row["ci_low"], direction * row["ci_high"])  # the interval's far end, paper's way
    if row["p_holm"] < LEVEL and direction * row["difference"] < 0:
        return VERDICTS[1]
    if towards < SMALLEST_EFFECT:
        return VERDICTS[1]
    return VERDICTS[0] if row["p_holm"] < LEVEL else VERDICTS[2]


# --------------------------------------------------------------------------- tables
def claims_table(runs: pd.DataFrame, source: str, *, canonical: bool = False, official: bool = False) -> pd.DataFrame:
    """The paper's accuracy claims tested on one source's run table (method, final_acc; knob columns optional).

    ``canonical``: the runs trained and tested on canonical CIFAR-10 with the paper's recipe (absolute
    claims are compared only then); ``official``: the table is the authors' own ten-run file.
    Columns: :data:`COLUMNS`.
    """
    missing = [c for c in ("method", "final_acc") if c not in runs.columns]
    if missing and len(runs):
        raise ValueError(f"runs lacks column(s) {missing}; allowed: a run table with method and final_acc")
    runs, set_aside = checked_runs(runs, source)
    runs = _with_knobs(runs) if len(runs) else pd.DataFrame(columns=["method", "final_acc", *_KNOBS])
    arms = _arms(runs)
    rows = [_difference_row(claim, f"{_R[a]:.2f} vs {_R[b]:.2f}", source, arms[a], arms[b], (a, b))
            for claim, a, b in _COMPARISONS]
    rows.append(_interaction_row(arms, source))
    sweep_p = runs[_paper_settings(runs, free=("p",)) & (runs["alpha"] == PAPER_DEFAULTS["alpha"])]
    rows.append(_best_setting_row(sweep_p, "p", PAPER_DEFAULTS["p"], "p = 0.1 is the best overlay probability",
                                  "p = 0.1", source))
    grid = runs[_paper_settings(runs, free=("temperature", "alpha")) & (runs["alpha"] > 0) &
                (runs["p"] == PAPER_DEFAULTS["p"])]
    grid = grid.assign(**{"(T, alpha)": list(zip(grid["temperature"], grid["alpha"]))})
    rows.append(_best_setting_row(grid, "(T, alpha)", (PAPER_DEFAULTS["temperature"], PAPER_DEFAULTS["alpha"]),
                                  "(T, alpha) = (2.5, 0.01) is the best pair", "T = 2.5, alpha = 0.01", source))
    rows.append(_maps_matter_row(runs, source))
    theirs = None if official else _official_arm("kd_ig")
    rows.append(_absolute_row(arms["kd_ig"], source, canonical, theirs))
    table = rows_table(rows)
    table.attrs["set_aside"] = set_aside
    return table


def checked_runs(runs: pd.DataFrame, source: str) -> tuple[pd.DataFrame, list[str]]:
    """``runs`` with every row checked (:func:`igkd_lib.evidence.run_rows.check_row`: a partial or non-numeric row is an
    error naming ``source``, the row and the field, never dropped silently) and one row per (method, variant,
    seed), the first kept; with one line per row set aside (:func:`igkd_lib.evidence.run_rows.one_per_run`)."""
    from igkd_lib.evidence.run_rows import check_row, one_per_run

    if not len(runs) or "seed" not in runs.columns:
        return runs, []
    required = ("method", "seed", "final_acc")
    records = [check_row({k: v for k, v in row.items() if k in required or not _blank(v)}, f"{source}, row {i}")
               for i, row in enumerate(runs.to_dict("records"), start=1)]
    # without a variant column a row's knobs are its identity (_dedupe, by run key or knob values)
    kept, set_aside = one_per_run(records) if "variant" in runs.columns else (records, [])
    return pd.DataFrame(kept, columns=list(runs.columns)).astype({"seed": int}), set_aside


def _blank(value) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _maps_matter_row(runs: pd.DataFrame, source: str) -> dict:
    """KD + IG with each image's own map against the shuffled-maps control (same knobs otherwise)."""
    kd_ig = runs[(runs["alpha"] == PAPER_DEFAULTS["alpha"]) & (runs["p"] == PAPER_DEFAULTS["p"]) &
                 (runs["temperature"] == PAPER_DEFAULTS["temperature"]) & (runs["blend"] == PAPER_DEFAULTS["blend"]) &
                 (runs["map_alignment"] == "aligned") & (runs["map_views"] == "clean") &
                 (runs["teacher_logits"] == "online") & (runs["map_source"] == "ig") &
                 (runs["student_cut"].astype(int) == 5)]
    shuffled = kd_ig["shuffle_maps"].astype(str) == "True"
    return _difference_row("the maps' content matters (own maps beat shuffled maps)", "implied", source,
                           _dedupe(kd_ig[~shuffled]).final_acc, _dedupe(kd_ig[shuffled]).final_acc,
                           ("own maps", "shuffled maps"))


def rows_table(rows: list) -> pd.DataFrame:
    """A claims table (:data:`COLUMNS`) of claim rows, each with its verdict."""
    table = _verdicts(pd.DataFrame(rows))
    return table.reindex(columns=COLUMNS).reset_index(drop=True)


def _official_arm(method: str, version: str = "2025-03-18") -> np.ndarray:
    from igkd_lib.evidence.official import ten_run_accuracies

    runs = ten_run_accuracies(version)
    return runs.loc[runs["method"] == method, "final_acc"].to_numpy(float)


def official_claims() -> pd.DataFrame:
    """The claims on the authors' ten-run file, one table per version of the file, stacked."""
    from igkd_lib.evidence.official import ten_run_accuracies

    tables = []
    for version, runs in ten_run_accuracies().groupby("commit_date", sort=True):
        label = f"authors' ten-run file, {runs['version'].iloc[0]}"
        tables.append(claims_table(runs[runs["method"].isin(list(_METHOD_KNOBS))], label, official=True))
    return pd.concat(tables, ignore_index=True)



def power_by_source(runs: pd.DataFrame, label: str, deltas=(0.2, 0.4, 0.8)) -> pd.DataFrame:
    """Runs per arm needed for each difference at the pooled seed-to-seed sd of the four methods in ``runs``."""
    from igkd_lib.evidence.stats import power_table

    arms = _arms(_with_knobs(runs))
    usable = [a for a in arms.values() if len(a) >= 2]
    if not usable:
        return pd.DataFrame(columns=["source", "difference (points)", "sd (points)", "power", "runs per arm"])
    pooled = math.sqrt(sum((len(a) - 1) * a.var(ddof=1) for a in usable) / sum(len(a) - 1 for a in usable))
    return power_table(pooled, deltas).assign(source=label)[["source", "difference (points)", "sd (points)", "power",
                                                             "runs per arm"]]
