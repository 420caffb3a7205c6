"""igkd_lib.training.wide and igkd_lib.training.wide_model: a group trained as one wide network equals its
single runs (CPU)."""
import pytest
import torch

from igkd_lib import models
from igkd_lib.config import ConfigError, make_config
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.errors import NonFiniteLossError
from igkd_lib.training import student, wide
from igkd_lib.training.wide_model import WideStudent, split_states

RTOL, ATOL = 1e-5, 1e-6


def _tiny(n_train):
    """A linear teacher (input-dependent logits at no cost), random train/test images and maps, in the
    default dtype (the float64 tests build theirs after switching it)."""
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)).eval()
    sets = []
    for n, seed in ((n_train, 0), (8, 1)):
        g = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
        sets.append(Cifar10(images, torch.randint(0, 10, (n,), generator=g), torch.arange(n), "train", "synthetic"))
    return teacher, *sets, torch.rand(n_train, 32, 32, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def tiny():
    return _tiny(40)


def _config(tmp_path, **kw):
    # cut 15: the stem and three inverted-residual blocks, the last one with its residual connection
    values = dict(cache_dir=str(tmp_path), device="cpu", student_epochs=2, student_batch_size=16, p=0.5,
                  alpha=0.5, student_cut=15, eval_batch_size=16)
    return make_config("smoke", **{**values, **kw})


def _single(member, tiny):
    teacher, train, test, maps = tiny
    return student.train_student(member.config, member.method, member.seed, teacher=teacher, maps=maps,
                                 train=train, test=test, progress=False)


def _group(members, tiny, layout="auto", **kw):
    teacher, train, test, maps = tiny
    members = [wide.Member(m.config.replace(wide_layout=layout), m.method, m.seed) for m in members]
    return wide.train_group(members, teacher=teacher, maps=maps, train=train, test=test, progress=False, **kw)


def _assert_same_run(got, expected):
    assert [set(row) for row in got.log] == [set(row) for row in expected.log]
    for key in ("loss", "train_acc", "test_acc"):
        torch.testing.assert_close(torch.tensor([row[key] for row in got.log], dtype=torch.float64),
                                   torch.tensor([row[key] for row in expected.log], dtype=torch.float64),
                                   rtol=RTOL, atol=ATOL, msg=key)
    assert type(got.model) is type(expected.model)
    got_state, expected_state = got.model.state_dict(), expected.model.state_dict()
    assert list(got_state) == list(expected_state)
    for key, value in expected_state.items():
        torch.testing.assert_close(got_state[key], value, rtol=RTOL, atol=ATOL, msg=key)


@pytest.fixture
def float64():
    """Float64 everywhere the models and inputs are built: no rounding noise for Adam to amplify."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _three(config):
    return [wide.Member(config, "baseline", 0), wide.Member(config, "kd", 1), wide.Member(config, "kd_ig", 2)]


LAYOUTS = pytest.mark.parametrize("layout", ["grouped", "serial"])


@pytest.mark.slow
@LAYOUTS
def test_group_equals_single_runs_step_by_step_float32(tmp_path, layout):
    """One step per epoch (batch = training set): each epoch's loss is that step's loss; rtol 1e-5.

    Float32 weights are compared in float64 below: Adam divides each gradient by its own magnitude, so
    elements whose true gradient is (near) zero, e.g. a BatchNorm bias followed by a convolution and
    another BatchNorm, move by rounding noise: the same single run with 1 and 2 CPU threads already
    differs there by ~5e-3 after three steps.
    """
    small = _tiny(16)
    config = _config(tmp_path, student_epochs=3)
    for got, member in zip(_group(_three(config), small, layout=layout), _three(config)):
        expected = _single(member, small)
        for key in ("loss", "train_acc"):
            torch.testing.assert_close([row[key] for row in got.log], [row[key] for row in expected.log],
                                       rtol=RTOL, atol=ATOL)


@pytest.mark.slow
@LAYOUTS
def test_group_equals_single_runs_step_by_step_float64(tmp_path, float64, layout):
    """Float64: baseline, kd and kd_ig (seeds 0, 1, 2) after each of three steps: weights, losses, rows."""
    small = _tiny(8)
    for epochs in (1, 3):
        config = _config(tmp_path, student_epochs=epochs, student_batch_size=8)
        for got, member in zip(_group(_three(config), small, layout=layout), _three(config)):
            _assert_same_run(got, _single(member, small))


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["grouped", "serial", "member"])
def test_group_with_mixed_knobs_equals_single_runs(tmp_path, float64, layout):
    """Three steps per epoch (8, 8, 4 images: the last one short), two epochs; members differ in every per-member
    knob (the teacher's signal too: online, online_clean between online members, cached)."""
    data = _tiny(20)
    config = _config(tmp_path, student_batch_size=8)
    members = [wide.Member(config.replace(teacher_logits="cached", temperature=4.0), "kd", 0),
               wide.Member(config.replace(shuffle_maps=True, blend=0.75), "ig", 1),
               wide.Member(config.replace(map_alignment="official", p=1.0, alpha=0.1), "kd_ig", 0),
               wide.Member(config.replace(teacher_logits="online_clean", blend=0.75), "kd_ig", 2),
               wide.Member(config, "kd_ig", 3),
               wide.Member(config.replace(teacher_logits="online_clean"), "kd", 1)]
    results = _group(members, data, layout=layout)
    for got, member in zip(results, members):
        _assert_same_run(got, _single(member, data))
    assert results[0].info == {"compile": "none", "precision": "fp32", "trainer": "wide", "group_size": 6,
                               "layout": layout}


def test_split_states_load_into_ordinary_students():
    students = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        students.append(models.student(5))
    states = split_states(WideStudent(students), [s.state_dict() for s in students])
    for state, original in zip(states, students):
        fresh = models.student(5)
        fresh.load_state_dict(state)
        for key, value in original.state_dict().items():
            assert torch.equal(fresh.state_dict()[key], value), key
    assert not torch.equal(states[0]["classifier.1.weight"], states[1]["classifier.1.weight"])


@pytest.mark.parametrize("layout", ["grouped", "serial", "member"])
def test_wide_forward_equals_the_students_forward(layout):
    students = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        students.append(models.student(9, normalise=True).eval())
    x = torch.rand(3, 5, 3, 32, 32)
    out = WideStudent(students, layout).eval()(x.transpose(0, 1).reshape(5, 9, 32, 32))
    expected = torch.stack([s(x[i]) for i, s in enumerate(students)])
    torch.testing.assert_close(out, expected, rtol=RTOL, atol=ATOL)


def test_serial_layout_trains_the_wide_tensors_in_place(float64):
    """The serial layout's slices are views: a training-mode pass updates the wide running statistics
    (each member's own, with one shared batch count) and its gradients land on the wide parameters,
    as the grouped layout's do; its member template is no part of the network."""
    students = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        students.append(models.student(9))
    x = torch.rand(4, 6, 32, 32)
    runs = []
    for layout in ("grouped", "serial"):
        net = WideStudent(students, layout).train()
        net(x).square().sum().backward()
        runs.append(net)
    grouped, serial = runs
    assert [name for name, _ in serial.named_parameters()] == [name for name, _ in grouped.named_parameters()]
    assert list(serial.state_dict()) == list(grouped.state_dict())
    for key, value in grouped.state_dict().items():
        torch.testing.assert_close(serial.state_dict()[key], value, rtol=RTOL, atol=ATOL, msg=key)
    assert int(serial.features[1].conv[2].num_batches_tracked) == 1
    for (name, p), q in zip(grouped.named_parameters(), serial.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=RTOL, atol=ATOL, msg=name)


def test_member_major_layout_trains_the_wide_tensors_in_place(float64):
    """The member-major layout on the same wide parameters: training-mode logits, gradients, running statistics
    and batch counts equal the grouped layout's (float64; parameters whose true gradient is zero, a BatchNorm
    bias followed by another BatchNorm, are compared in absolute terms), and so do its evaluation logits."""
    students = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        students.append(models.student(9, normalise=True))
    x = torch.rand(4, 9, 32, 32)
    nets = [WideStudent(students, layout).train() for layout in ("grouped", "member")]
    outs = [net(x) for net in nets]
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-12, atol=1e-12)
    for out in outs:
        out.square().sum().backward()
    grouped, member = nets
    for (name, p), q in zip(grouped.named_parameters(), member.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-9, atol=1e-12, msg=name)
    for key, value in grouped.state_dict().items():
        torch.testing.assert_close(member.state_dict()[key], value, rtol=1e-12, atol=1e-12, msg=key)
    assert int(member.features[1].conv[2].num_batches_tracked) == 1
    torch.testing.assert_close(member.eval()(x), grouped.eval()(x), rtol=1e-12, atol=1e-12)


def test_member_major_names_a_layer_it_cannot_run():
    from igkd_lib.training import member_major

    x = torch.rand(2, 1, 8, 8, 4)
    with pytest.raises(ValueError, match="padding_mode='reflect' cannot run member-major; allowed: zeros"):
        member_major.features(torch.nn.Conv2d(8, 8, 3, padding=1, groups=2, padding_mode="reflect"), x, 2)
    with pytest.raises(ValueError, match="a Hardswish cannot run member-major; allowed: Conv2d"):
        member_major.features(torch.nn.Hardswish(), x, 2)


def test_an_unknown_layout_is_named():
    with pytest.raises(ValueError, match="layout='rows' is not allowed; allowed: grouped, serial, member"):
        WideStudent([models.student(5)], "rows")
    with pytest.raises(ConfigError, match="wide_layout"):
        make_config("smoke", wide_layout="rows")


def test_on_epoch_and_should_stop(tmp_path, tiny):
    config = _config(tmp_path, student_epochs=3)
    members = [wide.Member(config, "baseline", 0), wide.Member(config, "kd", 0)]
    seen = []
    results = _group(members, tiny, on_epoch=lambda i, row: seen.append((i, row["epoch"])),
                     should_stop=lambda: len(seen) >= 2)
    assert seen == [(0, 1), (1, 1)]
    assert [len(r.log) for r in results] == [1, 1]
    assert set(results[0].log[0]) == {"epoch", "loss", "train_acc", "test_acc", "seconds", "images_per_s"}


def test_members_must_share_the_group_fields(tmp_path, tiny):
    config = _config(tmp_path)
    with pytest.raises(ValueError, match=r"student_batch_size \(16, 32\)"):
        _group([wide.Member(config, "kd", 0), wide.Member(config.replace(student_batch_size=32), "kd", 1)], tiny)
    with pytest.raises(ValueError, match="student_cut"):
        _group([wide.Member(config, "kd", 0), wide.Member(config.replace(student_cut=13), "kd", 1)], tiny)
    with pytest.raises(ValueError, match="wide_layout"):  # one network runs in one layout
        wide.check_group([wide.Member(config, "kd", 0), wide.Member(config.replace(wide_layout="serial"), "kd", 1)])
    with pytest.raises(ConfigError, match="student_dropout"):
        _group([wide.Member(config.replace(student_dropout=0.2), "kd", 0)], tiny)
    with pytest.raises(ValueError, match="teacher"):
        teacher, train, test, maps = tiny
        wide.train_group([wide.Member(config, "kd", 0)], teacher=None, maps=None, train=train, test=test,
                         progress=False)


def test_a_non_finite_member_is_named(tmp_path, tiny):
    teacher, train, test, maps = tiny
    bad_maps = maps.clone()
    bad_maps[:, 0, 0] = float("inf")  # normalised: inf / inf = nan in every overlaid image
    config = _config(tmp_path, student_epochs=1, p=1.0)
    members = [wide.Member(config, "baseline", 0), wide.Member(config, "ig", 5)]
    with pytest.raises(NonFiniteLossError, match=r"member 1 \(ig, seed 5\)") as error:
        wide.train_group(members, teacher=teacher, maps=bad_maps, train=train, test=test, progress=False)
    assert "baseline" not in str(error.value)


def test_member_losses_equal_kd_loss():
    from igkd_lib.training.distill import kd_loss

    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(3, 8, 10, generator=g), torch.randn(3, 8, 10, generator=g)
    labels = torch.randint(0, 10, (3, 8), generator=g)
    alpha, temperature = torch.tensor([0.0, 0.01, 0.5]), torch.tensor([2.5, 2.5, 4.0])
    got = wide.member_losses(logits, targets, labels, alpha, temperature)
    expected = torch.stack([kd_loss(logits[i], targets[i], labels[i], temperature=float(temperature[i]),
                                    alpha=float(alpha[i])) for i in range(3)])
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
