"""Prepare a GPU window from a checkout: what travels, its size, and the exact command to run there.

The device machine receives the checkout's tracked and untracked-not-ignored files plus the paths
named in ``carry`` (64 MiB in all), has no internet and no package registry, and runs its own
``python3`` (torch, torchvision, numpy, Pillow). So the packed CIFAR-10 file is copied into the
git-ignored ``.window/data`` and a copy of tqdm (pure Python) goes to ``.window/site``, used only if the
device's python3 lacks it. An unfinished teacher's resume files are committed under
``results/paper/teacher_resume`` (checked against its ``resume.json``), so they travel as tracked files.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

from igkd_lib.data.cifar10 import find_offline_copy
from igkd_lib.data.packed import PACKED_NAME, WINDOW_DATA, packed_file
from igkd_lib.paths import CHECKOUT, RESULTS_DIR
from igkd_lib.provenance import commit_of
from igkd_lib.storage import atomic_path, read_json, sha256_file

__all__ = ["LIMIT_BYTES", "WINDOW", "travelling_bytes", "carried_bytes", "resume_status", "prepare", "device_command",
           "probe_needed", "TIMEOUT_S", "BUDGET_S"]

LIMIT_BYTES = 64 * 2**20
WINDOW = Path(".window")
TIMEOUT_S = 590  # the device command's limit (one command may run 600 s)
BUDGET_S = 540  # the campaign's own budget: python's start (~10 s) and ~40 s to write results fit in between
# an unfinished teacher's resume files are committed (results/paper/teacher_resume), so they travel as tracked files
CARRY = (str(WINDOW / "data"), str(WINDOW / "site"))
PACKED_BYTES = 35_339_288  # the packed CIFAR-10 file (../shared/data/fallback-cifar10), when it cannot be looked at
SITE_BYTES = 2**20  # at most what the copy of tqdm takes


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def travelling_bytes(root: Path, carry: tuple = CARRY) -> int:
    """Bytes that travel: tracked and untracked-not-ignored files, plus the ``carry`` paths."""
    names = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    files = [root / n for n in names if n and (root / n).is_file() and not (root / n).is_symlink()]
    for path in carry:
        base = root / path
        files += [p for p in base.rglob("*") if p.is_file()] if base.is_dir() else []
    return sum(p.stat().st_size for p in files)


def carried_bytes(root: Path = CHECKOUT) -> int:
    """Bytes the carried paths take or will take: the packed CIFAR-10 file and the copy of tqdm."""
    offline = find_offline_copy()
    source = packed_file(offline) if offline is not None else None
    copied = Path(root) / WINDOW_DATA / PACKED_NAME
    if source is not None:
        return source.stat().st_size + SITE_BYTES
    packed = copied.stat().st_size if copied.is_file() else PACKED_BYTES
    return packed + SITE_BYTES


def _copy_if_changed(source: Path, target: Path) -> None:
    """``target`` as a verified copy of ``source`` (same SHA-256), copied only when it differs."""
    expected = sha256_file(source)
    if target.is_file() and sha256_file(target) == expected:
        return
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        if sha256_file(tmp) != expected:
            raise ValueError(f"the copy of {source} into {target} does not match its SHA-256; allowed: a faithful "
                             "copy (check the disk, and run --prepare again)")


def prepare(root: Path = CHECKOUT) -> dict:
    """Fill ``.window/`` and check the size; returns the commit, the carry list and the bytes that travel."""
    root = Path(root)
    ignore = root / ".gitignore"
    if not ignore.is_file() or "/.window/" not in ignore.read_text().split():
        raise ValueError(f"{ignore} is absent or does not ignore /.window/; allowed: a checkout of this project")
    commit = commit_of(root)  # "-dirty" when the library differs from it, as in every result's provenance
    if commit == "unknown":  # checked before copying 35 MB
        raise ValueError(f"{root} has no readable git commit; allowed: a git checkout of this project")
    offline = find_offline_copy()
    source = packed_file(offline) if offline is not None else None
    if source is None:
        raise ValueError(f"{PACKED_NAME} was not found (set IGKD_CIFAR10_OFFLINE to the folder holding it, "
                         "e.g. ../shared/data/fallback-cifar10)")
    _copy_if_changed(source, root / WINDOW_DATA / PACKED_NAME)
    tqdm_spec = importlib.util.find_spec("tqdm")
    if tqdm_spec is not None and tqdm_spec.submodule_search_locations:
        site = root / WINDOW / "site" / "tqdm"
        shutil.rmtree(site, ignore_errors=True)
        shutil.copytree(list(tqdm_spec.submodule_search_locations)[0], site,
                        ignore=shutil.ignore_patterns("__pycache__"))
    size = travelling_bytes(root)
    if size > LIMIT_BYTES:
        raise ValueError(f"{size / 2**20:.1f} MiB would travel, above the device's 64 MiB; allowed: at most 64 MiB "
                         "(remove large untracked files, or commit less)")
    return {"commit": commit, "carry": list(CARRY), "bytes": size, "teacher": resume_status(root)}


def resume_status(root: Path = CHECKOUT) -> str:
    """Where the next window's paper teacher starts: the committed resume files (verified now: SHA-256 against
    their ``resume.json``, loaded as tensors and plain data, checked against this checkout's teacher), or not."""
    from igkd_lib.campaign.resume_files import RESUME_DIR, RESUME_JSON, committed_hashes, read_resume

    folder = Path(root) / "results" / "paper" / RESUME_DIR
    hashes = committed_hashes(folder)
    if hashes is None:
        return f"no committed resume files in {folder}: an installed teacher is used, or the teacher starts at epoch 1"
    state = read_resume(folder, hashes)
    tracked = _git(Path(root), "ls-files", "--", str(folder.relative_to(root))).split()
    if len(tracked) < 3:
        raise ValueError(f"the resume files in {folder} are not all committed ({len(tracked)} of 3 tracked); allowed: "
                         "commit them (git add) so they travel with the checkout")
    record = read_json(folder / RESUME_JSON)
    return (f"resumes after epoch {len(state['log'])} (window {record.get('window')}, test accuracy "
            f"{state['log'][-1]['test_acc']:.2f}%) from {folder.relative_to(root)}, SHA-256 verified")


def probe_needed(results_dir: Path = RESULTS_DIR) -> bool:
    """True until an ingested window holds the probe (``--probe``: kernel and trainer measurements), and again
    when the committed engine was chosen among other candidates than the code offers now
    (:func:`igkd_lib.campaign.engine.current`)."""
    from igkd_lib.campaign.engine import current, read_engine

    probed = any("probe" in read_json(path) for path in (results_dir / "paper" / "windows").glob("*.json"))
    return not probed or not current(read_engine(results_dir, "paper"))


def device_command(commit: str, budget_s: int = BUDGET_S, probe: bool = False) -> str:
    """The one shell command the device runs (in the checkout's root, with ``$OUT`` set)."""
    return ("set -o pipefail; export PYTHONUNBUFFERED=1 IGKD_OFFLINE=1 PYTHONPATH=$PWD; "
            "python3 -c 'import tqdm' 2>/dev/null || export PYTHONPATH=$PWD:$PWD/.window/site; "
            "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; "
            f"python3 -m igkd_lib campaign --budget-s {budget_s} --out $OUT --commit {commit}"
            f"{' --probe' if probe else ''} 2>&1 "
            "| tee $OUT/log.txt")
