"""Reliability (issue 18): bad input refused by name, failures exit non-zero, damaged files detected.

Faults are injected into copies of the caches and of the shipped weights (never the package's own
files); exit statuses are checked through ``python -m igkd_lib`` as a real subprocess, and the
kill test kills a real subprocess with SIGKILL.
"""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from igkd_lib import storage
from igkd_lib.book.notebook import chapter_setup, list_parameter
from igkd_lib.config import ConfigError, make_config
from igkd_lib.data.cifar10 import Cifar10, decode_offline_copy, find_offline_copy, load_cifar10
from igkd_lib.errors import NonFiniteLossError, WeightsError
from igkd_lib.training import teacher as teacher_module
from igkd_lib.training.loop import train_loop

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args, env=None, timeout=300):
    """``python -m igkd_lib ARGS`` in a real subprocess: (exit status, stdout, stderr)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    done = subprocess.run([sys.executable, "-m", "igkd_lib", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def _flip(path: Path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _decoded_folder() -> Path:
    """The decoded offline copy of the usual cache (decoded once if absent)."""
    names = decode_offline_copy(find_offline_copy(), Path(make_config("smoke").cache_dir))
    return names["test_images"].parent


@pytest.fixture
def shipped_copy(tmp_path):
    """A copy of the shipped teacher's weights and card (faults go into the copy only)."""
    weights = tmp_path / "teacher.pt"
    shutil.copyfile(teacher_module.SHIPPED_WEIGHTS, weights)
    shutil.copyfile(teacher_module.SHIPPED_WEIGHTS.with_suffix(".json"), weights.with_suffix(".json"))
    return weights


# --------------------------------------------------------------------------- 1: damaged teacher
@pytest.mark.parametrize("fault", ["bit flip", "empty file"])
def test_a_damaged_shipped_teacher_is_an_error_naming_the_file_and_both_hashes(shipped_copy, fault, tmp_path,
                                                                             monkeypatch):
    expected = json.loads(shipped_copy.with_suffix(".json").read_text())["sha256"]
    if fault == "bit flip":
        _flip(shipped_copy)
    else:
        shipped_copy.write_bytes(b"")
    actual = storage.sha256_file(shipped_copy)
    with pytest.raises(WeightsError) as caught:
        teacher_module.load_shipped_teacher(shipped_copy)
    assert str(shipped_copy) in str(caught.value) and expected in str(caught.value) and actual in str(caught.value)
    # get_teacher refuses too, and trains nothing in its place
    monkeypatch.setattr(teacher_module, "SHIPPED_WEIGHTS", shipped_copy)
    config = make_config("smoke", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(WeightsError, match="does not verify"):
        teacher_module.get_teacher(config, progress=False)
    assert not (tmp_path / "cache" / "teachers").exists()


def test_a_damaged_teacher_card_is_an_error_naming_the_card(shipped_copy):
    card = shipped_copy.with_suffix(".json")
    card.write_text(card.read_text()[:200])
    with pytest.raises(WeightsError, match=f"card {card}.*damaged"):
        teacher_module.verify_weights(shipped_copy)
    card.unlink()
    with pytest.raises(WeightsError, match="missing"):
        teacher_module.load_shipped_teacher(shipped_copy)


def test_a_teacher_below_its_target_is_flagged_whatever_its_origin():
    for origin in ("shipped", "trained"):
        info = teacher_module.TeacherInfo(origin, 10.0, "0" * 64, "offline", {})
        assert info.below_target and "below the 90% target" in info.describe()
    assert "below" not in teacher_module.TeacherInfo("trained", 91.0, "0" * 64, "offline", {}).describe()


def test_the_cli_refuses_a_damaged_teacher_with_an_error_line(shipped_copy, tmp_path, monkeypatch, capsys):
    from igkd_lib.cli import main

    _flip(shipped_copy)
    monkeypatch.setattr(teacher_module, "SHIPPED_WEIGHTS", shipped_copy)
    status = main(["train", "--profile", "smoke", "--set", f"cache_dir={tmp_path}"])
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]  # after the progress bar
    assert status == 1 and last.startswith("error: ") and "does not verify" in last
    assert not list(tmp_path.glob("runs/*.json"))  # nothing cached


# --------------------------------------------------------------------------- 2: exit statuses
@pytest.mark.parametrize("args, status, words", [
    (["info", "--profile", "smoke", "--set", "temperature=inf"], 2, "temperature=inf"),
    (["info", "--profile", "smoke", "--set", "profile=paper"], 2, "profile='paper' cannot be overridden"),
    (["run", "--profile", "smoke", "--set", "_base=x"], 2, "unknown config field(s) _base"),
    (["train", "--profile", "smoke", "--set", "device=cuda:abc"], 2, "device='cuda:abc'"),
    (["precompute", "--profile", "smoke", "--set", "seeds=[1.5]"], 2, "seeds="),
    (["info", "--profile", "smoke", "--set", "data_source=torchvision"], 1, "CIFAR-10 could not be loaded"),
])
def test_python_m_igkd_lib_exits_non_zero_with_one_error_line(args, status, words, tmp_path):
    env = {"IGKD_OFFLINE": "1", "IGKD_CACHE": str(tmp_path), "HOME": str(tmp_path)}  # no torchvision files here
    code, _, err = _cli(*args, env=env)
    assert code == status, err
    assert err.startswith("error: ") and words in err and "Traceback" not in err


def test_num_threads_is_honoured_on_the_command_line():
    code, out, err = _cli("info", "--profile", "smoke", "--set", "num_threads=1")
    assert code == 0, err
    assert "1 threads" in out


# --------------------------------------------------------------------------- 3: inf and non-finite losses
@pytest.mark.parametrize("field", ["temperature", "student_lr", "teacher_lr", "teacher_weight_decay", "exponent_high",
                                   "alpha", "p", "blend"])
@pytest.mark.parametrize("value", [float("inf"), "inf", "-inf", "nan"])
def test_every_float_field_must_be_finite(field, value):
    with pytest.raises(ConfigError, match=field):
        make_config("smoke", **{field: value})


def test_a_chapter_refuses_inf_from_papermill():
    with pytest.raises(ConfigError, match="temperature=inf"):
        chapter_setup("smoke", temperature=float("inf"))


def _tiny_data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return Cifar10(images, labels, torch.arange(n), "train", "offline")


def _tiny_run(checkpoint, loss_scale=lambda epoch: 1.0, epochs=2):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def loss_fn(net, x, y, extras):
        logits = net(x)
        return nn.functional.cross_entropy(logits, y) * loss_scale(extras[0]), logits

    data = _tiny_data()
    return train_loop(model, optimizer, lambda step: 0.01, data, data, epochs=epochs, batch_size=16, seed=0,
                      device=torch.device("cpu"), batch_fn=lambda x, pos, g, epoch: (x.float() / 255, (epoch,)),
                      loss_fn=loss_fn, checkpoint=checkpoint, progress=False)


def test_a_non_finite_loss_stops_the_run_before_any_checkpoint(tmp_path):
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(NonFiniteLossError, match="epoch 2"):
        _tiny_run(checkpoint, loss_scale=lambda epoch: float("inf") if epoch == 1 else 1.0)
    state = torch.load(checkpoint, weights_only=False)
    assert state["epoch"] == 0 and len(state["log"]) == 1  # epoch 1's checkpoint; the diverged epoch is not saved


def test_a_non_finite_run_is_never_cached(tmp_path, monkeypatch):
    from igkd_lib.evidence import experiments
    from igkd_lib.training import student

    def diverge(*args, **kwargs):
        raise NonFiniteLossError("the training loss became nan in epoch 1")

    monkeypatch.setattr(student, "train_student", diverge)
    config = make_config("smoke", cache_dir=str(tmp_path), n_train=32, n_test=20)
    with pytest.raises(NonFiniteLossError):
        experiments.run_one(config, "baseline", 0, progress=False)
    assert not list(tmp_path.glob("runs/*.json"))


# --------------------------------------------------------------------------- 4: corrupted checkpoint
@pytest.mark.parametrize("fault", ["garbage", "truncated"])
def test_an_unreadable_checkpoint_is_named_moved_aside_and_the_run_restarts(tmp_path, capsys, fault):
    checkpoint = tmp_path / "run.pt"
    whole = _tiny_run(None)
    _tiny_run(checkpoint, epochs=1)
    if fault == "garbage":
        checkpoint.write_bytes(b"not a checkpoint at all")
    else:
        checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    again = _tiny_run(checkpoint)
    assert [r["loss"] for r in again.log] == [r["loss"] for r in whole.log]  # restarted from scratch
    assert str(checkpoint) in capsys.readouterr().err
    assert len(list(tmp_path.glob("run.pt.corrupt-*"))) == 1 and checkpoint.is_file()


# --------------------------------------------------------------------------- 5: decode workers die with their parent
def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_during_the_decode_takes_the_workers_with_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IGKD_CACHE": str(tmp_path), "IGKD_OFFLINE": "1",
           "IGKD_CIFAR10_OFFLINE": str(find_offline_copy())}
    code = "from igkd_lib.data.cifar10 import load_cifar10; load_cifar10('train')"
    parent = subprocess.Popen([sys.executable, "-c", code],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.2)
            workers = _children(parent.pid)
        assert len(workers) == 2, "the decode did not start its two workers"
        time.sleep(1.0)  # the workers are decoding
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_running(w) for w in workers), "decode workers outlived their parent"
    finally:
        for pid in workers:  # only the processes this test saw start
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()


# --------------------------------------------------------------------------- 6: decoded cache verified
@pytest.fixture
def decoded_copy(tmp_path):
    """A copy of the decoded CIFAR-10 cache in a fresh cache folder."""
    source = _decoded_folder()
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    return copy


@pytest.mark.slow
def test_a_flipped_byte_in_the_decoded_cache_is_detected_and_decoded_again(decoded_copy, tmp_path, capsys):
    original = load_cifar10("test", make_config("smoke"))
    _flip(decoded_copy / "test_images.npy", offset=-5000)
    again = load_cifar10("test", make_config("smoke", cache_dir=str(tmp_path)))
    err = capsys.readouterr().err
    assert "test_images.npy has SHA-256" in err and "decoding it again" in err
    assert torch.equal(again.images, original.images)  # the re-decoded pixels, not the flipped ones
    manifest = json.loads((decoded_copy / "manifest.json").read_text())
    assert storage.sha256_file(decoded_copy / "test_images.npy") == manifest["files"]["test_images.npy"]["sha256"]


def test_a_truncated_decoded_array_does_not_verify(decoded_copy, capsys):
    from igkd_lib.data.cifar10 import _cache_verified

    names = {p.stem: p for p in decoded_copy.glob("*.npy")}
    assert _cache_verified(decoded_copy, names)
    labels = decoded_copy / "test_labels.npy"
    labels.write_bytes(labels.read_bytes()[:-8])
    assert not _cache_verified(decoded_copy, names)
    assert "test_labels.npy has 80120 bytes, its manifest says 80128" in capsys.readouterr().err


# --------------------------------------------------------------------------- 7: concurrent precompute
@pytest.mark.slow
def test_two_concurrent_precomputes_on_one_key_take_turns(tmp_path):
    source = _decoded_folder()
    (tmp_path / source.name).symlink_to(source)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IGKD_CACHE": str(tmp_path)}
    command = [sys.executable, "-m", "igkd_lib", "precompute", "--profile", "smoke", "--set", "ig_steps=4"]
    runs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    try:
        outputs = [run.communicate(timeout=600) for run in runs]
    finally:
        for run in runs:  # only the two processes this test started
            if run.poll() is None:
                run.kill()
                run.wait()
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    said = sorted("found in the cache" in out for out, _ in outputs)
    assert said == [False, True]  # one computed, the other waited and reused its maps
    (folder,) = [p for p in (tmp_path / "maps").iterdir() if p.is_dir()]
    assert sorted(p.name for p in folder.iterdir()) == ["maps.json", "maps.npy", "scales.npy"]  # no stray chunks


# --------------------------------------------------------------------------- should fix
@pytest.mark.parametrize("value, words", [
    ("[1.5]", "seeds="), ("[-0.5]", "seeds="), (1.5, "seeds="), ([0, 0], "distinct"), ("1,1", "distinct"),
])
def test_seeds_are_never_truncated_nor_repeated(value, words):
    with pytest.raises(ConfigError, match=words):
        make_config("smoke", seeds=value)
    assert make_config("smoke", seeds=[1.0, 2]).seeds == (1, 2)  # an integral float is that integer


@pytest.mark.parametrize("overrides, words", [
    ({"temperature": 1e308}, "temperature=1e\\+308.*\\(0, 100\\]"),
    ({"ig_method": "riemann_trapezoid", "ig_steps": 1}, "ig_steps=1.*riemann_trapezoid"),
    ({"ig_steps": 100_000_000}, "ig_steps=100000000.*10000"),
    ({"device": "cuda:abc"}, "device='cuda:abc'"),
    ({"student_lr": 1e6}, "student_lr"),
    ({"exponent_high": 1e9}, "exponent_high"),
])
def test_values_that_could_only_fail_later_are_refused_up_front(overrides, words):
    with pytest.raises(ConfigError, match=words):
        make_config("smoke", **overrides)


def test_profile_and_private_names_cannot_be_overridden():
    with pytest.raises(ConfigError, match="profile='paper' cannot be overridden"):
        make_config("smoke", profile="paper")
    with pytest.raises(ConfigError, match="unknown config field.*_base"):
        make_config("smoke", _base="x")


def test_list_parameters_from_papermill():
    methods = ("baseline", "kd", "ig", "kd_ig")
    assert list_parameter("methods", "kd_ig", allowed=methods) == ["kd_ig"]
    assert list_parameter("methods", "kd, kd_ig", allowed=methods) == ["kd", "kd_ig"]
    assert list_parameter("methods", '["kd"]', allowed=methods) == ["kd"]
    assert list_parameter("p_values", 0.1, float) == [0.1] and list_parameter("p_values", "[0, 0.5]", float) == [0, 0.5]
    assert list_parameter("methods", None) is None
    with pytest.raises(ConfigError, match="methods='k'.*baseline, kd, ig, kd_ig"):
        list_parameter("methods", "k", allowed=methods)
    with pytest.raises(ConfigError, match="p_values='high'"):
        list_parameter("p_values", "high", float)
    with pytest.raises(ConfigError, match="seeds"):
        list_parameter("seeds", [1.5], int)


def test_a_full_disk_names_the_file_and_the_cause(tmp_path, monkeypatch):
    target = tmp_path / "maps" / "chunk_00000.npy"

    def full(handle, array):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(storage.StorageError) as caught:
        storage.atomic_save_npy(target, np.zeros(3))
    message = str(caught.value)
    assert str(target) in message and "No space left on device" in message and "ENOSPC" in message
    assert caught.value.errno == errno.ENOSPC
    assert list(target.parent.iterdir()) == []  # no temporary file left behind


def test_a_finished_runs_json_carries_a_checksum(tmp_path, capsys):
    from igkd_lib.evidence.experiments import _load_cached

    path = tmp_path / "runs" / "abc.json"
    stored = {"key": "abc", "row": {"final_acc": 41.5}, "log": [{"epoch": 1, "test_acc": 41.5}]}
    storage.write_checked_json(path, stored)
    assert _load_cached(path, "abc") == stored
    path.write_text(path.read_text().replace("41.5", "91.5"))  # a changed digit
    assert _load_cached(path, "abc") is None and not path.exists()
    assert "does not match its checksum" in capsys.readouterr().err
    assert len(list(path.parent.glob("abc.json.corrupt-*"))) == 1
