"""igkd_lib.training.graph_step and igkd_lib.training.masked_batchnorm: the graph engine's runs equal today's single
runs (CPU)."""
import pytest
import torch
from conftest import randomised_bn_teacher, run_differences

from igkd_lib import models
from igkd_lib.config import ConfigError, make_config
from igkd_lib.data import Cifar10
from igkd_lib.training import graph_step, student, wide
from igkd_lib.training.masked_batchnorm import MaskedBatchNorm2d, RowWeights, mask_batchnorms

RTOL, ATOL = 1e-5, 1e-6




def _tiny(n_train):
    sets = []
    for n, seed in ((n_train, 0), (8, 1)):
        g = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
        sets.append(Cifar10(images, torch.randint(0, 10, (n,), generator=g), torch.arange(n), "train", "synthetic"))
    return randomised_bn_teacher(), *sets, torch.rand(n_train, 32, 32, generator=torch.Generator().manual_seed(2))


def _config(tmp_path, **kw):
    # cut 17: the stem and one inverted-residual block (convolutions, depthwise, BatchNorm, the head)
    values = dict(cache_dir=str(tmp_path), device="cpu", student_epochs=2, student_batch_size=8, p=0.5,
                  alpha=0.5, student_cut=17, eval_batch_size=8, train_engine="graph")
    return make_config("smoke", **{**values, **kw})


def _single(member, data):
    teacher, train, test, maps = data
    return student.train_student(member.config, member.method, member.seed, teacher=teacher, maps=maps,
                                 train=train, test=test, progress=False)


def _graph(members, data, layout="grouped"):
    teacher, train, test, maps = data
    members = [wide.Member(m.config.replace(wide_layout=layout), m.method, m.seed) for m in members]
    return graph_step.train_members(members, teacher=teacher, maps=maps, train=train, test=test, progress=False)


def _assert_same_run(got, expected):
    assert [set(row) for row in got.log] == [set(row) for row in expected.log]
    assert len(got.log) == len(expected.log)
    worst = run_differences(got, expected, RTOL, ATOL)
    assert max(worst.values()) <= 1.0, worst  # every number within rtol * |value| + atol


def _members(config):
    return [wide.Member(config, "baseline", 0), wide.Member(config, "kd", 1), wide.Member(config, "ig", 2),
            wide.Member(config, "kd_ig", 3),
            wide.Member(config.replace(teacher_logits="online_clean"), "kd_ig", 4),
            wide.Member(config.replace(teacher_logits="cached", temperature=4.0), "kd", 5),
            wide.Member(config.replace(teacher_logits="official"), "kd_ig", 6),
            wide.Member(config.replace(shuffle_maps=True, map_alignment="official", p=1.0, blend=0.75), "kd_ig", 7)]


def test_masked_batchnorm_equals_the_unpadded_batch(float64):
    """The real rows of a padded batch: outputs, parameter gradients and running statistics of the unpadded one."""
    torch.manual_seed(0)
    plain, masked = models.student(17).train(), models.student(17).train()
    masked.load_state_dict(plain.state_dict())
    rows = RowWeights()
    assert mask_batchnorms(masked, rows) == 3
    x = torch.rand(5, 3, 32, 32)
    padded = torch.cat([x, torch.rand(3, 3, 32, 32) * 9])  # junk rows: very different statistics
    rows.weight = torch.tensor([1.0] * 5 + [0.0] * 3)
    out = masked(padded)[:5]
    expected = plain(x)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    out.square().sum().backward()
    expected.square().sum().backward()
    for (name, p), q in zip(plain.named_parameters(), masked.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-9, atol=1e-12, msg=name)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(masked.state_dict()[key], value, rtol=1e-10, atol=1e-12, msg=key)
    rows.weight = None  # no weights: the ordinary layer
    torch.testing.assert_close(masked(x), plain(x), rtol=0, atol=0)
    assert all(type(m) is MaskedBatchNorm2d for m in masked.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["grouped", "member"])
def test_graph_engine_equals_single_runs_for_every_method_and_teacher_signal(tmp_path, float64, layout):
    """Float64, 20 images in batches of 8 (the last one padded from 4), two epochs: baseline, kd, ig, kd_ig
    and every teacher-signal option (online, online_clean, cached, official), each member against its single
    run: per-epoch rows and weights; in the grouped layout and the member-major one (its masked BatchNorm too)."""
    data = _tiny(20)
    members = _members(_config(tmp_path))
    results = _graph(members, data, layout)
    for got, member in zip(results, members):
        _assert_same_run(got, _single(member, data))
    info = results[0].info
    assert {k: info[k] for k in ("compile", "precision", "trainer", "group_size", "layout")} == {
        "compile": "none", "precision": "fp32", "trainer": "graph", "group_size": 8, "layout": layout}
    assert info["teacher_inferences"] > 0 and 0 < info["table_filled"] < 1


@pytest.mark.slow
def test_graph_engine_equals_single_runs_float32_and_serial_layout(tmp_path):
    """Float32 (rtol 1e-5 on the rows; weights in float64, see tests/test_wide.py), the serial layout too."""
    data = _tiny(12)
    config = _config(tmp_path, student_epochs=2)
    members = [wide.Member(config, "kd_ig", 0), wide.Member(config.replace(teacher_logits="official"), "kd", 1)]
    for layout in ("grouped", "serial"):
        for got, member in zip(_graph(members, data, layout), members):
            expected = _single(member, data)
            for key in ("loss", "train_acc", "test_acc"):
                torch.testing.assert_close([row[key] for row in got.log], [row[key] for row in expected.log],
                                           rtol=RTOL, atol=ATOL)


def test_an_unmasked_last_batch_is_caught(tmp_path, float64, monkeypatch):
    """Planted: the padded rows enter BatchNorm's statistics; the comparison with the single run fails."""
    data = _tiny(12)
    member = wide.Member(_config(tmp_path, student_epochs=1), "baseline", 0)
    expected = _single(member, data)
    _assert_same_run(_graph([member], data)[0], expected)
    monkeypatch.setattr(MaskedBatchNorm2d, "forward", torch.nn.BatchNorm2d.forward)
    with pytest.raises(AssertionError):
        _assert_same_run(_graph([member], data)[0], expected)


def test_a_wrong_table_index_is_caught(tmp_path, float64, monkeypatch):
    """Planted: the table is read at the wrong flip; the kd run no longer equals its single run."""
    from igkd_lib.training import teacher_table

    data = _tiny(12)
    member = wide.Member(_config(tmp_path, student_epochs=1), "kd", 0)
    expected = _single(member, data)
    _assert_same_run(_graph([member], data)[0], expected)
    real = teacher_table.view_index
    monkeypatch.setattr(teacher_table, "view_index", lambda y, x, f, p: real(y, x, ~f, p))
    with pytest.raises(AssertionError):
        _assert_same_run(_graph([member], data)[0], expected)


def test_engine_choice_and_its_errors(tmp_path):
    data = _tiny(8)
    config = _config(tmp_path, student_epochs=1)
    assert _graph([wide.Member(config, "baseline", 0)], data)[0].info["trainer"] == "graph"
    assert _graph([wide.Member(config.replace(train_engine="wide"), "baseline", 0)],
                  data)[0].info["trainer"] == "wide"
    with pytest.raises(ConfigError, match="train_compile='compile' is not allowed with train_engine='graph'"):
        _graph([wide.Member(config.replace(train_compile="compile"), "baseline", 0)], data)
    with pytest.raises(ConfigError, match="train_engine"):
        make_config("smoke", train_engine="fast")
    with pytest.raises(ValueError, match="teacher=None"):
        graph_step.train_graph_group([wide.Member(config, "kd", 0)], teacher=None, maps=None, train=data[1],
                                     test=data[2], progress=False)
