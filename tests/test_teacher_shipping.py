"""igkd_lib.training.teacher_shipping: the shipped teacher's stages, trained in turn, adopted and shipped."""
import dataclasses
import json

import pytest
import torch

from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import load_splits
from igkd_lib.training import teacher as teacher_module
from igkd_lib.training.teacher import TeacherRecipe, get_teacher, load_shipped_teacher, ship_teacher, train_teacher

TINY = TeacherRecipe(epochs=2, batch_size=32, lr=0.05, weight_decay=5e-4, warmup=0.2, resolutions=((0, 16), (1, 32)))


@pytest.fixture(scope="module")
def tiny_data():
    config = make_config("smoke", n_train=64, n_test=40)
    return load_splits(config)


def test_an_averaged_stage_returns_the_moving_average_and_resumes_it(tiny_data, tmp_path):
    from igkd_lib.storage import model_sha256
    from igkd_lib.training.teacher import AveragedTeacherRecipe
    from igkd_lib.training.teacher_shipping import ship_stages, stage_checkpoint

    train, test = tiny_data
    recipe = AveragedTeacherRecipe(**{**dataclasses.asdict(TINY), "ema_decay": 0.5})
    assert dataclasses.asdict(TINY) == {k: v for k, v in dataclasses.asdict(recipe).items() if k != "ema_decay"}
    whole = train_teacher(recipe, train, test, torch.device("cpu"), progress=False)
    plain = train_teacher(TINY, train, test, torch.device("cpu"), progress=False)  # same seed, same steps
    assert [r["loss"] for r in whole.log] == [r["loss"] for r in plain.log]  # averaging does not touch training
    assert model_sha256(whole.model) != model_sha256(plain.model)  # but the run returns the average
    assert all("live_test_acc" in row for row in whole.log) and "live_test_acc" not in plain.log[0]
    assert [r["live_test_acc"] for r in whole.log] == [r["test_acc"] for r in plain.log]
    checkpoint = stage_checkpoint(tmp_path, (recipe,), 0)
    train_teacher(recipe, train, test, torch.device("cpu"), checkpoint=checkpoint, progress=False, stop_after=1)
    resumed = train_teacher(recipe, train, test, torch.device("cpu"), checkpoint=checkpoint, progress=False)
    assert model_sha256(resumed.model) == model_sha256(whole.model)  # the average is checkpointed with the model
    card = ship_stages((recipe,), tmp_path, weights=tmp_path / "shipped.pt")  # what ships is the average
    shipped, _ = load_shipped_teacher(tmp_path / "shipped.pt")
    assert model_sha256(shipped) == model_sha256(whole.model) and card["test_accuracy"] == whole.log[-1]["test_acc"]


def test_shipped_teacher_card_if_present():
    shipped = load_shipped_teacher()
    if shipped is None:
        pytest.skip("no shipped teacher weights in this checkout")
    model, card = shipped
    assert card["parameters"] == 2_236_682 == sum(p.numel() for p in model.parameters())
    assert card["test_accuracy"] == card["log"][-1]["test_acc"]
    if card["status"] == "complete":  # the weights are those of the recipe in the code, all of it
        from igkd_lib.training.teacher_shipping import CPU_STAGES
        assert card["stages"] == json.loads(json.dumps([dataclasses.asdict(r) for r in CPU_STAGES]))
        assert len(card["log"]) == sum(r.epochs for r in CPU_STAGES)
        assert card["test_accuracy"] >= teacher_module.SHIPPED_TARGET, "a finished shipped teacher reaches the target"
    else:
        assert card["status"].startswith("provisional: epoch ")
    # The 90% target is the issue's; a shipped teacher short of it says so wherever it is described.
    _, info = get_teacher(make_config("smoke"), progress=False)
    assert info.origin == "shipped" and info.sha256 == card["sha256"]
    assert (("below the 90% target" in info.describe())
            == (card["test_accuracy"] < teacher_module.SHIPPED_TARGET == 90.0))


def test_stages_continue_from_the_previous_stage_and_ship_one_joined_log(tiny_data, tmp_path):
    from igkd_lib.storage import model_sha256
    from igkd_lib.training.teacher_shipping import ship_stages, stage_checkpoint, train_stages

    train, test = tiny_data
    second = TeacherRecipe(epochs=1, batch_size=32, lr=0.01, weight_decay=5e-4, warmup=0.0, seed=1)
    stages = (TINY, second)
    weights = tmp_path / "shipped.pt"
    with pytest.raises(FileNotFoundError, match="cache_dir="):
        ship_stages(stages, tmp_path, weights=weights)
    first = train_teacher(TINY, train, test, torch.device("cpu"), checkpoint=stage_checkpoint(tmp_path, stages, 0),
                          progress=False)
    card = ship_stages(stages, tmp_path, weights=weights)
    assert card["status"] == "provisional: epoch 2 of 3"  # stage 1 done, stage 2 not started
    result = train_stages(stages, train, test, torch.device("cpu"), tmp_path, progress=False)
    state = torch.load(stage_checkpoint(tmp_path, stages, 1), map_location="cpu", weights_only=False)
    assert state["meta"]["init_sha256"] == model_sha256(first.model)  # stage 2 started from stage 1's end
    card = ship_stages(stages, tmp_path, weights=weights)
    assert card["status"] == "complete" and len(card["stages"]) == 2
    assert [(r["epoch"], r["stage"], r["image_size"]) for r in card["log"]] == [(1, 1, 16), (2, 1, 32), (3, 2, 32)]
    assert card["test_accuracy"] == result.final_accuracy == card["log"][-1]["test_acc"]
    model, _ = load_shipped_teacher(weights)
    assert model_sha256(model) == model_sha256(result.model)


def test_a_finished_shipped_stage_is_adopted_so_the_next_stage_starts_from_its_weights(tiny_data, tmp_path):
    from igkd_lib.storage import model_sha256
    from igkd_lib.training.teacher_shipping import adopt_shipped_stages, ship_stages, stage_checkpoint, train_stages

    train, test = tiny_data
    second = TeacherRecipe(epochs=1, batch_size=32, lr=0.01, weight_decay=5e-4, warmup=0.0, seed=1)
    stages, weights = (TINY, second), tmp_path / "shipped.pt"
    unfinished = train_teacher(TINY, train, test, torch.device("cpu"), progress=False, stop_after=1)
    ship_teacher(unfinished, TINY, train.source, torch.device("cpu"), weights=weights)
    with pytest.raises(ValueError, match="stopped at epoch 1, before the end"):
        adopt_shipped_stages(stages, tmp_path / "cache", len(train), weights=weights)
    with pytest.raises(ValueError, match="allowed: stages that begin with the card's stages"):
        adopt_shipped_stages((second, TINY), tmp_path / "cache", len(train), weights=weights)
    first = train_teacher(TINY, train, test, torch.device("cpu"), progress=False)
    ship_teacher(first, TINY, train.source, torch.device("cpu"), weights=weights)
    cache = tmp_path / "cache"  # a machine without stage 1's checkpoint
    assert adopt_shipped_stages(stages, cache, len(train), weights=weights) == stage_checkpoint(cache, stages, 0)
    train_stages(stages, train, test, torch.device("cpu"), cache, progress=False)
    state = torch.load(stage_checkpoint(cache, stages, 1), map_location="cpu", weights_only=False)
    assert state["meta"]["init_sha256"] == model_sha256(first.model)  # stage 2 began at the shipped weights
    card = ship_stages(stages, cache, weights=weights)
    assert (card["status"] == "complete"
            and [r["test_acc"] for r in card["log"][:2]] == [r["test_acc"] for r in first.log])
    third = dataclasses.replace(second, seed=2)  # a stage added after those shipped, on another fresh machine
    fresh = tmp_path / "fresh"
    assert (adopt_shipped_stages((*stages, third), fresh, len(train), weights=weights)
            == stage_checkpoint(fresh, (*stages, third), 1))
    shipped_model, _ = load_shipped_teacher(weights)
    train_stages((*stages, third), train, test, torch.device("cpu"), fresh, progress=False)
    state = torch.load(stage_checkpoint(fresh, (*stages, third), 2), map_location="cpu", weights_only=False)
    assert state["meta"]["init_sha256"] == model_sha256(shipped_model)  # stage 3 began at the shipped weights
    card3 = ship_stages((*stages, third), fresh, weights=tmp_path / "third.pt")
    assert [(r["epoch"], r["stage"]) for r in card3["log"]] == [(1, 1), (2, 1), (3, 2), (4, 3)]
    assert card3["log"][:3] == card["log"] and card3["status"] == "complete"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(teacher_module.WeightsError, match="does not verify"):
        adopt_shipped_stages(stages, cache, len(train), weights=weights)
