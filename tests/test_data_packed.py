"""igkd_lib.data.packed: the packed offline copy decodes to exactly the zip path's arrays."""
import numpy as np
import pytest
import torch

from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import _decode_members, find_offline_copy, load_cifar10
from igkd_lib.data.packed import PACKED_NAME, decode_jpeg_bytes, decode_packed, packed_jpeg_bytes

OFFLINE = find_offline_copy()
needs_packed = pytest.mark.skipif(OFFLINE is None or not (OFFLINE / PACKED_NAME).is_file(),
                                  reason="the packed offline CIFAR-10 copy is not beside the repository")


def _zip_members(exact, split: str, rows) -> list[str]:
    names = [str(n) for n in exact["label_names"]]
    labels = exact[f"{split}_labels"]
    return [f"{split}/{names[labels[i]]}/{int((labels[:i] == labels[i]).sum()):04d}.jpg" for i in rows]


@needs_packed
@pytest.mark.parametrize("split", ["train", "test"])
def test_packed_jpegs_are_the_zip_files_and_decode_identically(split):
    packed = np.load(OFFLINE / PACKED_NAME)
    exact = np.load(OFFLINE / "cifar10_exact_labels_and_prefix_images.npz")
    n = len(exact[f"{split}_labels"])
    rows = sorted({*range(150), *range(n - 150, n), *exact[f"{split}_exact_index"][-20:].tolist()})
    files = packed_jpeg_bytes(packed, split, rows)
    zip_images = _decode_members(str(OFFLINE / "cifar10_jpeg_q75_YoongiKim.zip"), _zip_members(exact, split, rows))
    ours = decode_jpeg_bytes(files, workers=3)
    assert ours.dtype == np.uint8 and ours.shape == (len(rows), 3, 32, 32)
    assert np.array_equal(ours, zip_images)
    assert not np.array_equal(ours[1:], zip_images[:-1])  # the comparison can tell images apart
    assert np.array_equal(packed[f"{split}_labels"], exact[f"{split}_labels"])


@needs_packed
@pytest.mark.slow
def test_load_cifar10_from_the_packed_file_alone_equals_the_zip_path(tmp_path, monkeypatch):
    folder = tmp_path / "window-data"
    folder.mkdir()
    (folder / PACKED_NAME).symlink_to(OFFLINE / PACKED_NAME)
    zip_config = make_config("smoke", data_source="offline")
    expected = {split: load_cifar10(split, zip_config) for split in ("train", "test")}
    monkeypatch.setenv("IGKD_CIFAR10_OFFLINE", str(folder))
    config = make_config("smoke", data_source="offline", cache_dir=str(tmp_path / "cache"))
    for split, want in expected.items():
        got = load_cifar10(split, config)
        assert got.source == "offline" and got.source_label == want.source_label
        assert torch.equal(got.images, want.images) and torch.equal(got.labels, want.labels)
    exact = np.load(OFFLINE / "cifar10_exact_labels_and_prefix_images.npz")
    rows = exact["test_exact_index"]
    assert np.array_equal(got.images[rows].numpy().reshape(len(rows), -1), exact["test_exact_data"])


@needs_packed
def test_damaged_packed_file_is_an_error_naming_it(tmp_path):
    broken = tmp_path / PACKED_NAME
    broken.write_bytes((OFFLINE / PACKED_NAME).read_bytes()[:100_000])
    with pytest.raises(ValueError, match=PACKED_NAME):
        decode_packed(broken, tmp_path / "cache")
