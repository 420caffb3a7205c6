"""The overlay explorer without a browser: self-contained HTML, deterministic ids, the overlay rule, validation.

The browser checks (sliders moved, canvas pixels read back) are in ``test_views_browser.py``.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from igkd_lib import make_config
from igkd_lib.book import views
from igkd_lib.data import augment


def _inputs(n: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.gamma(2.0, 1.0, (n, 32, 32))


def test_html_is_self_contained():
    images, maps = _inputs()
    text = views.overlay_explorer(images, maps, provenance="profile=smoke").html()
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "http://" not in text and "https://" not in text and "@import" not in text
    assert "<link" not in text.lower() and not re.search(r"<script[^>]*\ssrc=", text, re.I)
    assert not re.search(r"__[A-Z_]+__", text), "a template placeholder was left unfilled"
    assert text.count("<canvas") == 16 and text.count('type="range"') == 2
    for name in ("p", "w"):  # every slider has a label, a visible value and the paper's mark
        element = f"{views.overlay_explorer(images, maps).element_id}-{name}"
        assert (f'<label for="{element}"' in text and f'id="{element}-value"' in text
                and f'list="{element}-marks"' in text)


def test_ids_are_deterministic_and_follow_the_content():
    images, maps = _inputs()
    first = views.overlay_explorer(images, maps, seed=1, provenance="commit=abc")
    again = views.overlay_explorer(torch.from_numpy(images), torch.from_numpy(maps), seed=1, provenance="commit=abc")
    as_float = views.overlay_explorer(images / 255.0, maps, seed=1, provenance="commit=abc")
    assert first.html() == again.html() == as_float.html()
    other_maps = views.overlay_explorer(images, maps * np.linspace(1, 2, 32), seed=1)
    other_seed = views.overlay_explorer(images, maps, seed=2)
    ids = {first.element_id, other_maps.element_id, other_seed.element_id}
    assert len(ids) == 3 and all(re.fullmatch(r"igkd-overlay-[0-9a-f]{12}", i) for i in ids)
    assert views.overlay_explorer(images, maps, seed=1, provenance="commit=def").element_id == first.element_id


def test_draws_are_seeded_and_in_range():
    images, maps = _inputs()
    a, b = views.overlay_explorer(images, maps, seed=4), views.overlay_explorer(images, maps, seed=4)
    assert np.array_equal(a.draws, b.draws) and np.array_equal(a.exponents, b.exponents)
    assert ((a.draws >= 0) & (a.draws < 1)).all() and ((a.exponents >= 1) & (a.exponents <= 2)).all()
    given = views.overlay_explorer(images, maps, exponents=np.full(16, 1.5), draws=np.linspace(0, 0.9, 16))
    assert np.array_equal(given.draws, np.linspace(0, 0.9, 16)) and (given.exponents == 1.5).all()


def test_overlay_rule_matches_the_paper():
    images, maps = _inputs()
    view = views.overlay_explorer(images, maps, seed=3)
    powered = torch.from_numpy(maps) ** torch.from_numpy(view.exponents)[:, None, None]
    low = powered.amin(dim=(1, 2), keepdim=True)
    unit = (powered - low) / (powered.amax(dim=(1, 2), keepdim=True) - low)
    assert np.abs(view.maps.astype(float) - unit.numpy() * 255).max() <= 0.5 + 1e-3
    assert np.array_equal(view.blended(1.0, 1.0), np.broadcast_to(view.maps[:, None], images.shape))
    assert np.array_equal(view.blended(1.0, 0.0), images) and np.array_equal(view.blended(0.0, 1.0), images)
    counts = [int(view.overlaid(p).sum()) for p in np.linspace(0, 1, 21)]
    assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == 16
    assert counts[2] == int((view.draws < 0.1).sum())
    half = view.blended(1.0, 0.5).astype(int)
    assert np.abs(half - (images.astype(int) + view.maps[:, None]) / 2).max() <= 0.5


def test_view_shows_what_one_training_overlay_draws():
    images, maps = _inputs()
    view = views.overlay_explorer(images, maps, seed=7, exponent_range=(1.0, 2.0))
    for p, w in ((0.1, 0.5), (0.6, 0.8), (1.0, 1.0)):
        x_hat, mask = augment.overlay_with_mask(augment.to_float(torch.from_numpy(images)),
                                                torch.from_numpy(maps).float(), p=p, blend=w,
                                                generator=torch.Generator().manual_seed(7))
        assert np.array_equal(mask.numpy(), view.overlaid(p))
        assert np.abs(view.blended(p, w) / 255.0 - x_hat.numpy()).max() <= 1 / 255 + 1e-6


def test_constant_map_gives_zeros():
    images, maps = _inputs(2)
    maps[1] = 3.0
    assert (views.overlay_explorer(images, maps).maps[1] == 0).all()


def test_results_are_averaged_per_setting():
    images, maps = _inputs()
    results = pd.DataFrame({"p": [0.1, 0.1, 0.5], "blend": [0.5, 0.5, 0.25],
                            "final_accuracy": [0.70, 0.74, 0.60], "profile": "quick", "seed": [0, 1, 0]})
    rows = views.overlay_explorer(images, maps, results=results).results
    assert rows[0] == {"p": 0.1, "blend": 0.5, "accuracy": pytest.approx(72.0), "runs": 2, "profile": "quick",
                       "source": ""}
    assert rows[1]["runs"] == 1 and rows[1]["accuracy"] == pytest.approx(60.0)
    percent = views.overlay_explorer(images, maps, results=results.assign(final_accuracy=[70.0, 74.0, 60.0]))
    assert percent.results == rows and '"runs":2' in percent.html()


def test_a_run_shared_by_two_sweeps_counts_once_and_committed_runs_come_first():
    images, maps = _inputs()
    cached = pd.DataFrame({"p": [0.1, 0.5, 0.1], "blend": [0.5, 0.5, 0.5], "final_acc": [40.0, 30.0, 40.0],
                           "profile": "quick", "source": "this build", "run_key": ["a", "b", "a"]})
    committed = pd.DataFrame({"p": [0.1], "blend": [0.5], "final_acc": [90.0], "profile": "paper",
                              "source": "committed", "run_key": [None]})
    rows = views.overlay_explorer(images, maps, results=pd.concat([committed, cached])).results
    assert [(r["source"], r["p"], r["runs"]) for r in rows] == [("committed", 0.1, 1), ("this build", 0.1, 1),
                                                                 ("this build", 0.5, 1)]
    assert rows[1]["accuracy"] == pytest.approx(40.0)


def test_measured_results_reads_committed_paper_runs_first(tmp_path, monkeypatch):
    from igkd_lib.config import make_config
    from igkd_lib.evidence import experiments

    cached = pd.DataFrame({"method": "kd_ig", "p": [0.1], "blend": [0.5], "final_acc": [41.0], "profile": "smoke",
                           "run_key": ["k"]})
    monkeypatch.setattr(experiments, "overlay_results", lambda config: cached)
    config = make_config("smoke")
    assert views.measured_results(config, tmp_path)["source"].tolist() == ["this build"]  # no runs.csv: cache only
    monkeypatch.setattr(experiments, "overlay_results", lambda config: cached.iloc[:0])
    assert views.measured_results(config, tmp_path) is None
    (tmp_path / "paper").mkdir()
    pd.DataFrame({"method": ["kd_ig", "kd_ig", "kd"], "p": [0.1, 0.1, 0.0], "blend": [0.5, 0.5, 0.5],
                  "temperature": [2.5, 5.0, 2.5], "final_acc": [92.0, 91.0, 90.0],
                  "run_key": ["x", "y", "z"]}).to_csv(tmp_path / "paper" / "runs.csv", index=False)
    measured = views.measured_results(config, tmp_path)
    assert measured[["source", "profile", "final_acc"]].values.tolist() == [["committed", "paper", 92.0]]


@pytest.mark.parametrize("change, field", [
    (dict(images=np.zeros((16, 32, 32), np.uint8)), "images"),
    (dict(images=np.full((16, 3, 32, 32), 2.0)), "images"),
    (dict(maps=np.zeros((15, 32, 32))), "maps"),
    (dict(maps=-np.ones((16, 32, 32))), "maps"),
    (dict(maps=np.full((16, 32, 32), np.nan)), "maps"),
    (dict(p=1.5), "p"),
    (dict(blend=-0.1), "blend"),
    (dict(draws=np.ones(16)), "draws"),
    (dict(draws=np.zeros(3)), "draws"),
    (dict(exponents=np.zeros(16)), "exponents"),
    (dict(results=pd.DataFrame({"p": [0.1], "accuracy": [0.7]})), "results"),
    (dict(titles=["a"]), "titles"),
    (dict(exponent_range=(2.0, 1.0)), "exponent_range"),
])
def test_bad_input_names_the_parameter(change, field):
    images, maps = _inputs()
    kwargs = dict(images=images, maps=maps) | change
    with pytest.raises(ValueError, match=field):
        views.overlay_explorer(kwargs.pop("images"), kwargs.pop("maps"), **kwargs)


def test_first_of_each_class():
    labels = np.array([3, 3, 1, 0, 1, 2, 0, 3, 2])
    assert views._first_of_each_class(labels, 6).tolist() == [3, 2, 5, 0, 6, 4]


def test_explorer_for_a_config_uses_real_images_and_given_maps():
    config = make_config("smoke")
    subset_maps = np.random.default_rng(0).random((config.n_train, 32, 32))
    view = views.overlay_explorer_for(config, n=12, maps=subset_maps)
    assert view.images.shape == (12, 3, 32, 32) and len({t.split()[1] for t in view.titles[:10]}) == 10
    assert "profile=smoke" in view.provenance and view.p == config.p and view.blend == config.blend
    indices = [int(t.split()[0][1:]) for t in view.titles]
    full_maps = np.zeros((50_000, 32, 32))
    full_maps[indices] = subset_maps[np.searchsorted(_subset_indices(config), indices)]
    assert np.array_equal(views.overlay_explorer_for(config, n=12, maps=full_maps).maps, view.maps)
    with pytest.raises(ValueError, match="n="):
        views.overlay_explorer_for(config, n=0, maps=subset_maps)


def _subset_indices(config):
    from igkd_lib.data.cifar10 import load_splits

    return load_splits(config)[0].indices.numpy()
