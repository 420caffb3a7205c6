"""The paper's claims judged from every source of evidence at once, and each claim's overall status.

:func:`evidence` gathers the sources (the authors' ten-run file, committed paper-profile runs, this build's runs,
the teacher, the authors' published students, the parameter count, chapter 6's latency) into one table of
:func:`igkd_lib.evidence.claims.claims_table` rows; :func:`findings` gives each claim its status from the most
decisive source that tested it. The results summary and the findings page show both;
``python -m igkd_lib claims --source official|paper|quick`` prints one source.
"""
from __future__ import annotations

import pandas as pd

from igkd_lib.evidence.claims import (
    SMALLEST_EFFECT,
    VERDICTS,
    checkpoint_claim,
    claims_table,
    latency_claim,
    official_claims,
    power_by_source,
    rows_table,
    size_claim,
    teacher_claim,
)
from igkd_lib.evidence.committed_runs import is_committed
from igkd_lib.evidence.reference import committed_results

__all__ = ["build_runs", "evidence", "findings", "cli"]


def build_runs(config) -> pd.DataFrame:
    """This build's finished runs of ``config.profile`` (chapters 4 and 5), read from the cache; trains nothing."""
    from igkd_lib.evidence import experiments

    seeds = experiments.ablation_seeds(config.profile)
    tables = [experiments.run_grid(config, progress=False, cached_only=True)]
    tables += [experiments.run_grid(config, ["kd_ig"], seeds, experiments.ablation_variants(config, which),
                                    progress=False, cached_only=True)
               for which in ("p", "temperature_alpha", "blend", "controls")]
    tables = [t for t in tables if len(t)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["method", "final_acc"])


def _canonical(runs: pd.DataFrame) -> bool:
    return bool(len(runs)) and set(runs.get("data_source", [])) == {"torchvision"} and \
        set(runs.get("profile", ["paper"])) == {"paper"}


def _data_note(runs: pd.DataFrame) -> str:
    sources = sorted(set(runs.get("data_source", [])))
    return "JPEG offline copy" if sources == ["offline"] else "/".join(sources) or "unknown data"


def evidence(config=None, runs: pd.DataFrame | None = None, committed: pd.DataFrame | None = None,
             measured: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every claim from every source: the authors' ten-run file (both versions), committed paper-profile
    runs (``results/paper/runs.csv``), this build's ``runs`` (with ``config``), the teacher, the authors'
    published students (``measured``: :func:`igkd_lib.evidence.official.measure_checkpoints`), the parameter count and
    chapter 6's latency. One long table (:data:`COLUMNS`); the results summary and the findings
    page both show it."""
    from igkd_lib.bench.latency import load_results

    committed = committed_results("paper") if committed is None else committed
    tables = [official_claims()]
    if measured is not None:
        tables.append(rows_table([checkpoint_claim(measured)]))
    if len(committed):
        table = claims_table(committed, f"committed paper-profile runs ({_data_note(committed)})",
                             canonical=_canonical(committed))
        if table.attrs["set_aside"]:  # the same run twice (e.g. under two engines) counts once; say so
            table["source"] += f" ({len(table.attrs['set_aside'])} repeated run(s) set aside)"
        tables.append(table)
    if runs is not None and len(runs):
        # rows this build read from results/paper/ are the committed source above: counted once, there
        own = runs[~runs["origin"].map(is_committed)] if "origin" in runs else runs
        if len(own):
            label = f"this build ({config.profile if config else own['profile'].iloc[0]} profile, {_data_note(own)})"
            tables.append(claims_table(own, label, canonical=_canonical(own)))
        first = runs.iloc[0]
        # the shipped teacher's card holds its accuracy on the whole test set; a trained one is tested on n_test
        n = 10_000 if first["teacher_origin"] == "shipped" or config is None else config.n_test
        tables.append(rows_table([teacher_claim(float(first["teacher_acc"]), n, first["data_source"] == "torchvision",
                                             f"this book's teacher ({first['teacher_origin']})")]))
    tables.append(rows_table([size_claim(), latency_claim(load_results())]))
    return pd.concat(tables, ignore_index=True)


# the order of preference of sources for a claim's overall status: independent paper-scale runs first
_PREFERENCE = ("committed paper-profile", "this build (paper", "authors' ten-run file, 2025-03-23",
               "authors' ten-run file", "the authors' published", "this book's teacher", "chapter 6",
               "this build (parameter", "this build")


# the sources whose runs follow the paper's recipe at full scale: where two of them give a claim different verdicts,
# findings() flags it
_PAPER_SCALE = ("committed paper-profile", "this build (paper", "authors' ten-run file")


def _differ(tested: pd.DataFrame) -> str:
    """"" when the paper-scale sources that tested a claim agree (or fewer than two tested it), else each one's
    verdict, e.g. "committed paper-profile runs (...): inconclusive; authors' ten-run file (...): supported"."""
    scale = tested[tested["source"].astype(str).str.startswith(_PAPER_SCALE)]
    if scale["verdict"].nunique() < 2:
        return ""
    return "; ".join(f"{source}: {verdict}" for source, verdict in zip(scale["source"], scale["verdict"]))


def findings(table: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: its status (from the most decisive source that tested it, named), the verdicts of the
    paper-scale sources where they differ (column ``paper-scale sources differ``, "" where they agree), and the
    verdict with n of every source. ``table``: :func:`evidence`."""
    rows = []
    for claim, group in table.groupby("claim", sort=False):
        tested = group[group["verdict"] != VERDICTS[3]]
        rank = lambda s: next((i for i, p in enumerate(_PREFERENCE) if s.startswith(p)), len(_PREFERENCE))  # noqa: E731
        lead = tested.iloc[sorted(range(len(tested)), key=lambda i: rank(tested["source"].iloc[i]))[0]] \
            if len(tested) else group.iloc[0]
        row = {"claim": claim, "status": lead["verdict"], "status from": lead["source"] if len(tested) else "-",
               "paper": group["paper"].iloc[0], "paper-scale sources differ": _differ(tested)}
        row.update({src: f"{v} (n={n})" for src, v, n in zip(group["source"], group["verdict"], group["n"])})
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def cli(config, args) -> int:
    """``python -m igkd_lib claims --source official|paper|quick``: the claims table of one source."""
    from igkd_lib.evidence.official import ten_run_accuracies

    if args.source == "official":
        table, runs = official_claims(), ten_run_accuracies("2025-03-23")
    elif args.source == "paper":
        runs = committed_results("paper")
        if runs.empty:
            print("no results/paper/runs.csv committed: no paper-profile runs to test the claims on")
            return 1
        table = claims_table(runs, "committed paper-profile runs", canonical=_canonical(runs))
    else:
        runs = build_runs(config)
        table = claims_table(runs, f"cached {config.profile}-profile runs ({_data_note(runs)})",
                             canonical=_canonical(runs))
    pd.set_option("display.width", 200)
    for line in table.attrs.get("set_aside", []):
        print(f"one run per (method, variant, seed): {line}")
    for source, group in table.groupby("source", sort=False):
        print(f"\n== {source}")
        for _, row in group.iterrows():
            print(f"[{row['verdict']:>12}] {row['claim']} (paper: {row['paper']}; n={row['n']})\n"
                  f"               {row['evidence']}")
    print(f"\nVerdicts: Holm over each source's tested comparisons; smallest effect of interest {SMALLEST_EFFECT} "
          "points; accuracies in % (chance level 10%).")
    power = power_by_source(runs, args.source)
    print(power.to_string(index=False) if len(power)
          else "power: no arm has two runs, so there is no spread to plan from")
    return 0
