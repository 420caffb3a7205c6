"""``python -m igkd_lib train`` / ``run``: runs on this machine, printed; at ``paper`` scale their rows are
merged into ``results/paper/`` like a GPU window's, for committing (see the README's "Runs on a GPU").
"""
from __future__ import annotations

import math

import pandas as pd

from igkd_lib.config import METHODS, Config
from igkd_lib.console import print_table
from igkd_lib.evidence.committed_runs import is_committed
from igkd_lib.evidence.experiments import rows_with_logs, without_logs
from igkd_lib.provenance import provenance

__all__ = ["cli"]


def _commit_results(config: Config, table: pd.DataFrame, logs: dict | None = None) -> None:
    """In a checkout, merge the paper profile's finished runs into ``results/paper/`` for committing
    (the campaign's merge: rows already there stay, the same row twice is one row, a different row
    under a key already there is an error; this call's provenance becomes one more window record).
    ``logs``: each run's per-epoch log by run key (the runs just read or trained)."""
    import datetime

    from igkd_lib import paths
    from igkd_lib.campaign.ingest import merge_results

    results_dir = paths.RESULTS_DIR  # read now, so that tests can point it elsewhere
    if not (results_dir.parent / "pyproject.toml").is_file():
        return
    first = table.iloc[0]
    now = datetime.datetime.now(datetime.timezone.utc)
    meta = {**provenance(config, first["data_source"]), "window": f"run-{now:%Y%m%dT%H%M%SZ}-{first['commit']}",
            "date": now.isoformat(timespec="seconds"), "precision": str(first.get("precision", "")),
            "trainer": "single", "command": "python -m igkd_lib run"}
    logs = logs or {}
    records = [row for row in table.to_dict("records") if not is_committed(row.get("origin"))]
    runs = [{"row": {**{k: v for k, v in row.items() if k not in ("cached", "origin")}, "status": "complete"},
             "log": logs.get(row["run_key"], [])} for row in records]  # rows read from results/ are there already
    if not runs:
        return
    added = merge_results(runs, meta, results_dir)
    print(f"\nmerged {added} new run(s) into {results_dir / config.profile / 'runs.csv'} (commit it to show it "
          "in the book)")


def _below_target(accuracy: float) -> str:
    from igkd_lib.training.teacher import SHIPPED_TARGET

    return f", below the {SHIPPED_TARGET:.0f}% target" if accuracy < SHIPPED_TARGET else ""


def cli(config: Config, args) -> int:
    """``train``: one method (default kd_ig) at ``--seed``; ``run``: methods (default all) x the profile's seeds."""
    from igkd_lib.evidence.stats import compare_methods, summarise

    if args.command == "train":
        methods, seeds = args.methods or ["kd_ig"], [args.seed]
    else:
        methods, seeds = args.methods or list(METHODS), list(config.seeds)
    config = config.replace(train_missing=True)  # these commands train what is not there (paper included)
    rows = list(rows_with_logs(config, methods, seeds, None, progress=True))
    table = without_logs(rows)
    columns = ["method", "seed", "final_acc", "best_epoch_acc", "epochs", "seconds", "cached"]
    print_table(table, columns)
    print_table(summarise(table), title="")
    if len(set(table["method"])) > 1:
        print_table(compare_methods(table), digits=".4g", title="")
    if args.command == "run" and config.plan("commit_results") and set(methods) == set(METHODS):
        _commit_results(config, table, {row["run_key"]: row["log"] for row in rows})
    first = table.iloc[0]
    print(f"\nprofile={config.profile} · data={first['data_source']} · device={first['device']} · "
          f"commit={first['commit']} · teacher={first['teacher_origin']} ({first['teacher_acc']:.2f}%"
          f"{_below_target(first['teacher_acc'])})")
    return 0 if all(math.isfinite(v) for v in table["final_acc"]) else 1
