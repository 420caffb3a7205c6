"""Reference numbers, committed results and the claims table (reproduced / not / not tested)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from igkd_lib import reference

_KNOBS = {"baseline": (0.0, 0.0), "kd": (0.01, 0.0), "ig": (0.0, 0.1), "kd_ig": (0.01, 0.1)}


def _runs(centres: dict, seeds: int, sd: float = 0.2, p_values=()) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for method, centre in centres.items():
        alpha, p = _KNOBS[method]
        rows += [dict(method=method, seed=s, final_acc=centre + rng.normal(0, sd), alpha=alpha, p=p, temperature=2.5,
                      blend=0.5, map_alignment="aligned", shuffle_maps=False, run_key=f"{method}-{s}")
                 for s in range(seeds)]
    for p, centre in p_values:
        rows += [dict(method="kd_ig", seed=s, final_acc=centre + rng.normal(0, sd), alpha=0.01, p=p, temperature=2.5,
                      blend=0.5, map_alignment="aligned", shuffle_maps=False, run_key=f"p{p}-{s}") for s in range(seeds)]
    return pd.DataFrame(rows)


def _status(table: pd.DataFrame, start: str) -> str:
    return table.loc[table["claim"].str.startswith(start), "status"].item()


def test_reference_table_has_both_sources():
    table = reference.reference_table()
    assert set(table["source"]) == {reference.SOURCE_PAPER, reference.SOURCE_OFFICIAL}
    official = table[table["source"] == reference.SOURCE_OFFICIAL].set_index("method")
    assert official.loc["kd_ig", "mean"] == 92.02 and official.loc["baseline", "sd"] == 0.31


def test_claims_reproduced_not_reproduced_and_not_tested():
    good = reference.claims_table(_runs({"baseline": 90, "kd": 91, "ig": 90.8, "kd_ig": 92}, 4,
                                        p_values=[(0.0, 91.0), (0.5, 90.0)]), "quick")
    assert set(good["status"]) <= set(reference.CLAIM_STATUSES)
    assert _status(good, "KD beats") == "reproduced" and _status(good, "p = 0.1") == "reproduced"
    assert _status(good, "kd_ig reaches") == "not tested at this profile"
    bad = reference.claims_table(_runs({"baseline": 92, "kd": 91, "ig": 90.8, "kd_ig": 90}, 4), "quick")
    assert _status(bad, "KD beats") == "not reproduced" and _status(bad, "p = 0.1").startswith("not tested")
    one = reference.claims_table(_runs({"baseline": 90, "kd": 91, "ig": 90.8, "kd_ig": 92}, 1), "quick")
    assert _status(one, "KD beats") == "not tested at this profile"
    empty = reference.claims_table(pd.DataFrame(), "smoke")
    assert (empty["status"] == "not tested at this profile").all()


def test_paper_profile_absolute_claim():
    table = reference.claims_table(_runs({"kd_ig": 92.4, "baseline": 91.4}, 5), "paper")
    assert _status(table, "kd_ig reaches") == "reproduced"
    table = reference.claims_table(_runs({"kd_ig": 88.0, "baseline": 91.4}, 5), "paper")
    assert _status(table, "kd_ig reaches") == "not reproduced"


def test_committed_results_round_trip(tmp_path):
    assert reference.committed_results("paper", folder=tmp_path).empty
    runs = _runs({"kd": 91.0}, 2)
    reference.write_results(runs, "paper", {"device": "GPU", "commit": "abc"}, folder=tmp_path)
    back = reference.committed_results("paper", folder=tmp_path)
    assert len(back) == 2 and (back["source"] == "committed paper-profile runs").all()
    assert back.attrs["provenance"]["device"] == "GPU"
    assert np.allclose(back["final_acc"], runs["final_acc"])
