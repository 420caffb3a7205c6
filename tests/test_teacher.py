"""igkd_lib.training.teacher and igkd_lib.training.loop: recipes, resume, shipped weights and their verification."""
import dataclasses
import json

import pytest
import torch

from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import load_splits
from igkd_lib.training import teacher as teacher_module
from igkd_lib.training.loop import warmup_cosine
from igkd_lib.training.teacher import TeacherRecipe, get_teacher, load_shipped_teacher, ship_teacher, train_teacher
from igkd_lib.training.teacher_shipping import CPU_RECIPE

TINY = TeacherRecipe(epochs=2, batch_size=32, lr=0.05, weight_decay=5e-4, warmup=0.2, resolutions=((0, 16), (1, 32)))


@pytest.fixture(scope="module")
def tiny_data():
    config = make_config("smoke", n_train=64, n_test=40)
    return load_splits(config)


def test_warmup_cosine_shape():
    lr_at = warmup_cosine(1.0, total_steps=100, warmup=0.3)
    assert lr_at(0) == pytest.approx(1 / 30) and lr_at(29) == pytest.approx(1.0)
    assert lr_at(99) < 0.01 and all(lr_at(i) >= lr_at(i + 1) for i in range(30, 99))


def test_recipe_resolution_schedule():
    assert [CPU_RECIPE.size_at(e) for e in (0, 7, 8, 13, 14, 19)] == [16, 16, 24, 24, 32, 32]


def test_resume_gives_the_same_teacher_as_an_uninterrupted_run(tiny_data, tmp_path):
    train, test = tiny_data
    whole = train_teacher(TINY, train, test, torch.device("cpu"), progress=False)
    checkpoint = tmp_path / "teacher.pt"
    first = train_teacher(TINY, train, test, torch.device("cpu"), checkpoint=checkpoint, progress=False, stop_after=1)
    assert len(first.log) == 1
    resumed = train_teacher(TINY, train, test, torch.device("cpu"), checkpoint=checkpoint, progress=False)
    assert [r["loss"] for r in resumed.log] == [r["loss"] for r in whole.log]
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_shipped_weights_are_verified_by_sha256(tiny_data, tmp_path):
    train, test = tiny_data
    result = train_teacher(dataclasses.replace(TINY, epochs=1), train, test, torch.device("cpu"), progress=False)
    weights = tmp_path / "teacher.pt"
    card = ship_teacher(result, TINY, train.source, torch.device("cpu"), weights=weights)
    model, loaded_card = load_shipped_teacher(weights)
    assert loaded_card["sha256"] == card["sha256"] and not model.training
    assert card["status"] == "provisional: epoch 1 of 2"  # shipped before the end of its recipe
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), result.model.eval().cpu()(x.contiguous(memory_format=torch.channels_last)),
                              atol=1e-5)
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(teacher_module.WeightsError, match=card["sha256"]):  # damaged: never used
        load_shipped_teacher(weights)


def test_get_teacher_trains_only_when_asked_and_caches_it(tmp_path, monkeypatch):
    monkeypatch.setattr(teacher_module, "SHIPPED_WEIGHTS", tmp_path / "absent.pt")
    config = make_config("smoke", n_train=32, n_test=20, cache_dir=str(tmp_path), teacher_batch_size=16)
    with pytest.raises(teacher_module.WeightsError, match="absent.pt is absent.*teacher_source=train"):
        get_teacher(config, progress=False)
    config = config.replace(teacher_source="train")
    model, info = get_teacher(config, progress=False)
    assert info.origin == "trained" and not model.training
    card = json.loads(next((tmp_path / "teachers").glob("*/teacher.json")).read_text())
    assert card["sha256"] == info.sha256
    again, info_again = get_teacher(config, progress=False)  # cached: same weights, no retraining
    assert info_again.sha256 == info.sha256
