"""igkd_lib.bench.ig: the chunk sweep always holds the chunk the maps use, and the choice is reported."""
import pandas as pd
import pytest

from igkd_lib.bench import ig as bench_ig


@pytest.mark.slow
def test_sweep_includes_the_chosen_chunk_and_reports_it(smoke_config):
    config = smoke_config.replace(ig_chunk=3)
    table = bench_ig.run(config, n_images=2, n_steps=2, chunk_sizes=(2, 4), captum_internal=(4,), warmup=False)
    engine = table[table["variant"] == "this engine"]
    assert sorted(engine["batch"]) == [2, 3, 4] and table.attrs["chosen_chunk"] == 3
    assert table.attrs["chunk_source"] == "ig_chunk" and table.attrs["max_rel_diff"] < 1e-3
    choice = bench_ig.chunk_choice(table)
    assert choice["chosen_chunk"] == 3 and choice["best_points_per_s"] >= choice["chosen_points_per_s"]
    assert 0 < choice["chosen / best"] <= 1


def test_chunk_choice_compares_the_chosen_chunk_with_the_best():
    table = pd.DataFrame({"variant": ["this engine"] * 3 + ["floor (forward + input grad)"],
                          "batch": [32, 64, 128, 64], "points_per_s": [200.0, 250.0, 100.0, 900.0]})
    table.attrs["chosen_chunk"] = 128
    assert bench_ig.chunk_choice(table) == {"chosen_chunk": 128, "chosen_points_per_s": 100.0, "best_chunk": 64,
                                            "best_points_per_s": 250.0, "chosen / best": 0.4}
