"""igkd_lib.campaign.queue and the run key: order, balance, controls, and keys that separate devices."""
import pytest
import torch

from igkd_lib.campaign.queue import (
    CONTROLS,
    TABLE1_SEEDS,
    Entry,
    compatible_runs,
    entry_key,
    group_signature,
    maps_signature,
    paper_queue,
    uses_maps,
)
from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.evidence.experiments import run_key
from igkd_lib.training.student import METHODS


def _data(n: int, split: str) -> Cifar10:
    images = torch.zeros(n, 3, 32, 32, dtype=torch.uint8)
    return Cifar10(images, torch.arange(n) % 10, torch.arange(n), split, "offline")


def test_table1_comes_first_interleaved_by_seed_then_the_controls():
    queue = paper_queue()
    table1 = [e for e in queue if e.study == "table1"]
    assert queue[:len(table1)] == table1 and len(table1) == 4 * len(TABLE1_SEEDS) == 80
    for k in range(0, 80, 4):  # every block of four is the four methods of one seed
        assert [e.method for e in queue[k:k + 4]] == list(METHODS) and len({e.seed for e in queue[k:k + 4]}) == 1
    controls = [e for e in queue if e.study == "controls"]
    assert queue[80:80 + len(controls)] == controls
    assert {dict(e.overrides).get("teacher_logits") for e in controls} >= {"official"}
    assert {dict(e.overrides).get("shuffle_maps") for e in controls} >= {True}
    assert {dict(e.overrides).get("map_alignment") for e in controls} >= {"official"}
    assert all(e.method == "kd_ig" for e in controls) and len(controls) >= 5 * len(CONTROLS)
    assert len(set(queue)) == len(queue)


def test_which_entries_read_maps_and_group_signature():
    config = make_config("paper")
    assert [uses_maps(config, Entry("table1", m, 0)) for m in METHODS] == [False, False, True, True]
    control = Entry("c", "kd_ig", 3, (("shuffle_maps", True),))
    assert group_signature(config, Entry("t", "kd", 0)) == group_signature(config, control)


def test_run_key_separates_device_precision_and_trainer():
    config = make_config("smoke")
    train, test = _data(20, "train"), _data(10, "test")
    cpu = torch.device("cpu")
    single = run_key(config, "kd_ig", 0, "sha", train, test, device=cpu)
    assert single == run_key(config, "kd_ig", 0, "sha", train, test)  # the profile's device (cpu here)
    wide = run_key(config, "kd_ig", 0, "sha", train, test, trainer="wide", device=cpu)
    gpu = run_key(config, "kd_ig", 0, "sha", train, test, trainer="wide", device=torch.device("cuda"))
    assert len({single, wide, gpu}) == 3
    # the maps' precision changes a run that reads maps, not one that does not
    fp32_maps = config.replace(ig_precision="fp32")
    assert run_key(fp32_maps, "kd_ig", 0, "sha", train, test, device=torch.device("cuda")) != \
        run_key(config, "kd_ig", 0, "sha", train, test, device=torch.device("cuda"))
    assert run_key(fp32_maps, "kd", 0, "sha", train, test, device=torch.device("cuda")) == \
        run_key(config, "kd", 0, "sha", train, test, device=torch.device("cuda"))
    with pytest.raises(ValueError, match="trainer='fast'"):
        run_key(config, "kd", 0, "sha", train, test, trainer="fast")


def test_entry_key_uses_the_wide_trainer_and_the_entry_overrides():
    config = make_config("smoke")
    train, test, cpu = _data(20, "train"), _data(10, "test"), torch.device("cpu")
    plain = entry_key(config, Entry("table1", "kd_ig", 1), "sha", train, test, cpu)
    assert plain == run_key(config, "kd_ig", 1, "sha", train, test, trainer="wide", device=cpu)
    shuffled = entry_key(config, Entry("controls", "kd_ig", 1, (("shuffle_maps", True),)), "sha", train, test, cpu)
    assert shuffled != plain


def test_runs_that_read_other_maps_never_share_a_group():
    """map_views='augmented' reads other maps than the default: it waits for a group of its own."""
    config = make_config("paper")
    augmented = Entry("faults", "kd_ig", 0, (("map_views", "augmented"),))
    plain, no_maps = Entry("table1", "kd_ig", 0), Entry("table1", "kd", 0)
    assert maps_signature(config, no_maps) is None
    assert maps_signature(config, plain) != maps_signature(config, augmented)
    group, anchor = compatible_runs(config, [(plain, "a"), (augmented, "b"), (no_maps, "c")])
    assert [e for e, _ in group] == [plain, no_maps] and anchor == maps_signature(config, plain)
    group, anchor = compatible_runs(config, [(augmented, "b"), (plain, "a")])
    assert [e for e, _ in group] == [augmented] and anchor == maps_signature(config, augmented)


def test_the_fault_ablation_is_queued_after_the_controls():
    queue = paper_queue()
    faults = [e for e in queue if e.study == "faults"]
    assert faults and queue.index(faults[0]) > max(i for i, e in enumerate(queue) if e.study == "controls")
    assert {e.method for e in faults} == {"kd", "kd_ig"}


def test_the_studies_beyond_the_paper_come_last():
    queue = paper_queue()
    studies = [i for i, e in enumerate(queue) if e.study not in ("table1", "controls", "faults")]
    assert studies and min(studies) > max(i for i, e in enumerate(queue) if e.study == "faults")


def test_beyond_the_paper_entries_are_valid_and_keep_the_queue_order(smoke_config):
    from igkd_lib.campaign.queue import _beyond_the_paper, entry_config, maps_signature

    entries = _beyond_the_paper()
    assert entries[0].study == "overlay_source" and entries[-1].study == "compression"
    # agreement, robustness and the teacher on overlaid images train nothing
    assert {e.study for e in entries} == {"overlay_source", "teacher_signal", "compression"}
    clean = [e for e in entries if dict(e.overrides).get("teacher_logits") == "online_clean"]
    assert clean and {e.method for e in clean} == {"kd_ig"}
    assert entry_config(smoke_config, clean[0]).teacher_logits == "online_clean"
    sobel = next(e for e in entries if dict(e.overrides).get("map_source") == "sobel")
    ig = next(e for e in entries if dict(e.overrides).get("map_source") == "ig_untrained")
    assert entry_config(smoke_config, sobel).map_source == "sobel"
    assert maps_signature(smoke_config, sobel) != maps_signature(smoke_config, ig)  # never grouped on one map set
