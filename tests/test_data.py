"""igkd_lib.data.cifar10: canonical order, the offline copy, subsets and clear errors."""
import shutil
import time

import numpy as np
import pytest
import torch

from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import (
    DataUnavailable,
    _decode_members,
    decode_offline_copy,
    find_offline_copy,
    load_cifar10,
    stratified_subset,
)

OFFLINE = find_offline_copy()
needs_offline = pytest.mark.skipif(OFFLINE is None, reason="the offline CIFAR-10 copy is not beside the repository")


@pytest.fixture(scope="module")
def train():
    return load_cifar10("train", make_config("smoke"))


@needs_offline
def test_class_counts_and_shapes(train):
    test = load_cifar10("test", make_config("smoke"))
    assert train.images.shape == (50_000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (10_000, 3, 32, 32)
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.source in ("offline", "torchvision") and "CIFAR-10" in train.source_label


@needs_offline
def test_jpeg_images_match_the_exact_prefix_pixels():
    exact = np.load(OFFLINE / "cifar10_exact_labels_and_prefix_images.npz")
    names = [str(n) for n in exact["label_names"]]
    labels, index = exact["train_labels"], exact["train_exact_index"][:300]
    rank = {i: int((labels[:i] == labels[i]).sum()) for i in index}
    members = [f"train/{names[labels[i]]}/{rank[i]:04d}.jpg" for i in index]
    jpeg = _decode_members(str(OFFLINE / "cifar10_jpeg_q75_YoongiKim.zip"), members).astype(float)
    pixels = exact["train_exact_data"][:300].reshape(-1, 3, 32, 32).astype(float)
    assert np.abs(jpeg - pixels).mean() < 8.0  # JPEG loss only (about 5.8 of 255)
    assert np.abs(jpeg[1:] - pixels[:-1]).mean() > 20.0  # a wrong mapping gives tens


@needs_offline
def test_exact_pixels_replace_the_jpeg_ones(train):
    exact = np.load(OFFLINE / "cifar10_exact_labels_and_prefix_images.npz")
    rows = exact["train_exact_index"][:50]
    assert np.array_equal(train.images[rows].numpy().reshape(50, -1), exact["train_exact_data"][:50])


@needs_offline
def test_stratified_subset_is_balanced_seeded_and_keeps_indices(train):
    a, b = stratified_subset(train, 500, seed=1), stratified_subset(train, 500, seed=1)
    assert torch.equal(a.indices, b.indices) and len(a) == 500
    assert torch.bincount(a.labels).tolist() == [50] * 10
    assert torch.equal(a.images, train.images[a.indices])
    assert not torch.equal(a.indices, stratified_subset(train, 500, seed=2).indices)
    with pytest.raises(ValueError, match="n=0"):
        stratified_subset(train, 0)


def test_missing_offline_copy_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("IGKD_CIFAR10_OFFLINE", str(tmp_path / "nowhere"))
    monkeypatch.setenv("IGKD_OFFLINE", "1")
    with pytest.raises(DataUnavailable, match="(?s)lacks.*IGKD_CIFAR10_OFFLINE"):
        load_cifar10("test", make_config("smoke", cache_dir=str(tmp_path), data_source="offline"))


@needs_offline
def test_damaged_archive_gives_a_clear_error(tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    shutil.copy(OFFLINE / "cifar10_exact_labels_and_prefix_images.npz", folder)
    (folder / "cifar10_jpeg_q75_YoongiKim.zip").write_bytes(
        (OFFLINE / "cifar10_jpeg_q75_YoongiKim.zip").read_bytes()[:100_000])
    with pytest.raises(DataUnavailable, match="damaged or incomplete"):
        decode_offline_copy(folder, tmp_path / "cache")


def test_download_without_internet_fails_fast_with_the_ways_to_provide_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    with pytest.raises(DataUnavailable, match="(?s)Tried:.*Ways to provide it"):
        load_cifar10("test", make_config("smoke", cache_dir=str(tmp_path), data_source="torchvision"))
    assert time.monotonic() - started < 30  # never hangs a test or a CI run


def test_bad_split():
    with pytest.raises(ValueError, match="split='val'"):
        load_cifar10("val")
