"""The unfinished paper teacher resumes on any machine: its resume files are committed and travel with the checkout."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from igkd_lib.campaign.prepare import resume_status, travelling_bytes
from igkd_lib.campaign.resume_files import RESUME_DIR, RESUME_FILES, RESUME_JSON, committed_hashes, read_resume
from igkd_lib.config import make_config
from igkd_lib.data.cifar10 import find_offline_copy
from igkd_lib.training.teacher import checkpoint_meta, recipe_from_config

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "results" / "paper" / RESUME_DIR


class _PaperData:
    """What the next window's training split looks like to the checkpoint's meta (the offline copy, 50,000)."""

    source = "offline"

    def __len__(self):
        return 50_000


@pytest.mark.skipif(not COMMITTED.is_dir(), reason="no unfinished paper teacher is committed")
def test_the_committed_paper_teacher_resumes_after_epoch_66_and_is_tracked():
    tracked = subprocess.run(["git", "ls-files", str(COMMITTED.relative_to(ROOT))], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    assert sorted(Path(p).name for p in tracked) == sorted([*RESUME_FILES, RESUME_JSON])
    expected = checkpoint_meta(recipe_from_config(make_config("paper")), _PaperData())
    state = read_resume(COMMITTED, committed_hashes(COMMITTED), expected)  # the next window's own check
    assert len(state["log"]) == 66 and state["log"][-1]["test_acc"] == 74.98
    assert "resumes after epoch 66" in resume_status(ROOT)


def _travelling_copy(target: Path) -> Path:
    """What a device receives: tracked and untracked-not-ignored files of this checkout (no .git, no .window)."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in names:
        if name and (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    assert travelling_bytes(ROOT, carry=()) > 0 and not (target / ".window").exists()
    return target


@pytest.mark.slow
@pytest.mark.skipif(find_offline_copy() is None, reason="the offline CIFAR-10 copy is not beside the repository")
def test_a_window_on_a_fresh_checkout_resumes_from_the_committed_files(tmp_path):
    """Train 2 of 3 epochs of a tiny teacher here, commit its resume files, then run a --tiny window in a
    fresh copy of what travels, with a fresh scratch folder: it resumes after epoch 2 and trains only epoch 3."""
    import torch

    from igkd_lib.campaign import TINY
    from igkd_lib.campaign.paper_teacher import train_in_window
    from igkd_lib.campaign.resume_files import commit_resume
    from igkd_lib.data import load_splits
    from igkd_lib.storage import load_checkpoint

    checkout = _travelling_copy(tmp_path / "checkout")
    config = make_config("smoke", teacher_epochs=3, **TINY)
    train, test = load_splits(config)
    budget = iter([1e9, 0.0])  # one more epoch after the first, then the budget ends
    checkpoint = tmp_path / "here" / "checkpoint.pt"
    assert train_in_window(config, train, test, torch.device("cpu"), checkpoint, lambda: next(budget)) is None
    state = load_checkpoint(checkpoint)
    committed = checkout / "results" / "smoke" / RESUME_DIR
    commit_resume(committed, state, "20261204T000000Z-test")

    env = {**os.environ, "PYTHONPATH": str(checkout), "IGKD_OFFLINE": "1",
           "IGKD_CIFAR10_OFFLINE": str(find_offline_copy())}
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "igkd_lib", "campaign", "--tiny", "--set", "teacher_epochs=3",
                          "--budget-s", "1800", "--max-runs", "1", "--out", str(out), "--work", str(tmp_path / "work"),
                          "--results", str(checkout / "results"), "--commit", "test"],
                         cwd=checkout, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"resuming from {committed} after epoch 2" in run.stdout
    assert "teacher epoch 3/3" in run.stdout and "teacher epoch 1/3" not in run.stdout
    card = __import__("json").loads((out / "teacher.json").read_text())
    assert [row["test_acc"] for row in card["log"][:2]] == [row["test_acc"] for row in state["log"]]
    assert len(card["log"]) == 3


def test_resume_files_without_their_record_are_refused_by_the_window(tmp_path):
    folder = tmp_path / RESUME_DIR
    folder.mkdir()
    (folder / RESUME_FILES[0]).write_bytes(b"anything")
    with pytest.raises(ValueError, match=RESUME_JSON):
        committed_hashes(folder)
    assert committed_hashes(tmp_path / "absent") is None
