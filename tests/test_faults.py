"""The official code's faults as options: the pairing, augmented views, the teacher-logit table, the preset."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from igkd_lib.config import ConfigError, make_config
from igkd_lib.data import augment
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.training import faults, student


def _train(n: int = 12) -> Cifar10:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    return Cifar10(images, torch.arange(n) % 10, torch.arange(n), "train", "offline")


class _Spy(nn.Module):
    """A 'teacher' whose logits are the image's mean pixel in every class: shows which view it saw."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x.mean(dim=(1, 2, 3)).unsqueeze(1).repeat(1, 10) + self.weight


def test_official_pairing_gives_nearly_every_row_another_rows_entry():
    table = torch.arange(100).float().unsqueeze(1)
    paired = faults.official_pairing(table)
    assert sorted(paired.flatten().tolist()) == list(range(100))  # a permutation
    assert (paired.flatten() != table.flatten()).float().mean() > 0.9
    assert torch.equal(paired, faults.official_pairing(table))  # computed once: fixed, whatever the run's seed
    with pytest.raises(ValueError, match="n="):
        faults.loader_order(0)


def test_augmented_views_crop_and_flip_once():
    config = make_config("smoke")
    train = _train()
    views = faults.augmented_views(train.images, config)
    assert views.dtype == torch.uint8 and views.shape == train.images.shape
    assert not torch.equal(views, train.images)
    assert torch.equal(views, faults.augmented_views(train.images, config))
    flat = faults.augmented_views(train.images, config.replace(crop_padding=0, flip=False))
    assert torch.equal(flat, train.images)


def test_official_teacher_logits_are_other_augmented_images():
    config = make_config("smoke", crop_padding=0, flip=False)
    train = _train()
    table = faults.official_teacher_logits(_Spy().eval(), train, config, torch.device("cpu"))
    own = train.images.float().div(255).mean(dim=(1, 2, 3))
    assert table.shape == (len(train), 10)
    order = faults.loader_order(len(train))
    assert torch.allclose(table[:, 0], own[order], atol=1e-6)
    assert (~torch.isclose(table[:, 0], own)).float().mean() > 0.5


def test_student_uses_the_official_table_when_asked():
    train = _train()
    config = student.method_config(make_config("smoke", teacher_logits="official", crop_padding=0, flip=False), "kd")
    batch_fn, _ = student.batch_and_loss(config, _Spy().eval(), None, train, torch.device("cpu"))
    positions = torch.arange(4)
    draws = augment.draw_crops(4, 0, False, torch.Generator().manual_seed(0))  # batch_fn takes the step's draws
    x, (logits,) = batch_fn(train.images[positions], positions, draws, 0)
    table = faults.official_teacher_logits(_Spy().eval(), train, config, torch.device("cpu"))
    assert torch.allclose(logits, table[positions])
    assert not torch.allclose(logits[:, 0], x.mean(dim=(1, 2, 3)))  # not the student's own batch


def test_preset_and_ablation_variants():
    config = make_config("smoke", **faults.OFFICIAL_CODE)
    assert config.shuffle_maps and config.map_views == "augmented" and config.teacher_logits == "official"
    assert config.map_alignment == "official" and config.student_dropout == 0 and not config.student_normalise
    variants = faults.fault_ablation_variants()
    assert variants[0] == faults.OFFICIAL_CODE and variants[-1] == {}
    assert len(variants) == len(faults.FAULTS) + 2
    for variant, (overrides, _) in zip(variants[1:-1], faults.FAULTS.values()):
        removed = [k for k in overrides if variant[k] != faults.OFFICIAL_CODE[k]]
        assert removed == list(overrides)  # exactly one fault removed
        make_config("smoke", **variant)
    assert [faults.fault_label(v) for v in faults.fault_ablation_variants(full=False)] == ["official code", "this book"]
    assert faults.fault_label(variants[1]) == "official code without the map order fault"
    with pytest.raises(ConfigError, match="map_views"):
        make_config("smoke", map_views="jittered")


def test_maps_of_augmented_views_have_their_own_cache(smoke_config, tmp_path):
    from igkd_lib.attribution.ig import integrated_gradients, reduce_map
    from igkd_lib.attribution.maps import get_maps
    from igkd_lib.data.cifar10 import load_splits

    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                            nn.Linear(16, 10)).eval()
    train = load_splits(smoke_config)[0].subset(torch.arange(4))
    config = smoke_config.replace(cache_dir=str(tmp_path), ig_steps=4, ig_chunk=16)
    clean = get_maps(config, teacher, train, progress=False)
    views = get_maps(config.replace(map_views="augmented"), teacher, train, progress=False)
    assert views.key != clean.key and not views.from_cache
    view = faults.augmented_views(train.images, config)[:1].float() / 255
    alone = reduce_map(integrated_gradients(teacher, view, train.labels[:1], n_steps=4).attributions)[0]
    assert torch.allclose(views.maps[0], alone, rtol=2e-3, atol=1e-3 * float(alone.abs().max()))


def test_the_command_line_preset_replays_the_official_code(monkeypatch, capsys):
    from igkd_lib import cli

    seen = {}
    monkeypatch.setattr("igkd_lib.book.info.cli", lambda config, args: seen.setdefault("config", config) and 0)
    assert cli.main(["info", "--profile", "smoke", "--preset", "official", "--set", "shuffle_maps=false"]) == 0
    config = seen["config"]
    assert config.teacher_logits == "official" and config.map_views == "augmented" and not config.shuffle_maps


def test_the_map_views_option_keys_runs_without_invalidating_the_default(smoke_config):
    from igkd_lib.evidence.experiments import run_key

    train = _train()
    keys = {views: run_key(smoke_config.replace(map_views=views), "kd_ig", 0, "sha", train, train)
            for views in ("clean", "augmented")}
    assert keys["clean"] != keys["augmented"]
    assert run_key(smoke_config.replace(map_views="augmented"), "kd", 0, "sha", train, train) == \
        run_key(smoke_config, "kd", 0, "sha", train, train)  # no maps, no difference
