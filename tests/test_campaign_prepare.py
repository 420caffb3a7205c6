"""igkd_lib.campaign.prepare: the travelling folder, its size check, and the device command."""
import subprocess

import pytest

from igkd_lib.campaign import prepare as prep
from igkd_lib.data.cifar10 import find_offline_copy
from igkd_lib.data.packed import PACKED_NAME

needs_packed = pytest.mark.skipif(find_offline_copy() is None or not (find_offline_copy() / PACKED_NAME).is_file(),
                                  reason="the packed offline CIFAR-10 copy is not beside the repository")


def _repo(path):
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / ".gitignore").write_text("/.window/\n")
    (path / "small.txt").write_text("x")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init"],
                   check=True)
    return path


@needs_packed
def test_prepare_copies_the_packed_file_and_refuses_above_64_mib(tmp_path):
    root = _repo(tmp_path / "checkout")
    ready = prep.prepare(root)
    copied = root / ".window" / "data" / PACKED_NAME
    assert copied.stat().st_size == (find_offline_copy() / PACKED_NAME).stat().st_size
    assert 33 * 2**20 < ready["bytes"] < prep.LIMIT_BYTES and len(ready["commit"]) == 12
    assert ready["carry"] == [".window/data", ".window/site"]  # resume files are committed: they travel tracked
    with open(root / "big.bin", "wb") as handle:  # untracked and not ignored: it would travel
        handle.truncate(31 * 2**20)
    with pytest.raises(ValueError, match="above the device's 64 MiB"):
        prep.prepare(root)


def test_prepare_refuses_a_checkout_that_does_not_ignore_the_window_folder(tmp_path):
    root = _repo(tmp_path / "checkout")
    (root / ".gitignore").write_text("")
    with pytest.raises(ValueError, match="/.window/"):
        prep.prepare(root)


def test_device_command_passes_the_commit_and_keeps_the_log():
    command = prep.device_command("abc123def456", 540)
    assert "--budget-s 540 --out $OUT --commit abc123def456" in command
    assert command.startswith("set -o pipefail;") and "tee $OUT/log.txt" in command and "python3 -m igkd_lib" in command
    assert len(command) < 2000  # the device tool's limit
