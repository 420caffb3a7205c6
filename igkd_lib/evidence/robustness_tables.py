"""Paired statistics of the published students under corruption (:mod:`igkd_lib.evidence.robustness`).

Every student saw the same images, so a comparison is paired over images: for each image, the arm's
value (its students' mean drop from clean, or mean agreement with the teacher) minus the other arm's;
the difference is the mean of these per-image contrasts, with a t-interval and p over images and,
beside it, a percentile interval of a paired bootstrap over images (:func:`paired_difference`).
This gives power over *images*: it says whether these six checkpoints differ, not whether another
training run of the same method would. The model-level view (three checkpoints per arm, Welch) is
:func:`model_level`; the findings give both (:func:`findings_table`).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

from igkd_lib.evidence.corruptions import SEVERITIES as LEVELS
from igkd_lib.evidence.stats import holm, t_interval, welch_difference, wilson_interval

__all__ = ["N_BOOT", "OVERLAY_CONTRAST", "paired_difference", "correct", "subsets", "contrasts", "accuracy_rows",
           "paired_table", "agreement_table", "model_level", "findings_table", "SOURCE", "paired_view", "students_view"]

N_BOOT = 2000
OVERLAY_CONTRAST = "IG overlay − none (3 vs 3 students)"
SOURCE = "the authors' six published students (results/robustness/official_students*)"
_DROP = "accuracy drop (points)"
_AGREEMENT = {"spearman": "Spearman ρ", "iou": "top-10 % IoU"}


def paired_difference(a, b, n_boot: int = N_BOOT, seed: int = 0, confidence: float = 0.95) -> dict:
    """mean(a − b) over pairs (image i of ``a`` with image i of ``b``; pairs with a NaN are left out), with its
    t-interval and paired t-test p over pairs, and a paired bootstrap over pairs (percentile interval,
    ``n_boot`` resamples, seeded). Keys: n, mean_a, mean_b, difference, ci_low, ci_high, p, boot_low, boot_high."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be two 1-d arrays of the same length (one value per image), got shapes "
                         f"{a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    d = a - b
    mean, sd, low, high = t_interval(d, confidence)
    out = {"n": len(d), "mean_a": float(a.mean()) if len(d) else math.nan,
           "mean_b": float(b.mean()) if len(d) else math.nan, "difference": mean, "ci_low": low, "ci_high": high,
           "p": math.nan, "boot_low": math.nan, "boot_high": math.nan}
    if len(d) < 2 or not sd > 0:
        return out
    out["p"] = float(_scipy_stats.ttest_1samp(d, 0.0).pvalue)
    rng = np.random.default_rng(seed)
    means = np.concatenate([d[rng.integers(0, len(d), (min(200, n_boot - done), len(d)))].mean(1)
                            for done in range(0, n_boot, 200)])
    out["boot_low"], out["boot_high"] = (float(q) for q in np.quantile(means, [(1 - confidence) / 2,
                                                                                (1 + confidence) / 2]))
    return out


def correct(store: dict) -> np.ndarray:
    """(models, versions, images) bool: each student's prediction is the label."""
    return store["predictions"].astype(np.int64) == np.asarray(store["labels"])[None, None, :]


def subsets(store: dict) -> dict:
    """{"all": every image, "exact pixels": the canonical ones} (only "all" when every image is exact)."""
    exact = np.asarray(store["exact"], bool)
    return {"all": np.ones_like(exact)} if exact.all() else {"all": np.ones_like(exact), "exact pixels": exact}


def contrasts(models: pd.DataFrame) -> dict:
    """{name: (arm a rows, arm b rows)}: every student with the overlay against every one without, then each
    matched pair that differs only by the overlay (KD + IG against KD on the same training set)."""
    out = {OVERLAY_CONTRAST: (np.flatnonzero(models["overlay"]), np.flatnonzero(~models["overlay"].astype(bool)))}
    for training_set in dict.fromkeys(models["training_set"]):
        pick = lambda method: np.flatnonzero((models["official_method"] == method)  # noqa: E731
                                             & (models["training_set"] == training_set))
        if len(pick("KD_IG")) and len(pick("KD")):
            out[f"KD+IG − KD ({training_set})"] = (pick("KD_IG"), pick("KD"))
    return out


def _drops(store: dict) -> np.ndarray:
    """(models, versions, images): 1 where the clean image was right and this version wrong, -1 the reverse."""
    right = correct(store).astype(np.int8)
    return right[:, :1] - right


def accuracy_rows(store: dict) -> pd.DataFrame:
    """One row per student, version and subset: the checkpoint (file, sha256), n, accuracy (%) with its Wilson
    95 % interval, and the drop from clean (points) with a paired t-interval over the same images."""
    right, drops = correct(store), _drops(store)
    models, table = store["models"], store["versions"]
    rows = []
    for m, model in models.iterrows():
        for v, (kind, severity) in enumerate(zip(table["kind"], table["severity"])):
            for subset, mask in subsets(store).items():
                acc, low, high = wilson_interval(int(right[m, v, mask].sum()), int(mask.sum()))
                drop, _, drop_low, drop_high = t_interval(100 * drops[m, v, mask]) if v else (math.nan,) * 4
                rows.append({"label": model["label"], "file": model["file"], "sha256": model["sha256"],
                             "method": model["method"], "training_set": model["training_set"],
                             "overlay": bool(model["overlay"]), "kind": kind, "severity": int(severity),
                             "level": LEVELS[kind][severity - 1] if severity else math.nan, "subset": subset,
                             "n": int(mask.sum()), "correct": int(right[m, v, mask].sum()), "accuracy": acc,
                             "ci_low": low, "ci_high": high, "drop": drop, "drop_ci_low": drop_low,
                             "drop_ci_high": drop_high})
    return pd.DataFrame(rows)


def _row(measure, contrast, kind, severity, subset, a, b) -> dict:
    d = paired_difference(a, b)
    return {"measure": measure, "contrast": contrast, "kind": kind, "severity": severity, "subset": subset,
            "n_images": d["n"], **{k: d[k] for k in ("mean_a", "mean_b", "difference", "ci_low", "ci_high", "p",
                                                      "boot_low", "boot_high")}}


def paired_table(store: dict) -> pd.DataFrame:
    """Each contrast (:func:`contrasts`) on the drop from clean per corruption, severity and subset, and on
    the mean drop over all of them ("all corruptions"); then on the agreement with the teacher. Per-image
    arm means, :func:`paired_difference`; Holm over each measure's rows (column p_holm)."""
    drops, table = 100 * _drops(store).astype(float), store["versions"]
    rows = []
    for name, (a, b) in contrasts(store["models"]).items():
        for subset, mask in subsets(store).items():
            for v in range(1, len(table)):
                rows.append(_row(_DROP, name, table["kind"][v], int(table["severity"][v]), subset,
                                 drops[a, v][:, mask].mean(0), drops[b, v][:, mask].mean(0)))
            rows.append(_row(_DROP, name, "all corruptions", 0, subset, drops[a, 1:][..., mask].mean((0, 1)),
                             drops[b, 1:][..., mask].mean((0, 1))))
    out = pd.DataFrame(rows)
    out = pd.concat([out, agreement_table(store)], ignore_index=True)
    out["p_holm"] = math.nan
    for _, index in out.groupby("measure").groups.items():
        out.loc[index, "p_holm"] = holm(out.loc[index, "p"].to_numpy(float))
    return out


def agreement_table(store: dict) -> pd.DataFrame:
    """Each contrast on the agreement of the students' IG maps with the teacher's (Spearman, IoU), paired over
    the probe images (empty without agreement results)."""
    agree = store.get("agreement")
    if agree is None or agree.empty:
        return pd.DataFrame()
    rows = []
    labels = list(store["models"]["label"])
    for value, measure in _AGREEMENT.items():
        wide = agree.pivot(index="image", columns="label", values=value)[labels].to_numpy(float)
        for name, (a, b) in contrasts(store["models"]).items():
            rows.append(_row(measure, name, "clean", 0, "exact-pixel probes", wide[:, a].mean(1), wide[:, b].mean(1)))
    return pd.DataFrame(rows)


def model_level(store: dict) -> pd.DataFrame:
    """Each student's mean drop over all corruptions and severities (points) and mean agreement, and the overlay
    arms compared over students (Welch, 3 vs 3): the view that generalises to training runs, with its n."""
    drops, models = 100 * _drops(store).astype(float), store["models"]
    values = {f"mean drop ({subset})": drops[:, 1:][..., mask].mean((1, 2)) for subset, mask in subsets(store).items()}
    agree = store.get("agreement")
    if agree is not None and not agree.empty:
        means = agree.groupby("label")[list(_AGREEMENT)].mean().reindex(models["label"])
        values.update({_AGREEMENT[v]: means[v].to_numpy(float) for v in _AGREEMENT})
    a, b = contrasts(models)[OVERLAY_CONTRAST]
    rows = []
    for measure, per_model in values.items():
        d = welch_difference(per_model[a], per_model[b])
        rows.append({"measure": measure, **dict(zip(models["label"], per_model)),
                     **{k: d[k] for k in ("n_a", "n_b", "mean_a", "mean_b", "difference", "ci_low", "ci_high", "p",
                                          "detectable")}})
    return pd.DataFrame(rows)


def findings_table(store: dict, source: str = SOURCE) -> pd.DataFrame:
    """The questions of chapter 8's studies 3 and 4 answered on the published students: paired over images
    (these six checkpoints) and over students (Welch, the method), with verdicts by the book's rules
    (:func:`igkd_lib.evidence.study_claims.judge`, Holm over these rows)."""
    from igkd_lib.evidence.claims import SMALLEST_EFFECT
    from igkd_lib.evidence.study_claims import AGREEMENT_EFFECT, STUDIES, judge

    paired = store["paired"] if "paired" in store else paired_table(store)
    paired = paired[(paired["contrast"] == OVERLAY_CONTRAST) & paired["kind"].isin(["all corruptions", "clean"])]
    level = model_level(store)
    rows = []
    for _, r in paired.iterrows():
        drop = r["measure"] == _DROP
        question = (f"students trained with the IG overlay lose less accuracy under corruption than those without "
                    f"(test images: {r['subset']}; mean over 5 corruptions x 3 severities)" if drop else
                    f"students trained with the IG overlay agree more with the teacher's IG maps ({r['measure']})")
        unit = " points" if drop else ""
        text = (f"overlay {r['mean_a']:.3g} − none {r['mean_b']:.3g} = {r['difference']:+.3g}{unit} "
                f"[{r['ci_low']:+.3g}, {r['ci_high']:+.3g}], paired over {r['n_images']} images (bootstrap "
                f"[{r['boot_low']:+.3g}, {r['boot_high']:+.3g}]); says whether these six checkpoints differ")
        rows.append({"study": STUDIES[3] if drop else STUDIES[2], "claim": question + ", paired over images",
                     "paper": "not tested by the paper", "source": source, "n": f"{r['n_images']} images, 3 vs 3",
                     "difference": r["difference"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "p": r["p"],
                     "evidence": text, "_direction": -1 if drop else 1,
                     "_smallest": SMALLEST_EFFECT if drop else AGREEMENT_EFFECT})
    for _, r in level.iterrows():
        drop = r["measure"].startswith("mean drop")
        unit = " points" if drop else ""
        interval = f" [{r['ci_low']:+.3g}, {r['ci_high']:+.3g}]" if not math.isnan(r["ci_low"]) else ""
        question = (f"students trained with the IG overlay lose less accuracy under corruption than those without "
                    f"(test images: {r['measure'][len('mean drop ('):-1]})" if drop else
                    f"students trained with the IG overlay agree more with the teacher's IG maps ({r['measure']})")
        rows.append({"study": STUDIES[3] if drop else STUDIES[2],
                     "claim": question + ", over students (Welch, 3 vs 3 checkpoints)",
                     "paper": "not tested by the paper", "source": source, "n": f"{r['n_a']} vs {r['n_b']} students",
                     "difference": r["difference"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "p": r["p"],
                     "detectable": r["detectable"], "_direction": -1 if drop else 1,
                     "_smallest": SMALLEST_EFFECT if drop else AGREEMENT_EFFECT,
                     "evidence": f"overlay {r['mean_a']:.3g} − none {r['mean_b']:.3g} = {r['difference']:+.3g}{unit}"
                                 f"{interval}; detectable at 80 % power: {r['detectable']:.3g}{unit}"})
    return judge(rows)


# --------------------------------------------------------------------------- for reading
_LEVEL_TEXT = {"jpeg": "quality {:g}", "gaussian_noise": "sd {:g}", "gaussian_blur": "σ {:g} px",
               "contrast": "× {:g}", "brightness": "+ {:g}"}


def _interval(value: float, low: float, high: float, decimals: int) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:+.{decimals}f}" + ("" if math.isnan(low) else f" [{low:+.{decimals}f}, {high:+.{decimals}f}]")


def paired_view(paired: pd.DataFrame, contrast=OVERLAY_CONTRAST, measure: str = _DROP, decimals: int = 2,
                kinds=None) -> pd.DataFrame:
    """Rows of :func:`paired_table` as text: corruption, severity (with its parameter), subset, n, each arm's mean,
    the difference with its paired 95 % t-interval, the paired bootstrap interval, Holm p. ``contrast``: one
    name (its arms name the columns) or several (a column says which; the arms are "a" and "b");
    ``kinds``: only these corruptions (None: all)."""
    several = not isinstance(contrast, str)
    part = paired[paired["contrast"].isin(list(contrast) if several else [contrast]) & (paired["measure"] == measure)]
    if kinds is not None:
        part = part[part["kind"].isin(list(kinds))]
    a, b = ("a", "b") if several else (contrast.split(" (")[0].split(" − ") + [""])[:2]
    view = pd.DataFrame({
        "subset": part["subset"], "corruption": part["kind"].str.replace("_", " "),
        "severity": [f"{s} ({_LEVEL_TEXT[k].format(LEVELS[k][s - 1])})" if k in LEVELS else "-"
                     for k, s in zip(part["kind"], part["severity"])],
        "n images": part["n_images"], a: part["mean_a"].map(f"{{:.{decimals}f}}".format),
        b: part["mean_b"].map(f"{{:.{decimals}f}}".format),
        f"{a} − {b} [95% CI]": [_interval(*v, decimals) for v in
                                zip(part["difference"], part["ci_low"], part["ci_high"])],
        "bootstrap 95% CI": [f"[{lo:+.{decimals}f}, {hi:+.{decimals}f}]" for lo, hi in
                             zip(part["boot_low"], part["boot_high"])],
        "p (Holm)": part["p_holm"].map("{:.3g}".format)})
    if several:
        view.insert(0, "contrast", part["contrast"])
    return view.reset_index(drop=True)


def students_view(store: dict) -> pd.DataFrame:
    """One row per student (its own numbers), then each arm's mean and the arms' Welch difference over the
    three students per arm (with its 95 % interval): clean accuracy, mean drop per subset, mean agreement."""
    level, models = model_level(store), store["models"]
    right = correct(store)[:, 0]
    table = pd.DataFrame({"student": models["label"], "IG overlay": models["overlay"].map({True: "yes", False: "no"}),
                          "file": models["file"]})
    for subset, mask in subsets(store).items():
        table[f"clean accuracy ({subset})"] = [f"{100 * right[m, mask].mean():.2f}" for m in range(len(models))]
    for _, r in level.iterrows():
        table[r["measure"]] = [f"{r[label]:.3f}" for label in models["label"]]
    arms = [{"student": name, "IG overlay": "", "file": ""} for name in ("mean: overlay", "mean: none",
                                                                          "overlay − none (Welch, 3 vs 3)")]
    for _, r in level.iterrows():
        arms[0][r["measure"]], arms[1][r["measure"]] = f"{r['mean_a']:.3f}", f"{r['mean_b']:.3f}"
        arms[2][r["measure"]] = _interval(r["difference"], r["ci_low"], r["ci_high"], 3)
    return pd.concat([table, pd.DataFrame(arms)], ignore_index=True).fillna("")
