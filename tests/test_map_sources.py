"""Tests of igkd_lib.attribution.sources and its use by the maps cache and the run key."""
import pytest
import torch

from igkd_lib import models
from igkd_lib.attribution.maps import get_maps, maps_key
from igkd_lib.attribution.sources import MAP_SOURCES, sobel_maps, source_maps, untrained_teacher
from igkd_lib.config import ConfigError, make_config
from igkd_lib.data.cifar10 import load_splits
from igkd_lib.evidence import experiments


@pytest.fixture(scope="module")
def small_teacher():
    torch.manual_seed(1)  # not untrained_teacher's seed 0
    return models.teacher().eval()


def test_sobel_is_zero_on_a_flat_image_and_large_on_an_edge():
    flat = torch.full((1, 3, 8, 8), 0.5)
    edge = flat.clone()
    edge[..., 4:] = 1.0
    assert sobel_maps(flat).abs().max() == 0
    out = sobel_maps(edge)[0]
    assert out[:, 3:5].min() > 1.0 and out[:, :2].max() == 0 and out[:, 6:].max() == 0


def test_constant_source_is_constant_and_teacher_free(small_teacher):
    x = torch.rand(2, 3, 32, 32)
    maps = source_maps("constant", None, x, torch.tensor([0, 1]), make_config("smoke"))
    assert maps.shape == (2, 32, 32) and torch.equal(maps, torch.ones_like(maps))


@pytest.mark.parametrize("source", ["ig", "ig_untrained", "grad_x_input", "smoothgrad"])
def test_attribution_sources_differ_from_each_other(small_teacher, source):
    config = make_config("smoke", ig_steps=2, ig_chunk=8)
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([3, 4])
    maps = source_maps(source, small_teacher, x, y, config)
    assert maps.shape == (2, 32, 32) and (maps >= 0).all() and maps.abs().sum() > 0
    if source != "ig":
        ig = source_maps("ig", small_teacher, x, y, config)
        assert not torch.allclose(maps / maps.amax(), ig / ig.amax(), atol=1e-3)  # untrained: ~1e-11 values


def test_untrained_teacher_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    a = untrained_teacher(torch.device("cpu"))
    assert torch.equal(torch.rand(1), expected)
    b = untrained_teacher(torch.device("cpu"))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_unknown_source_is_refused():
    with pytest.raises(ConfigError, match="map_source"):
        make_config("smoke", map_source="edges")
    with pytest.raises(ValueError, match="map_source"):
        source_maps("edges", None, torch.rand(1, 3, 4, 4), torch.tensor([0]), make_config("smoke"))
    assert "sobel" in MAP_SOURCES


def test_the_cache_and_the_run_key_tell_sources_apart(smoke_config, tmp_path, small_teacher):
    config = smoke_config.replace(cache_dir=str(tmp_path), ig_steps=2, ig_chunk=8)
    train, test = load_splits(config)
    train = train.subset(torch.arange(6))
    ig = get_maps(config, teacher=small_teacher, train=train, progress=False)
    sobel = get_maps(config.replace(map_source="sobel"), teacher=small_teacher, train=train, progress=False)
    assert ig.key != sobel.key and not torch.allclose(ig.maps, sobel.maps)
    assert torch.allclose(sobel.maps, sobel_maps(train.images.float() / 255), rtol=1e-3, atol=1e-3)
    assert "source" not in maps_key(config, "t", "s", train.indices, "float32")  # earlier IG keys still hold
    def key(c, m):
        return experiments.run_key(c, m, 0, "t", train, test)

    assert key(config, "kd_ig") != key(config.replace(map_source="sobel"), "kd_ig")
    assert key(config, "kd") == key(config.replace(map_source="sobel"), "kd")  # p = 0: the source does not matter
