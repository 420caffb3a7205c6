"""igkd_lib.training.student: methods, determinism and resume of the student trainer on tiny data."""
import pytest
import torch

from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.training import student


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return Cifar10(images, labels, torch.arange(n), "train", "synthetic")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    # a linear teacher: input-dependent logits at no cost (a fresh MobileNetV2 gives near-constant ones)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)).eval()
    train, test = _data(64, 0), _data(32, 1)
    maps = torch.rand(64, 32, 32, generator=torch.Generator().manual_seed(2))
    return teacher, train, test, maps


def _config(tmp_path, **kw):
    values = dict(cache_dir=str(tmp_path), device="cpu", student_epochs=2, student_batch_size=32, p=0.5,
                  alpha=0.5, student_cut=17, eval_batch_size=32)
    values.update(kw)
    return make_config("smoke", **values)


def test_method_config():
    c = make_config("smoke", alpha=0.3, p=0.2)
    assert (student.method_config(c, "baseline").alpha, student.method_config(c, "baseline").p) == (0.0, 0.0)
    assert (student.method_config(c, "kd").alpha, student.method_config(c, "kd").p) == (0.3, 0.0)
    assert (student.method_config(c, "ig").alpha, student.method_config(c, "ig").p) == (0.0, 0.2)
    assert student.method_config(c, "kd_ig") == c
    with pytest.raises(ValueError, match="baseline, kd, ig, kd_ig"):
        student.method_config(c, "distill")


def test_shuffled_maps_are_a_derangement():
    rows = student.map_source_rows(50, True, seed=3)
    assert sorted(rows.tolist()) == list(range(50)) and not (rows == torch.arange(50)).any()
    assert torch.equal(student.map_source_rows(5, False, 0), torch.arange(5))


def _run(config, tiny, method="kd_ig", **kw):
    teacher, train, test, maps = tiny
    return student.train_student(config, method, 0, teacher=teacher, maps=maps, train=train, test=test,
                                 progress=False, **kw)


def _numbers(result):
    return [(row["loss"], row["train_acc"], row["test_acc"]) for row in result.log]


def test_same_seed_gives_identical_numbers(tmp_path, tiny):
    config = _config(tmp_path, teacher_logits="online")
    first, second = _run(config, tiny), _run(config, tiny)
    assert _numbers(first) == _numbers(second) and len(first.log) == 2
    assert set(first.log[0]) >= {"epoch", "loss", "train_acc", "test_acc", "seconds", "images_per_s"}
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_equals_uninterrupted(tmp_path, tiny):
    config = _config(tmp_path, shuffle_maps=True)
    whole = _run(config, tiny)
    path = tmp_path / "run.pt"
    part = _run(config, tiny, checkpoint=path, stop_after=1)
    assert len(part.log) == 1
    resumed = _run(config, tiny, checkpoint=path)
    assert _numbers(resumed) == _numbers(whole)


def test_methods_differ_and_cached_logits_work(tmp_path, tiny):
    config = _config(tmp_path, student_epochs=1)
    losses = {m: _run(config, tiny, m).log[0]["loss"] for m in ("baseline", "kd", "kd_ig")}
    assert len(set(losses.values())) == 3
    cached = _run(config.replace(teacher_logits="cached"), tiny, "kd").log[0]["loss"]
    assert cached != losses["kd"]


def test_baseline_needs_neither_teacher_nor_maps(tmp_path, tiny):
    _, train, test, _ = tiny
    result = student.train_student(_config(tmp_path, student_epochs=1), "baseline", 0, teacher=None, maps=None,
                                   train=train, test=test, progress=False)
    assert len(result.log) == 1


def test_bad_maps_and_missing_teacher_are_errors(tmp_path, tiny):
    teacher, train, test, maps = tiny
    config = _config(tmp_path, student_epochs=1)
    with pytest.raises(ValueError, match="maps"):
        student.train_student(config, "ig", 0, teacher=None, maps=maps[:10], train=train, test=test, progress=False)
    with pytest.raises(ValueError, match="teacher"):
        student.train_student(config, "kd", 0, teacher=None, maps=None, train=train, test=test, progress=False)


def test_batchnorm_recalibration_changes_the_evaluation_only(tmp_path, tiny):
    from igkd_lib.training.batchnorm import recalibrate

    on = _run(_config(tmp_path, bn_recalibrate=True), tiny)
    off = _run(_config(tmp_path, bn_recalibrate=False), tiny)
    assert [(r["loss"], r["train_acc"]) for r in on.log] == [(r["loss"], r["train_acc"]) for r in off.log]
    state_on, state_off = on.model.state_dict(), off.model.state_dict()
    running = [k for k in state_on if "running" in k]
    assert running and any(not torch.equal(state_on[k], state_off[k]) for k in running)
    assert all(torch.equal(state_on[k], state_off[k]) for k in state_on if "running" not in k and "batches" not in k)
    recalibrate(off.model, tiny[1].images)  # the same statistics as the run computed before its last evaluation
    assert all(torch.allclose(state_on[k], off.model.state_dict()[k]) for k in running)


def test_methods_share_shuffles_crops_and_flips(tmp_path, tiny):
    """Common random numbers: the overlay draws from its own generator, so arms of one seed are paired."""
    from igkd_lib.data.augment import draws_batch
    from igkd_lib.training.loop import epoch_generator

    _, train, _, maps = tiny
    config = _config(tmp_path, p=0.5, blend=0.5)
    draws = {}
    for method in ("baseline", "kd_ig"):
        method_cfg = student.method_config(config, method)
        draws[method] = student.student_draw_fn(method_cfg, 3, len(train))(epoch_generator(3, 1), 1)
    for key in ("order", "offset_y", "offset_x", "flipped"):
        assert torch.equal(draws["baseline"][key], draws["kd_ig"][key]), key
    d = draws["kd_ig"]
    images, batch_maps = train.images[d["order"]], maps[d["order"]]
    plain = draws_batch(images, None, d, padding=4, p=0.0, blend=0.0)
    overlaid = draws_batch(images, batch_maps, d, padding=4, p=0.5, blend=0.5)
    chosen = d["overlay_u"] < 0.5
    assert 0 < chosen.sum() < len(chosen)
    assert torch.equal(plain[~chosen], overlaid[~chosen]) and not torch.equal(plain[chosen], overlaid[chosen])


@pytest.mark.parametrize("method", ["baseline", "kd_ig"])
def test_sync_free_loop_equals_the_per_step_path(tmp_path, tiny, method):
    """Drawing an epoch ahead and reading the sums once per epoch changes no number (CPU)."""
    config = _config(tmp_path, teacher_logits="online")
    ahead, per_step = _run(config, tiny, method), _run(config, tiny, method, per_step_sync=True)
    assert _numbers(ahead) == _numbers(per_step)
    for a, b in zip(ahead.model.state_dict().values(), per_step.model.state_dict().values()):
        assert torch.equal(a, b)
    assert ahead.info == {"compile": "none", "precision": "fp32", "trainer": "single"}


def test_teacher_logit_table_is_none_online_and_for_baseline(tmp_path, tiny):
    teacher, train, _, _ = tiny
    config = _config(tmp_path)
    device = torch.device("cpu")
    assert student.teacher_logit_table(config, teacher, train, device) is None
    assert student.teacher_logit_table(config.replace(alpha=0.0, teacher_logits="cached"), teacher, train,
                                       device) is None
    table = student.teacher_logit_table(config.replace(teacher_logits="cached"), teacher, train, device)
    torch.testing.assert_close(table, teacher(train.images.float() / 255))


def _teacher_targets(config, tiny, method="kd_ig", seed=0):
    """The teacher targets and overlay mask of the first batch of epoch 1 under ``config``."""
    from igkd_lib.training.loop import epoch_generator

    teacher, train, _, maps = tiny
    c = student.method_config(config, method)
    draws = student.student_draw_fn(c, seed, len(train))(epoch_generator(seed, 0), 0)
    batch_fn, _ = student.batch_and_loss(c, teacher, maps, train, torch.device("cpu"), seed)
    window = draws["order"][:32]
    step = {k: v[:32] for k, v in draws.items() if k != "order"}
    x, (targets,) = batch_fn(train.images[window], window, step, 0)
    return x, targets, step["overlay_u"] < c.p


def test_online_clean_teacher_differs_from_online_only_on_overlaid_images(tmp_path, tiny):
    config = _config(tmp_path, p=0.5)
    x_online, online, overlaid = _teacher_targets(config, tiny)
    x_clean, clean, _ = _teacher_targets(config.replace(teacher_logits="online_clean"), tiny)
    assert 0 < overlaid.sum() < len(overlaid)
    assert torch.equal(x_online, x_clean)  # the student's input is the same overlaid batch
    assert torch.equal(online[~overlaid], clean[~overlaid])
    assert not torch.isclose(online[overlaid], clean[overlaid]).all(dim=1).any()
    teacher = tiny[0]
    plain = _teacher_targets(config.replace(p=0.0), tiny)[0]  # the same crops and flips, no overlay
    torch.testing.assert_close(clean, teacher(plain))


def test_online_clean_equals_online_without_overlay(tmp_path, tiny):
    config = _config(tmp_path, p=0.0, student_epochs=1)
    _, online, _ = _teacher_targets(config, tiny)
    _, clean, _ = _teacher_targets(config.replace(teacher_logits="online_clean"), tiny)
    assert torch.equal(online, clean)
    same = _run(config.replace(teacher_logits="online_clean"), tiny, "kd")
    assert _numbers(same) == _numbers(_run(config, tiny, "kd"))
    assert student.teacher_logit_table(config.replace(teacher_logits="online_clean"), tiny[0], tiny[1],
                                       torch.device("cpu")) is None
