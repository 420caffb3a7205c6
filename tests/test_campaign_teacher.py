"""igkd_lib.campaign.paper_teacher: which teacher a profile uses, resume files, installation."""
import json

import pytest
import torch

from igkd_lib import models
from igkd_lib.campaign.paper_teacher import RESUME_FILES, install, join_checkpoint, split_checkpoint
from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.errors import WeightsError
from igkd_lib.storage import sha256_file
from igkd_lib.training.teacher import preferred_weights


def _teacher_files(folder, accuracy, source="offline", name="teacher.pt"):
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    weights = folder / name
    torch.save(models.teacher().state_dict(), weights)
    card = {"sha256": sha256_file(weights), "test_accuracy": accuracy, "data_source": source, "recipe": {},
            "stages": [{}], "status": "complete", "log": [], "trained_on": "cpu", "commit": "abc123"}
    weights.with_suffix(".json").write_text(json.dumps(card))
    return weights


def test_paper_teacher_is_the_paper_default_and_elsewhere_only_where_better(tmp_path):
    cpu = _teacher_files(tmp_path / "cpu", 90.16)
    paper = tmp_path / "paper" / "teacher.pt"
    assert preferred_weights(make_config("paper"), paper, cpu) == cpu  # not installed yet
    _teacher_files(tmp_path / "paper", 89.0)
    assert preferred_weights(make_config("paper"), paper, cpu) == paper
    assert preferred_weights(make_config("smoke"), paper, cpu) == cpu  # worse than the CPU teacher
    _teacher_files(tmp_path / "paper", 93.2)
    assert preferred_weights(make_config("quick"), paper, cpu) == paper
    _teacher_files(tmp_path / "paper", 93.2, source="torchvision")  # not measured on the same data
    assert preferred_weights(make_config("quick"), paper, cpu) == cpu


def test_split_checkpoint_files_fit_and_join_back_verified(tmp_path):
    model = models.teacher()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)
    model(torch.rand(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    log = [{"epoch": e, "loss": 1.0, "test_acc": 10.0 * e} for e in range(1, 5)]
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3, "log": log,
             "meta": {"recipe": {"resolutions": ((0, 32),)}, "n_train": 32, "source": "offline"}}
    torch.save(state, tmp_path / "checkpoint.pt")
    hashes = split_checkpoint(tmp_path / "checkpoint.pt", tmp_path / "out")
    assert all((tmp_path / "out" / name).stat().st_size < 16 * 2**20 for name in RESUME_FILES)
    for name in RESUME_FILES:  # what a window returns loads as tensors and plain data only
        torch.load(tmp_path / "out" / name, weights_only=True)
    assert join_checkpoint(tmp_path / "out", tmp_path / "joined.pt", hashes, state["meta"])
    joined = torch.load(tmp_path / "joined.pt", weights_only=True)
    assert joined["epoch"] == 3 and joined["log"] == log and joined["meta"] == state["meta"]
    assert all(torch.equal(joined["model"][k], v) for k, v in state["model"].items())
    for key, value in state["optimizer"]["state"].items():
        assert torch.equal(joined["optimizer"]["state"][key]["momentum_buffer"], value["momentum_buffer"])
    assert not join_checkpoint(tmp_path / "nothing", tmp_path / "other.pt")
    with pytest.raises(ValueError, match="SHA-256"):
        join_checkpoint(tmp_path / "out", tmp_path / "bad.pt", {name: "0" * 64 for name in RESUME_FILES})
    with pytest.raises(ValueError, match="without their SHA-256"):
        join_checkpoint(tmp_path / "out", tmp_path / "bad.pt", None)
    with pytest.raises(ValueError, match="resumes another run"):
        join_checkpoint(tmp_path / "out", tmp_path / "bad.pt", hashes, {**state["meta"], "n_train": 50_000})
    wrong = {**state, "model": {**state["model"], "classifier.1.weight": torch.zeros(3, 3)}}
    torch.save(wrong, tmp_path / "wrong.pt")
    other = split_checkpoint(tmp_path / "wrong.pt", tmp_path / "wrong")
    with pytest.raises(ValueError, match="classifier.1.weight"):  # checked against the teacher this checkout builds
        join_checkpoint(tmp_path / "wrong", tmp_path / "bad.pt", other)
    assert not (tmp_path / "bad.pt").exists()


def test_install_measures_accuracy_again_and_refuses_a_mismatched_card(tmp_path):
    returned = _teacher_files(tmp_path / "returned", 99.0)
    test = Cifar10(torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8), torch.arange(20) % 10, torch.arange(20),
                   "test", "offline")
    card = install(returned, test, tmp_path / "weights" / "paper.pt")
    assert card["device_test_accuracy"] == 99.0 and card["test_accuracy"] != 99.0  # measured here: near chance
    assert sha256_file(tmp_path / "weights" / "paper.pt") == card["sha256"]
    assert json.loads((tmp_path / "weights" / "paper.json").read_text())["test_accuracy"] == card["test_accuracy"]
    returned.write_bytes(returned.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(WeightsError, match="SHA-256"):
        install(returned, test, tmp_path / "weights" / "again.pt")


@pytest.mark.slow
def test_train_in_window_stops_with_the_budget_and_resumes_to_the_end_in_either_engine(tmp_path):
    from igkd_lib.campaign.paper_teacher import train_in_window

    torch.manual_seed(0)
    data = Cifar10(torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8), torch.arange(32) % 10, torch.arange(32),
                   "train", "offline")
    config = make_config("smoke", teacher_epochs=2, teacher_batch_size=32, n_train=32, device="cpu")
    checkpoint = tmp_path / "teacher" / "checkpoint.pt"
    device = torch.device("cpu")
    assert train_in_window(config, data, data.subset(torch.arange(10)), device, checkpoint, lambda: 0.0) is None
    assert len(torch.load(checkpoint, weights_only=True)["log"]) == 1  # one epoch, then the budget ended
    hashes = split_checkpoint(checkpoint, tmp_path / "returned")  # what the window returns, the next one carries
    resumed = tmp_path / "next" / "checkpoint.pt"
    assert join_checkpoint(tmp_path / "returned", resumed, hashes)
    # the next window trains with the graph engine: the same run goes on from the returned files
    graph = config.replace(teacher_engine="graph")
    result = train_in_window(graph, data, data.subset(torch.arange(10)), device, resumed, lambda: 1e9)
    assert result is not None and [row["epoch"] for row in result.log] == [1, 2]
    assert [row.get("trainer", "loop") for row in result.log] == ["loop", "graph"]


def test_the_first_teacher_epoch_of_a_gpu_window_respects_the_budget(tmp_path, monkeypatch):
    """No epoch timed yet: a window with less than the measured first-epoch cost left starts none (no GPU needed:
    it returns before any training)."""
    from igkd_lib.campaign import paper_teacher

    monkeypatch.setattr(paper_teacher, "teacher_trainer", lambda engine: pytest.fail("an epoch was started"))
    config = make_config("smoke", teacher_source="train")
    left = 1.2 * paper_teacher.FIRST_EPOCH_S["cuda"]
    assert paper_teacher.train_in_window(config, None, None, torch.device("cuda"), tmp_path / "c.pt",
                                         lambda: left) is None
