"""Where a number came from: device, commit, versions, threads, profile and data source.

Every result table, figure caption and cached run carries :func:`provenance`.
"""
from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

import torch

from igkd_lib.config import Config
from igkd_lib.paths import CHECKOUT

__all__ = ["resolve_device", "device_name", "git_commit", "commit_of", "CODE_PATHS", "provenance", "provenance_line",
           "SOURCE_LABELS"]


# the label every result carries for each data source (igkd_lib.data.cifar10 loads them)
SOURCE_LABELS = {
    "torchvision": "CIFAR-10 (canonical pixels, torchvision)",
    "offline": "CIFAR-10 offline copy (JPEG q75; exact pixels for ~10%) - not canonical CIFAR-10",
}

def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; a named device that is absent is an error."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} is not available here; allowed: auto, cpu" +
                         (", mps" if torch.backends.mps.is_available() else ""))
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' is not available here; allowed: auto, cpu")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    """A human name: the GPU model, or the CPU with its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


CODE_PATHS = ("igkd_lib", "pyproject.toml")  # what makes a result: a change here makes a commit "-dirty"


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The checkout's :func:`commit_of` (read once per process)."""
    return commit_of(CHECKOUT)


def commit_of(root: Path) -> str:
    """The commit of the repository at ``root``, or ``unknown``; ``-dirty`` when the code that makes the
    numbers (:data:`CODE_PATHS`: the library and its package metadata) differs from it. The notebooks
    and results that a book build writes do not count: a chapter executed after the library was
    committed names a clean commit."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(config: Config, data_source: str) -> dict:
    """The fields every result carries. ``data_source``: a source's key ("offline") or its label (from
    :func:`igkd_lib.data.cifar10.source_label` where no data is at hand)."""
    data_source = SOURCE_LABELS.get(data_source, data_source)  # a source key ("offline") reads as its label
    device = resolve_device(config.device)
    return {
        "profile": config.profile,
        "seeds": list(config.seeds),
        "data_source": data_source,
        "device": device_name(device),
        "commit": git_commit(),
        "torch": torch.__version__,
    }


def provenance_line(config: Config, data_source: str) -> str:
    """One line for beside a figure or table."""
    p = provenance(config, data_source)
    return (f"profile={p['profile']} · seeds={p['seeds']} · data={p['data_source']} · device={p['device']} · "
            f"commit={p['commit']} · torch={p['torch']}")

