"""The studies beyond the paper as findings: each question, its result with n and interval, and its verdict.

Chapter 8 ("Beyond the paper") tests what the paper leaves implicit: that the overlay passes on where
the teacher looks. :func:`study_table` turns its tidy tables into one row per question (the columns of
:data:`igkd_lib.evidence.claims.COLUMNS`, plus ``study``): a Welch difference over seeds (or, for the teacher on
overlaid images, a paired difference over images) with its 95 % interval, Holm-adjusted over the tested
questions of one source, and the verdicts of :mod:`igkd_lib.evidence.claims`: *supported* (Holm p < 0.05 in the
direction the question states), *contradicted* (Holm p < 0.05 the other way, or the interval rules out
the question's smallest effect of interest), *inconclusive*, *not tested* (fewer than two runs in an
arm, or none). The chapter saves its table (:func:`save`) and the findings page shows it (:func:`load`).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from igkd_lib.evidence.claims import COLUMNS, LEVEL, SMALLEST_EFFECT, VERDICTS, variant_overrides
from igkd_lib.evidence.stats import holm, interaction, t_interval, welch_difference

__all__ = ["STUDIES", "AGREEMENT_EFFECT", "study_table", "judge", "save", "load", "findings_rows", "committed_table"]

# the five studies of the chapter, in its order
STUDIES = ("1. overlay source", "2. teacher signal", "3. attribution agreement", "4. robustness", "5. compression")
_AGREEMENT_EFFECT = 0.02  # Spearman rho or IoU: smaller gains are below what the probe sets resolve
AGREEMENT_EFFECT = _AGREEMENT_EFFECT
_NOT_IN_PAPER = "not tested by the paper"
_SOURCE_LABELS = {"ig_untrained": "an untrained teacher's IG", "ig_weak": "a weaker teacher's IG",
                  "grad_x_input": "gradient x input", "smoothgrad": "SmoothGrad",
                  "sobel": "a Sobel edge map (no teacher)", "constant": "a constant map (contrast reduction)"}
_SIGNAL_LABELS = {"online_clean": "the same batch without the overlay", "cached": "clean images cached once",
                  "official": "other images (the official code's fault)"}


def _row(study, question, source, a, b, names, direction=1, smallest=SMALLEST_EFFECT, unit="points") -> dict:
    """A Welch comparison of per-seed values ``a`` - ``b``; the question holds when the difference has ``direction``."""
    d = welch_difference(a, b)
    row = {"study": study, "claim": question, "paper": _NOT_IN_PAPER, "source": source,
           "n": f"{d['n_a']} vs {d['n_b']}", "_direction": direction, "_smallest": smallest}
    if min(d["n_a"], d["n_b"]) == 0:
        return {**row, "n": "0", "verdict": VERDICTS[3], "evidence": "no runs of this kind in this source"}
    text = f"{names[0]} {d['mean_a']:.3g} − {names[1]} {d['mean_b']:.3g} = {d['difference']:+.3g} {unit}".rstrip()
    text += (f" [{d['ci_low']:+.3g}, {d['ci_high']:+.3g}]" if not math.isnan(d["ci_low"])
             else " (one run per arm: no interval)")
    return {**row, "evidence": text, **{k: d[k] for k in ("difference", "ci_low", "ci_high", "p", "detectable")}}


def _sources(runs: pd.DataFrame | None, source: str) -> list[dict]:
    from igkd_lib.evidence.studies import SOURCE_STUDY

    runs = runs if runs is not None else pd.DataFrame(columns=["map_source", "final_acc"])
    pick = lambda s: runs.loc[runs["map_source"] == s, "final_acc"]  # noqa: E731
    return [_row(STUDIES[0], f"KD + IG with the teacher's IG maps beats KD + IG with {_SOURCE_LABELS[s]}", source,
                 pick("ig"), pick(s), ("ig", s)) for s in SOURCE_STUDY if s != "ig"]


def _signals(runs: pd.DataFrame | None, teacher: dict | None, source: str) -> list[dict]:
    runs = runs if runs is not None else pd.DataFrame(columns=["teacher_logits", "final_acc"])
    pick = lambda s: runs.loc[runs["teacher_logits"] == s, "final_acc"]  # noqa: E731
    rows = [_row(STUDIES[1], f"KD + IG with the teacher's logits on the student's exact batch beats logits on {label}",
                 source, pick("online"), pick(s), ("online", s)) for s, label in _SIGNAL_LABELS.items()]
    rows.append(_teacher_row(teacher, source))
    return rows


def _teacher_row(teacher: dict | None, source: str) -> dict:
    """The teacher's accuracy on overlaid (w = 0.5) minus clean images: a paired difference over images."""
    question = "the overlay (w = 0.5) lowers the teacher's accuracy"
    row = {"study": STUDIES[1], "claim": question, "paper": _NOT_IN_PAPER, "source": source, "_direction": -1,
           "_smallest": SMALLEST_EFFECT}
    if teacher is None:
        return {**row, "n": "0", "verdict": VERDICTS[3], "evidence": "not measured in this source"}
    diff = np.asarray(teacher["overlaid"], float) - np.asarray(teacher["clean"], float)
    mean, sd, low, high = t_interval(100 * diff)
    p = _paired_p(100 * diff)
    text = (f"overlaid {100 * np.mean(teacher['overlaid']):.2f} % − clean {100 * np.mean(teacher['clean']):.2f} % = "
            f"{mean:+.2f} points [{low:+.2f}, {high:+.2f}] (paired over {len(diff)} probe images)")
    return {**row, "n": f"{len(diff)} images", "difference": mean, "ci_low": low, "ci_high": high, "p": p,
            "evidence": text}


def _paired_p(diff: np.ndarray) -> float:
    from scipy import stats as _scipy_stats

    if len(diff) < 2 or np.all(diff == diff[0]):
        return math.nan
    return float(_scipy_stats.ttest_1samp(diff, 0.0).pvalue)


def _agreement(per_seed: pd.DataFrame | None, source: str) -> list[dict]:
    per_seed = per_seed if per_seed is not None else pd.DataFrame(columns=["model", "spearman", "iou"])
    pick = lambda m, v: per_seed.loc[per_seed["model"] == m, v]  # noqa: E731
    return [_row(STUDIES[2], f"KD + IG students' maps agree with the teacher's more than the student alone's ({label})",
                 source, pick("kd_ig", v), pick("baseline", v), ("kd_ig", "baseline"), smallest=_AGREEMENT_EFFECT,
                 unit="") for v, label in (("spearman", "Spearman"), ("iou", "top-10 % IoU"))]


def _robustness(per_run: pd.DataFrame | None, source: str) -> list[dict]:
    per_run = per_run if per_run is not None else pd.DataFrame(columns=["method", "subset", "drop"])
    subsets = list(dict.fromkeys(per_run["subset"])) or ["all"]
    rows = []
    for subset in subsets:
        part = per_run[per_run["subset"] == subset]
        pick = lambda m: part.loc[part["method"] == m, "drop"]  # noqa: E731
        rows.append(_row(STUDIES[3], f"KD + IG students lose less accuracy under corruption than the student alone "
                                     f"(test images: {subset})", source, pick("kd_ig"), pick("baseline"),
                         ("kd_ig drop", "baseline drop"), direction=-1))
    return rows


def _compression(runs: pd.DataFrame | None, source: str) -> list[dict]:
    runs = runs if runs is not None else pd.DataFrame(columns=["method", "student_cut", "final_acc"])
    pick = lambda m, c: runs.loc[(runs["method"] == m) & (runs["student_cut"] == c), "final_acc"]  # noqa: E731
    cuts = sorted(set(runs["student_cut"]))
    rows = [_row(STUDIES[4], f"KD + IG beats the student alone at cut {c}", source, pick("kd_ig", c),
                 pick("baseline", c), ("kd_ig", "baseline")) for c in cuts]
    smallest = max(cuts) if cuts else None
    question = "the IG advantage (KD + IG − student alone) grows as the student shrinks (smallest cut vs cut 5)"
    row = {"study": STUDIES[4], "claim": question, "paper": _NOT_IN_PAPER, "source": source, "_direction": 1,
           "_smallest": SMALLEST_EFFECT}
    if smallest is None or smallest == 5 or 5 not in cuts:
        return rows + [{**row, "n": "0", "verdict": VERDICTS[3], "evidence": "needs cut 5 and a smaller student"}]
    d = interaction({"kd_ig": pick("kd_ig", smallest), "kd": pick("baseline", smallest), "ig": pick("kd_ig", 5),
                     "baseline": pick("baseline", 5)})
    text = f"advantage at cut {smallest} − advantage at cut 5 = {d['difference']:+.2f} points"
    text += f" [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]" if not math.isnan(d["ci_low"]) else " (no interval)"
    n = "/".join(str(v) for v in d["n"].values())
    return rows + [{**row, "n": n, "evidence": text, **{k: d[k] for k in ("difference", "ci_low", "ci_high", "p")}}]


def study_table(source: str, *, sources=None, signals=None, teacher=None, agreement=None, robustness=None,
                compression=None) -> pd.DataFrame:
    """One row per question of the five studies for one ``source`` of evidence (a label, e.g. the profile).

    ``sources``: runs with map_source, final_acc; ``signals``: runs with teacher_logits, final_acc;
    ``teacher``: {"clean": (n,) 0/1, "overlaid": (n,) 0/1} correctness on probe images; ``agreement``:
    per-seed means (model, spearman, iou); ``robustness``: :func:`igkd_lib.evidence.corruptions.mean_drop_per_run`;
    ``compression``: runs with method, student_cut, final_acc. A study left None is *not tested*.
    Columns: study, then :data:`igkd_lib.evidence.claims.COLUMNS`.
    """
    return judge(_sources(sources, source) + _signals(signals, teacher, source) + _agreement(agreement, source)
                 + _robustness(robustness, source) + _compression(compression, source))


def judge(rows: list[dict]) -> pd.DataFrame:
    """Rows of one source (study, claim, paper, source, n, difference, ci_low, ci_high, p, evidence, and
    ``_direction``, ``_smallest``: the question's sign and smallest effect of interest) -> the table with
    Holm-adjusted p-values over the rows and each row's verdict (a row may bring its own ``verdict``)."""
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p"].to_numpy(float)) if "p" in table else math.nan
    table["verdict"] = [row["verdict"] if isinstance(row.get("verdict"), str) else _verdict(row)
                        for _, row in table.iterrows()]
    return table.reindex(columns=["study", *COLUMNS]).reset_index(drop=True)


def _verdict(row) -> str:
    if math.isnan(row.get("ci_low", math.nan)):
        return VERDICTS[2] if not math.isnan(row.get("difference", math.nan)) else VERDICTS[3]
    direction = row["_direction"]
    towards = max(direction * row["ci_low"], direction * row["ci_high"])
    if row["p_holm"] < LEVEL and direction * row["difference"] < 0:
        return VERDICTS[1]
    if towards < row["_smallest"]:
        return VERDICTS[1]
    return VERDICTS[0] if row["p_holm"] < LEVEL else VERDICTS[2]


def _path(config) -> Path:
    return Path(config.cache_dir) / "studies" / f"{config.profile}.json"


def save(config, table: pd.DataFrame, meta: dict) -> Path:
    """Write the chapter's study table and its provenance (``meta``) to the cache, checked and atomic."""
    from igkd_lib.storage import write_checked_json

    path = _path(config)
    records = table.astype(object).where(table.notna(), None).to_dict("records")
    write_checked_json(path, {"rows": records, "meta": meta})
    return path


def load(config) -> tuple[pd.DataFrame, dict] | None:
    """The study table chapter 8 saved for ``config.profile`` and its provenance, or None (not run, or damaged)."""
    from igkd_lib.storage import read_checked_json

    stored = read_checked_json(_path(config)) if _path(config).is_file() else None
    if not isinstance(stored, dict) or "rows" not in stored:
        return None
    return pd.DataFrame(stored["rows"]).reindex(columns=["study", *COLUMNS]), stored.get("meta", {})


def committed_table(runs: pd.DataFrame | None = None, measured=None) -> pd.DataFrame | None:
    """The studies on committed paper-profile evidence of the GPU queue: the training studies (sources, teacher
    signals, compression) on its runs (``results/paper/runs.csv``), with Table 1's KD + IG and baseline runs as the
    reference arms and the controls' official-logits runs as that signal, and the agreement and robustness of Table
    1's students as the windows that trained them measured them (``measured``: default
    :func:`igkd_lib.evidence.committed_studies.read_committed_studies`); only the questions with evidence. None when
    there is none."""
    from igkd_lib.evidence.committed_studies import read_committed_studies
    from igkd_lib.evidence.corruptions import mean_drop_per_run
    from igkd_lib.evidence.reference import committed_results

    runs = committed_results("paper") if runs is None else runs
    measured = read_committed_studies("paper") if measured is None else measured
    studies = {}
    if not measured.agreement.empty:
        studies["agreement"] = measured.agreement[["model", "seed", "spearman", "iou"]]
        studies["robustness"] = mean_drop_per_run(measured.robustness)
    if not (runs.empty or "study" not in runs or "variant" not in runs):
        runs = runs.assign(**{name: [variant_overrides(v).get(name) for v in runs["variant"]]
                              for name in ("map_source", "teacher_logits", "student_cut")})
        table1 = runs[runs["study"] == "table1"]
        reference = table1[table1["method"] == "kd_ig"].assign(map_source="ig", teacher_logits="online")
        studied = lambda name: runs[runs["study"] == name]  # noqa: E731
        official = runs[(runs["study"] == "controls") & (runs["teacher_logits"] == "official")]
        cuts = pd.concat([table1[table1["method"].isin(["baseline", "kd_ig"])].assign(student_cut=5),
                          studied("compression")], ignore_index=True)
        studies.update(sources=pd.concat([reference, studied("overlay_source")], ignore_index=True),
                       signals=pd.concat([reference, studied("teacher_signal"), official], ignore_index=True),
                       compression=cuts.assign(student_cut=cuts["student_cut"].astype(int)))
    if not studies:
        return None
    table = study_table("committed paper-profile runs", **studies)
    table = table[table["n"] != "0"]
    return table.reset_index(drop=True) if len(table) else None


def findings_rows(table: pd.DataFrame | None) -> pd.DataFrame:
    """The findings page's list: study, question, status (the verdict), source, n, result."""
    if table is None or table.empty:
        return pd.DataFrame([{"study": s, "question": "-", "status": VERDICTS[3], "source": "-", "n": "0",
                              "result": "chapter 8 has not run in this build"} for s in STUDIES])
    return table.rename(columns={"claim": "question", "verdict": "status", "evidence": "result"})[
        ["study", "question", "status", "source", "n", "result"]]
