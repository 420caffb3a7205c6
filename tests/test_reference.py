"""Reference numbers and committed results."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from igkd_lib.campaign.ingest import merge_results
from igkd_lib.evidence import reference

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
                      blend=0.5, map_alignment="aligned", shuffle_maps=False, run_key=f"p{p}-{s}")
                 for s in range(seeds)]
    return pd.DataFrame(rows)


def test_reference_table_has_both_sources():
    table = reference.reference_table()
    assert set(table["source"]) == {reference.SOURCE_PAPER, reference.SOURCE_OFFICIAL}
    official = table[table["source"] == reference.SOURCE_OFFICIAL].set_index("method")
    assert official.loc["kd_ig", "mean"] == pytest.approx(92.02, abs=0.005)
    assert official.loc["baseline", "sd"] == pytest.approx(0.305, abs=0.001)


def test_committed_results_round_trip(tmp_path):
    assert reference.committed_results("paper", folder=tmp_path).empty
    runs = _runs({"kd": 91.0}, 2)
    meta = {"window": "20260101T000000Z-abc", "profile": "paper", "device": "GPU", "commit": "abc", "precision": "bf16",
            "trainer": "wide", "torch": "2.11", "date": "2026-01-01"}
    merge_results([{"row": row, "log": []} for row in runs.to_dict("records")], meta, tmp_path)  # the one writer
    back = reference.committed_results("paper", folder=tmp_path)
    assert len(back) == 2 and (back["source"] == "committed paper-profile runs").all()
    provenance = back.attrs["provenance"]
    assert provenance["devices"] == ["GPU"] and provenance["windows"] == ["20260101T000000Z-abc"]
    assert np.allclose(back["final_acc"], runs["final_acc"])
