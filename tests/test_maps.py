"""igkd_lib.attribution.maps: rows addressed by dataset index, keyed cache, resume after interruption, damage
detected."""
import numpy as np
import pytest
import torch

from igkd_lib.attribution import maps as maps_module
from igkd_lib.attribution.ig import integrated_gradients, reduce_map
from igkd_lib.attribution.maps import get_maps, official_pairing, open_maps
from igkd_lib.data.cifar10 import load_splits


def tiny_teacher(seed: int = 0) -> torch.nn.Module:
    """A small classifier in eval mode: the cache logic does not depend on which network it is."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.AdaptiveAvgPool2d(4),
                               torch.nn.Flatten(), torch.nn.Linear(128, 10)).eval()


@pytest.fixture(scope="module")
def train(smoke_config):
    return load_splits(smoke_config)[0].subset(torch.arange(10))


@pytest.fixture
def config(smoke_config, tmp_path):
    return smoke_config.replace(cache_dir=str(tmp_path), ig_steps=4, ig_chunk=16)


def test_rows_follow_dataset_indices_in_a_shuffled_request(config, train):
    teacher = tiny_teacher()
    first = get_maps(config, teacher, train, progress=False)
    assert first.maps.shape == (10, 32, 32) and first.maps.dtype == torch.float32 and not first.from_cache
    shuffled = train.subset(torch.randperm(10, generator=torch.Generator().manual_seed(1)))
    again = get_maps(config, teacher, shuffled, progress=False)
    assert again.from_cache and again.key == first.key and again.seconds == 0
    assert torch.equal(again.indices, shuffled.indices)
    for row in range(10):
        x = shuffled.images[row:row + 1].float() / 255
        alone = reduce_map(integrated_gradients(teacher, x, shuffled.labels[row:row + 1], n_steps=4).attributions)[0]
        assert torch.allclose(again.maps[row], alone, rtol=2e-3, atol=1e-3 * float(alone.abs().max()))


def test_prediction_target_uses_the_teachers_argmax(config, train):
    teacher = tiny_teacher()
    result = get_maps(config.replace(ig_target="prediction"), teacher, train, progress=False)
    with torch.no_grad():
        predicted = teacher(train.images[:1].float() / 255).argmax(1)
    alone = reduce_map(integrated_gradients(teacher, train.images[:1].float() / 255, predicted, n_steps=4).attributions)
    assert torch.allclose(result.maps[0], alone[0], rtol=2e-3, atol=1e-3 * float(alone.abs().max()))


def test_a_changed_key_recomputes(config, train):
    teacher = tiny_teacher()
    base = get_maps(config, teacher, train, progress=False)
    for other_config, other_teacher, other_train in [
        (config.replace(ig_steps=3), teacher, train), (config.replace(ig_baseline="mean"), teacher, train),
        (config.replace(ig_method="riemann_middle"), teacher, train), (config, tiny_teacher(1), train),
        (config, teacher, train.subset(torch.arange(9)))]:
        other = get_maps(other_config, other_teacher, other_train, progress=False)
        assert other.key != base.key and not other.from_cache
    assert get_maps(config, teacher, train, progress=False).from_cache


def test_resume_after_an_interruption_gives_the_identical_file(config, train, tmp_path, monkeypatch):
    teacher = tiny_teacher()
    monkeypatch.setattr(maps_module, "_chunk_rows", lambda config: 3)  # 4 chunks
    whole = get_maps(config.replace(cache_dir=str(tmp_path / "whole")), teacher, train, progress=False)
    compute, calls = maps_module._compute_chunk, []

    def interrupted(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill")
        calls.append(1)
        return compute(*args, **kwargs)

    monkeypatch.setattr(maps_module, "_compute_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        get_maps(config, teacher, train, progress=False)
    folder = tmp_path / "maps" / whole.key
    assert not (folder / "maps.npy").exists() and len(list(folder.glob("chunk_*.npy"))) == 2
    (folder / "chunk_00001.npy").write_bytes(b"torn")  # a damaged chunk is recomputed too
    calls.clear()
    monkeypatch.setattr(maps_module, "_compute_chunk", lambda *a, **k: (calls.append(1), compute(*a, **k))[1])
    resumed = get_maps(config, teacher, train, progress=False)
    assert len(calls) == 3  # chunks 1 (damaged), 2 and 3
    assert resumed.path.read_bytes() == whole.path.read_bytes()
    assert not list(folder.glob("chunk_*.npy"))


def test_a_damaged_file_is_detected_and_recomputed(config, train):
    teacher = tiny_teacher()
    first = get_maps(config, teacher, train, progress=False)
    data = bytearray(first.path.read_bytes())
    data[-7] ^= 0xFF
    first.path.write_bytes(bytes(data))
    again = get_maps(config, teacher, train, progress=False)
    assert not again.from_cache and torch.equal(again.maps, first.maps)
    first.path.write_bytes(first.path.read_bytes()[:100])  # truncated
    assert not get_maps(config, teacher, train, progress=False).from_cache
    first.path.with_name("scales.npy").write_bytes(b"")  # damaged scales
    assert not get_maps(config, teacher, train, progress=False).from_cache


def test_stored_compactly_and_memory_mappable(config, train):
    result = get_maps(config, tiny_teacher(), train, progress=False)
    stored, scales = open_maps(result.path)
    assert isinstance(stored, np.memmap) and stored.dtype == np.float16 and stored.shape == (10, 32, 32)
    assert scales.dtype == np.float32 and scales.shape == (10,)
    assert result.nbytes < 10 * (32 * 32 * 2 + 4) + 512
    assert torch.allclose(torch.from_numpy(stored * scales[:, None, None]).float(), result.maps)


def test_tiny_values_survive_storage(config, train):
    teacher = tiny_teacher()
    with torch.no_grad():
        for p in teacher.parameters():
            p.mul_(1e-4)  # attributions of ~1e-12: plain float16 would store zeros
    result = get_maps(config, teacher, train, progress=False)
    alone = reduce_map(integrated_gradients(teacher, train.images[:1].float() / 255, train.labels[:1],
                                            n_steps=4).attributions)[0]
    assert float(alone.max()) < 1e-8 and torch.allclose(result.maps[0], alone, rtol=2e-3,
                                                        atol=1e-4 * float(alone.max()))


def test_official_pairing_gives_other_images_maps():
    maps = torch.arange(20.0).view(20, 1, 1).expand(20, 2, 2)
    paired = official_pairing(maps, seed=0)
    assert sorted(paired[:, 0, 0].tolist()) == maps[:, 0, 0].tolist()
    assert (paired[:, 0, 0] != maps[:, 0, 0]).sum() >= 15


def test_teacher_in_train_mode_is_refused(config, train):
    with pytest.raises(ValueError, match="eval mode"):
        get_maps(config, tiny_teacher().train(), train, progress=False)


_KILLED_RUN = """
import os, signal, sys, torch
sys.path.insert(0, {tests!r})
from test_maps import tiny_teacher
from igkd_lib.attribution import maps as maps_module
from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import load_splits
config = make_config("smoke", cache_dir={cache!r}, ig_steps=4, ig_chunk=16)
train = load_splits(config)[0].subset(torch.arange(10))
maps_module._chunk_rows = lambda config: 3
compute, calls = maps_module._compute_chunk, []
def killed_on_the_third_chunk(*args, **kwargs):
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9, mid-run
    calls.append(1)
    return compute(*args, **kwargs)
maps_module._compute_chunk = killed_on_the_third_chunk
maps_module.get_maps(config, tiny_teacher(), train, progress=False)
"""


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_identical_file(config, train, tmp_path, monkeypatch):
    import subprocess
    import sys
    from pathlib import Path

    monkeypatch.setattr(maps_module, "_chunk_rows", lambda config: 3)
    whole = get_maps(config.replace(cache_dir=str(tmp_path / "whole")), tiny_teacher(), train, progress=False)
    script = _KILLED_RUN.format(tests=str(Path(__file__).parent), cache=str(tmp_path))
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    folder = tmp_path / "maps" / whole.key
    assert not (folder / "maps.npy").exists() and len(list(folder.glob("chunk_*.npy"))) == 2
    resumed = get_maps(config, tiny_teacher(), train, progress=False)
    assert not resumed.from_cache and resumed.path.read_bytes() == whole.path.read_bytes()


def test_maps_are_bit_identical_across_chunk_sizes_and_share_one_cache_entry(config, train, tmp_path):
    teacher = tiny_teacher()
    results = [get_maps(config.replace(ig_chunk=chunk, cache_dir=str(tmp_path / str(chunk))), teacher, train,
                        progress=False) for chunk in (0, 4, 12, 40)]  # auto, then 1, 3 and 10 images of 4 points
    for other in results[1:]:
        assert other.key == results[0].key and torch.equal(other.maps, results[0].maps)
    assert get_maps(config.replace(ig_chunk=12), teacher, train, progress=False).key == results[0].key
    assert get_maps(config.replace(ig_chunk=40), teacher, train, progress=False).from_cache
