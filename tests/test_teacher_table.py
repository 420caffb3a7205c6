"""igkd_lib.training.teacher_table: the teacher's logits of every clean view equal the online teacher's (CPU)."""
import pytest
import torch
import torch.nn.functional as F
from conftest import randomised_bn_teacher

from igkd_lib.config import make_config
from igkd_lib.data import Cifar10
from igkd_lib.training import student, teacher_table
from igkd_lib.training.loop import epoch_generator

CPU = torch.device("cpu")


def _data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    return Cifar10(images, torch.randint(0, 10, (n,), generator=g), torch.arange(n), "train", "synthetic")


def _view(image_uint8, offset_y, offset_x, flipped, padding):
    """One clean view, written independently of igkd_lib.data.augment: pad, crop, flip."""
    padded = F.pad(image_uint8.to(torch.get_default_dtype()) / 255.0, (padding,) * 4)
    crop = padded[:, offset_y:offset_y + 32, offset_x:offset_x + 32]
    return crop.flip(-1) if flipped else crop


def test_view_index_round_trips():
    views = torch.arange(teacher_table.view_count(4))
    back = teacher_table.view_draws(views, 4)
    assert torch.equal(teacher_table.view_index(back["offset_y"], back["offset_x"], back["flipped"], 4), views)
    assert teacher_table.view_count(4) == 162 and teacher_table.centre_view(4) == (4 * 9 + 4) * 2


def test_folding_batchnorm_keeps_the_logits(float64):
    teacher = randomised_bn_teacher()
    x = torch.rand(6, 3, 32, 32)
    folded = teacher_table.fold_batchnorm(teacher)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(folded(x), teacher(x), rtol=1e-12, atol=1e-12)


def _max_table_error(table, teacher, images, padding):
    """The largest difference between the table and the teacher on each view built by hand."""
    worst = 0.0
    side = 2 * padding + 1
    for offset_y in range(side):
        for offset_x in range(side):
            for flipped in (False, True):
                x = torch.stack([_view(image, offset_y, offset_x, flipped, padding) for image in images])
                view = (offset_y * side + offset_x) * 2 + int(flipped)
                got = table.lookup(torch.arange(len(images)), torch.full((len(images),), view))
                worst = max(worst, float((got - teacher(x)).abs().max()))
    return worst


@pytest.mark.parametrize("padding", [1])
def test_every_entry_equals_the_teacher_on_its_view(float64, padding):
    """Every (row, view) entry; and a wrong index planted in the table is caught."""
    teacher, train = randomised_bn_teacher(), _data(5)
    table = teacher_table.TeacherTable(teacher, train.images, padding, CPU, batch_size=7)
    views = teacher_table.view_count(padding)
    rows = torch.arange(5).repeat_interleave(views)
    assert table.ensure(rows, torch.arange(views).repeat(5)) == 5 * views
    assert table.ensure(rows, torch.arange(views).repeat(5)) == 0 and table.filled_fraction == 1.0
    with torch.no_grad():
        assert _max_table_error(table, teacher, train.images, padding) < 1e-5  # a float32 table
        table.values[:] = table.values[:, torch.arange(views) ^ 1]  # planted: flip bit swapped
        assert _max_table_error(table, teacher, train.images, padding) > 1e-3


def _config(tmp_path, **kw):
    values = dict(cache_dir=str(tmp_path), device="cpu", student_epochs=1, student_batch_size=8, p=0.5,
                  alpha=0.5, student_cut=15, eval_batch_size=8)
    return make_config("smoke", **{**values, **kw})


def _online_targets(config, teacher, train, maps, seed):
    """Today's targets of one epoch (epoch 0), batch by batch as the single-run trainer makes them."""
    draws = student.student_draw_fn(config, seed, len(train))(epoch_generator(seed, 0), 0)
    batch_fn, _ = student.batch_and_loss(config, teacher, maps, train, CPU, seed)
    order, batch, out = draws.pop("order"), config.student_batch_size, []
    for start in range(0, len(train), batch):
        window = slice(start, start + batch)
        out.append(batch_fn(train.images[order[window]], order[window], {k: v[window] for k, v in draws.items()},
                            0)[1][0])
    return torch.cat(out)


OPTIONS = [("kd_ig", "online", {}), ("kd_ig", "online_clean", {}), ("kd", "cached", {}),
           ("kd_ig", "official", {}), ("kd", "online", {}),
           ("kd_ig", "online", {"shuffle_maps": True, "map_alignment": "official", "p": 1.0})]


@pytest.mark.parametrize("method, signal, extra", OPTIONS)
def test_epoch_targets_equal_todays_teacher_for_every_option(tmp_path, float64, method, signal, extra,
                                                             monkeypatch):
    """The table's epoch targets equal today's online / precomputed teacher targets, row by row; a wrong
    view index planted in the lookup is caught."""
    teacher, train = randomised_bn_teacher(), _data(20)
    maps = torch.rand(20, 32, 32, generator=torch.Generator().manual_seed(2))
    config = student.method_config(_config(tmp_path, teacher_logits=signal, **extra), method)
    seed = 3
    expected = _online_targets(config, teacher, train, maps, seed)
    draws = student.student_draw_fn(config, seed, len(train))(epoch_generator(seed, 0), 0)
    stacked = {k: v.unsqueeze(0) for k, v in draws.items()}
    sources = student.map_source_rows(len(train), config.shuffle_maps, seed).unsqueeze(0)

    def targets():
        table = teacher_table.TeacherTable(teacher, train.images, config.crop_padding, CPU, batch_size=6)
        overlay = teacher_table.overlay_fn(train.images, maps, sources, stacked, [config])
        with torch.no_grad():
            return teacher_table.epoch_targets(table, [config], stacked, overlay)[0]

    torch.testing.assert_close(targets(), expected, rtol=1e-6, atol=1e-6)  # float32, as today's
    real = teacher_table.view_index
    monkeypatch.setattr(teacher_table, "view_index", lambda y, x, f, p: real(y, x, ~f, p))  # planted
    if config.p < 1 or config.teacher_logits != "online":  # p = 1, online: every target is an overlaid image's
        assert not torch.allclose(targets(), expected, rtol=1e-3, atol=1e-3)


def test_no_kd_gives_zeros_and_computes_nothing(tmp_path):
    teacher, train = randomised_bn_teacher(), _data(4)
    config = student.method_config(_config(tmp_path), "ig")
    draws = student.student_draw_fn(config, 0, 4)(epoch_generator(0, 0), 0)
    table = teacher_table.TeacherTable(teacher, train.images, 4, CPU, batch_size=4)
    out = teacher_table.epoch_targets(table, [config], {k: v.unsqueeze(0) for k, v in draws.items()}, None)
    assert out.shape == (1, 4, 10) and not out.any() and table.inferences == 0


def test_the_table_is_cached_verified_and_keyed(tmp_path):
    teacher, train = randomised_bn_teacher(), _data(4)
    table = teacher_table.TeacherTable(teacher, train.images, 1, CPU, batch_size=4, cache_dir=tmp_path)
    table.ensure(torch.arange(4), torch.zeros(4, dtype=torch.int64))
    assert table.save() and not table.save()  # nothing new: not written again
    again = teacher_table.TeacherTable(teacher, train.images, 1, CPU, batch_size=4, cache_dir=tmp_path)
    assert again.key == table.key and torch.equal(again.values, table.values)
    assert again.ensure(torch.arange(4), torch.zeros(4, dtype=torch.int64)) == 0 and again.inferences == 0
    other = teacher_table.TeacherTable(teacher, train.images, 2, CPU, batch_size=4, cache_dir=tmp_path)
    assert other.key != table.key and other.filled_fraction == 0.0  # padding is in the key
    with open(table.path, "r+b") as handle:  # a damaged file is moved aside and the table starts empty
        handle.seek(-8, 2)
        handle.write(b"\x00" * 8)
    damaged = teacher_table.TeacherTable(teacher, train.images, 1, CPU, batch_size=4, cache_dir=tmp_path)
    assert damaged.filled_fraction == 0.0 and not table.path.exists()
