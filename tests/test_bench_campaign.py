"""igkd_lib.bench.campaign: every design trains the same images and the ratios name the targets."""
import pytest
import torch

from igkd_lib.bench import campaign as bench_campaign
from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import find_offline_copy

pytestmark = pytest.mark.skipif(find_offline_copy() is None,
                                reason="the offline CIFAR-10 copy is not beside the repository")


def test_designs_side_by_side_and_ratios():
    rows = bench_campaign.run(make_config("smoke", device="cpu"), steps=1, sizes=(1, 2))
    assert [row["design"] for row in rows] == ["single, per-step sync", "single, sync-free", "wide N=1 grouped",
                                               "wide N=2 grouped", "wide N=1 serial", "wide N=2 serial"]
    assert [row["layout"] for row in rows] == [None, None, "grouped", "grouped", "serial", "serial"]
    assert all(row["seconds"] > 0 and row["steps"] == 1 for row in rows)
    for row in rows:  # students·images/s counts every member
        assert row["students_images_per_s"] == pytest.approx(row["students"] * row["images_per_s"])
    lines = bench_campaign.ratio_lines(rows)
    assert lines[0].startswith("single sync-free / single per-step sync")
    targeted = [line for line in lines if "target on CPU >= 0.9x" in line]  # the layout the CPU trainer uses
    assert [line.split(" /")[0] for line in targeted] == ["wide N=1 serial", "wide N=2 serial"]
    assert "target on a GPU >= 5x" in lines[-1]


def test_cuda_measures_the_serial_layout_only_at_small_n():
    designs = bench_campaign._designs(torch.device("cuda"), None, False, None)
    assert [d["design"] for d in designs if d["layout"] == "serial"] == ["wide N=1 serial", "wide N=2 serial",
                                                                         "wide N=4 serial"]
    assert [d["students"] for d in designs if d["layout"] == "grouped"] == [1, 2, 4, 8, 16]
    with pytest.raises(ValueError, match="layouts=\\('rows',\\) is not allowed"):
        bench_campaign._designs(torch.device("cpu"), None, False, ("rows",))


def test_compile_rows_time_the_second_epoch():
    rows = bench_campaign.compile_rows(make_config("smoke", device="cpu"), members=2, steps=1, choices=("none",))
    assert len(rows) == 1 and rows[0]["ran"] == "none" and rows[0]["members"] == 2
    assert rows[0]["students_images_per_s"] == pytest.approx(2 * 64 / rows[0]["second_epoch_s"])
