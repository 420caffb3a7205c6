"""igkd_lib.data.augment: joint crop/flip of images and maps, and the IG overlay."""
import math

import pytest
import torch

from igkd_lib.config import make_config
from igkd_lib.data import augment


def _batch(n=8, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, size, size, generator=g)
    maps = torch.rand(n, size, size, generator=g)
    return images, maps


def _gen(seed=1):
    return torch.Generator().manual_seed(seed)


def test_full_overlay_equals_the_normalised_map():
    images, maps = _batch()
    out = augment.overlay(images, maps, p=1.0, blend=1.0, exponent_low=1.0, exponent_high=1.0, generator=_gen())
    flat = maps.flatten(1)
    expected = ((flat - flat.min(1, keepdim=True).values)
                / (flat.max(1, keepdim=True).values - flat.min(1, keepdim=True).values))
    expected = expected.view(-1, 1, 8, 8).expand(-1, 3, -1, -1)
    torch.testing.assert_close(out, expected)
    assert float(out.amin()) == 0.0 and float(out.amax()) == 1.0


def test_overlay_applies_the_drawn_exponent_and_the_blend():
    images, maps = _batch(n=4)
    out = augment.overlay(images, maps, p=1.0, blend=0.5, exponent_low=2.0, exponent_high=2.0, generator=_gen())
    squared = augment.normalise_maps(maps.unsqueeze(1) ** 2)
    torch.testing.assert_close(out, 0.5 * images + 0.5 * squared)


def test_p_zero_leaves_images_unchanged():
    images, maps = _batch()
    out, mask = augment.overlay_with_mask(images, maps, p=0.0, blend=0.5, generator=_gen())
    assert torch.equal(out, images) and not mask.any()


def test_fraction_overlaid_is_p():
    images, maps = _batch(n=20_000, size=2)
    out, mask = augment.overlay_with_mask(images, maps, p=0.3, blend=0.5, generator=_gen())
    assert abs(mask.float().mean().item() - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 20_000)
    changed = (out != images).flatten(1).any(1)
    assert torch.equal(changed, mask)


def test_exponents_are_log_uniform_in_range():
    s = augment.draw_exponents(50_000, 1.0, 2.0, _gen())
    assert float(s.min()) >= 1.0 and float(s.max()) <= 2.0
    assert abs(float(torch.log(s).mean()) - math.log(2) / 2) < 0.01


def test_constant_map_is_guarded():
    images = torch.rand(2, 3, 4, 4)
    maps = torch.full((2, 4, 4), 0.7)
    out = augment.overlay(images, maps, p=1.0, blend=1.0, generator=_gen())
    assert torch.isfinite(out).all() and torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("name, value", [("p", 1.5), ("p", -0.1), ("blend", 2.0)])
def test_overlay_validates_p_and_blend(name, value):
    images, maps = _batch(n=2)
    kwargs = {"p": 0.5, "blend": 0.5, name: value}
    with pytest.raises(ValueError, match=name):
        augment.overlay(images, maps, **kwargs)


def test_overlay_rejects_mismatched_maps():
    images, maps = _batch(n=2)
    with pytest.raises(ValueError, match="maps"):
        augment.overlay(images, maps[:1], p=0.5, blend=0.5)


def _marked_batch(n=64):
    """Images and maps carrying the same left-bright gradient, so a flip or shift shows in both."""
    ramp = torch.linspace(1.0, 0.1, 32).view(1, 1, 1, 32).expand(n, 1, 32, 32)
    images = (ramp.expand(n, 3, 32, 32) * 255).round().to(torch.uint8)
    return images, ramp[:, 0].clone()


def test_flipped_image_carries_a_flipped_map():
    images, maps = _marked_batch()
    config = make_config("smoke", crop_padding=0, flip=True, p=1.0, blend=1.0, map_alignment="aligned")
    x = augment.student_batch(images, maps, config, _gen())
    flipped = x[:, 0, 0, 0] < x[:, 0, 0, -1]  # the bright column moved to the right
    assert 0 < flipped.sum() < len(x)
    # with blend 1 the output is the normalised map: it was flipped exactly when the image was
    plain = augment.student_batch(images, maps, config.replace(p=0.0), _gen())
    assert torch.equal(plain[:, 0, 0, 0] < plain[:, 0, 0, -1], flipped)


def test_aligned_map_follows_crop_and_flip():
    images, maps = _marked_batch(n=16)
    images = images.clone()
    images[:, :, 5:9, 3:11] = 0  # a dark mark in the image ...
    maps = torch.rand(16, 32, 32, generator=_gen(3))
    maps[:, 5:9, 3:11] = 0.0  # ... and the map's zeros at the same place
    config = make_config("smoke", crop_padding=4, flip=True, p=1.0, blend=1.0, exponent_high=1.0)
    x = augment.student_batch(images, maps, config, _gen())
    reference = augment.random_crop_flip_with_maps(augment.to_float(images), maps.unsqueeze(1), padding=4,
                                                   generator=_gen())
    assert torch.equal(x[:, :1] == 0, augment.normalise_maps(reference[1]) == 0)
    assert torch.equal(reference[0] == 0, augment.normalise_maps(reference[1]).expand(-1, 3, -1, -1) == 0)


def test_official_mode_leaves_the_map_untransformed():
    images, maps = _marked_batch(n=32)
    config = make_config("smoke", crop_padding=4, flip=True, p=1.0, blend=1.0, exponent_high=1.0,
                         map_alignment="official")
    x = augment.student_batch(images, maps, config, _gen())
    expected = augment.normalise_maps(maps.unsqueeze(1)).expand(-1, 3, -1, -1)
    torch.testing.assert_close(x, expected)


def test_student_batch_without_maps_is_crop_flip_only():
    images, maps = _marked_batch(n=8)
    config = make_config("smoke", p=0.0)
    x = augment.student_batch(images, None, config, _gen())
    expected = augment.random_crop_flip(augment.to_float(images), padding=4, generator=_gen())
    assert torch.equal(x, expected)


def test_joint_crop_flip_moves_image_and_map_alike():
    images, maps = _batch(n=6, size=32)
    x, m = augment.random_crop_flip_with_maps(images, maps.unsqueeze(1), padding=4, generator=_gen())
    x2, m2 = augment.random_crop_flip_with_maps(maps.unsqueeze(1).expand(-1, 3, -1, -1), maps.unsqueeze(1), padding=4,
                                      generator=_gen())
    assert torch.equal(x2[:, :1], m) and x.shape == images.shape


def test_draws_batch_rows_of_several_runs_equal_each_runs_batch():
    """Per-row knobs (the wide trainer's rows) give each run's rows exactly what its own scalars give."""
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=_gen(4))
    maps = torch.rand(8, 32, 32, generator=_gen(5))
    draws = augment.draw_crops(8, 4, True, _gen(6)) | augment.draw_overlay(8, 1.0, 2.0, _gen(7))
    knobs = [dict(p=0.5, blend=0.5, aligned=True), dict(p=1.0, blend=0.75, aligned=False)]
    rows = [slice(0, 4), slice(4, 8)]
    together = augment.draws_batch(images, maps, draws, padding=4,
                                   p=torch.tensor([0.5] * 4 + [1.0] * 4), blend=torch.tensor([0.5] * 4 + [0.75] * 4),
                                   aligned=torch.tensor([True] * 4 + [False] * 4))
    for knob, part in zip(knobs, rows):
        alone = augment.draws_batch(images[part], maps[part], {k: v[part] for k, v in draws.items()}, padding=4,
                                    **knob)
        assert torch.equal(together[part], alone)


def test_student_batch_overlay_generator_leaves_crops_alone():
    """With its own overlay generator, a batch with an overlay is cropped and flipped like one without."""
    images, maps = _marked_batch(n=32)
    config = make_config("smoke", p=0.5, blend=0.5)
    plain = augment.student_batch(images, None, config.replace(p=0.0), _gen())
    overlaid = augment.student_batch(images, maps, config, _gen(), _gen(9))
    chosen = augment.draw_overlay(32, 1.0, 2.0, _gen(9))["overlay_u"] < 0.5
    assert 0 < chosen.sum() < 32 and torch.equal(plain[~chosen], overlaid[~chosen])
