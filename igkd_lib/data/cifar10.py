"""CIFAR-10 as uint8 tensors in canonical order, from torchvision or the offline copy.

Sources, in order: an explicit root (torchvision's ``cifar-10-batches-py`` layout), torchvision's
usual places, torchvision's download (only where the internet answers within seconds), and the
offline copy described in ``shared/data/fallback-cifar10/README.md`` (or ``$IGKD_CIFAR10_OFFLINE``).
Every result says which source it came from (:attr:`Cifar10.source`). See the book's introduction.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import io
import json
import os
import signal
import socket
import sys
import threading
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from igkd_lib.config import Config
from igkd_lib.data import packed as _packed
from igkd_lib.paths import PACKAGE
from igkd_lib.provenance import SOURCE_LABELS
from igkd_lib.storage import atomic_save_npy, atomic_write_json, sha256_file

__all__ = ["Cifar10", "DataUnavailable", "load_cifar10", "stratified_subset", "load_splits", "SOURCE_LABELS",
           "find_offline_copy", "decode_offline_copy", "CLASSES", "source_label", "exact_rows",
           "find_shared_folder"]

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_ZIP = "cifar10_jpeg_q75_YoongiKim.zip"
_NPZ = "cifar10_exact_labels_and_prefix_images.npz"
_DECODER_VERSION = 2  # 2: the manifest records each array's size and SHA-256, verified on every load
_VERIFIED: set = set()  # (path, inode, size, mtime) of arrays verified by this process


class DataUnavailable(RuntimeError):
    """No source of CIFAR-10 worked; the message lists every way to provide it."""


@dataclass(frozen=True)
class Cifar10:
    """One split: ``images`` uint8 (N, 3, 32, 32), ``labels`` int64 (N,), dataset ``indices`` (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    split: str
    source: str

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS[self.source]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, positions: torch.Tensor) -> "Cifar10":
        """Rows at ``positions``; ``indices`` keep the dataset indices of the full split."""
        return Cifar10(self.images[positions], self.labels[positions], self.indices[positions], self.split, self.source)


# --------------------------------------------------------------------------- public API
def load_cifar10(split: str, config: Config | None = None, *, source: str | None = None,
                 root: str | None = None) -> Cifar10:
    """The whole ``split`` ("train" or "test") in canonical order, from the first source that works."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not allowed; allowed: train, test")
    source = source or (config.data_source if config else "auto")
    root = root if root is not None else (config.data_root if config else "")
    cache_dir = Path(config.cache_dir if config else os.environ.get("IGKD_CACHE", Path.home() / ".cache" / "igkd"))
    tried: list[str] = []
    if source in ("auto", "torchvision"):
        for candidate in _torchvision_roots(root, cache_dir):
            found = _read_torchvision(candidate, split)
            if found is not None:
                return found
            tried.append(f"torchvision files under {candidate}: not found")
        if _internet_available():
            download_root = Path(root) if root else cache_dir / "torchvision"
            try:
                return _download_torchvision(download_root, split)
            except Exception as error:  # a broken download must not hide the offline copy
                tried.append(f"torchvision download into {download_root}: {error}")
        else:
            tried.append("torchvision download: the internet is not reachable (checked within 3 s)")
        if source == "torchvision":
            raise DataUnavailable(_explain(tried))
    offline = find_offline_copy()
    if offline is None:
        tried.append("offline copy: not found (set IGKD_CIFAR10_OFFLINE, or keep shared/data/fallback-cifar10 "
                     "beside the repository)")
        raise DataUnavailable(_explain(tried))
    arrays = decode_offline_copy(offline, cache_dir)
    images = torch.from_numpy(np.load(arrays[f"{split}_images"], mmap_mode="r")[:].copy())
    labels = torch.from_numpy(np.load(arrays[f"{split}_labels"]))
    return Cifar10(images, labels, torch.arange(len(labels)), split, "offline")


def stratified_subset(data: Cifar10, n: int, seed: int = 0) -> Cifar10:
    """A seeded subset of ``n`` rows with (as near as possible) equal counts per class, in dataset order."""
    if not 1 <= n <= len(data):
        raise ValueError(f"n={n} is not allowed; allowed: 1 to {len(data)}")
    if n == len(data):
        return data
    generator = torch.Generator().manual_seed(seed)
    classes = torch.unique(data.labels)
    per_class = [n // len(classes) + (1 if i < n % len(classes) else 0) for i in range(len(classes))]
    chosen = []
    for count, label in zip(per_class, classes):
        rows = torch.nonzero(data.labels == label).flatten()
        chosen.append(rows[torch.randperm(len(rows), generator=generator)[:count]])
    return data.subset(torch.sort(torch.cat(chosen)).values)


@functools.lru_cache(maxsize=8)
def _source_label(data_source: str, data_root: str, cache_dir: str) -> str:
    from igkd_lib.config import make_config

    config = make_config("smoke", data_source=data_source, data_root=data_root, cache_dir=cache_dir)
    return load_cifar10("test", config).source_label


def source_label(config: Config) -> str:
    """The human label of the source ``config`` resolves to (loads the test split once per process)."""
    return _source_label(config.data_source, config.data_root, config.cache_dir)


def load_splits(config: Config) -> tuple[Cifar10, Cifar10]:
    """Train and test subsets of the sizes the profile asks for (``n_train``, ``n_test``)."""
    train = stratified_subset(load_cifar10("train", config), config.n_train, config.subset_seed)
    test = stratified_subset(load_cifar10("test", config), config.n_test, config.subset_seed)
    return train, test


# --------------------------------------------------------------------------- torchvision
def _torchvision_roots(root: str, cache_dir: Path) -> list[Path]:
    if root:
        return [Path(root)]
    env = os.environ.get("IGKD_CIFAR10_ROOT")
    places = [Path(env)] if env else []
    return places + [cache_dir / "torchvision", Path.home() / ".cache" / "torchvision", Path("data")]


def _read_torchvision(root: Path, split: str) -> Cifar10 | None:
    if not (root / "cifar-10-batches-py").is_dir():
        return None
    from torchvision.datasets import CIFAR10

    dataset = CIFAR10(str(root), train=(split == "train"), download=False)
    images = torch.from_numpy(np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2)))
    labels = torch.tensor(dataset.targets, dtype=torch.int64)
    return Cifar10(images, labels, torch.arange(len(labels)), split, "torchvision")


def _internet_available(host: str = "www.cs.toronto.edu", timeout: float = 3.0) -> bool:
    if os.environ.get("IGKD_OFFLINE") == "1":
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _download_torchvision(root: Path, split: str) -> Cifar10:
    from torchvision.datasets import CIFAR10

    root.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        CIFAR10(str(root), train=(split == "train"), download=True)
    finally:
        socket.setdefaulttimeout(previous)
    found = _read_torchvision(root, split)
    assert found is not None
    return found


def _explain(tried: list[str]) -> str:
    lines = "\n  - ".join(tried)
    return ("CIFAR-10 could not be loaded from any source. Tried:\n  - " + lines + "\nWays to provide it: "
            "pass data_root= (a folder holding torchvision's cifar-10-batches-py), run where the internet "
            "reaches torchvision's download, or point IGKD_CIFAR10_OFFLINE at the offline copy "
            f"(a folder with {_ZIP} and {_NPZ}, or with {_packed.PACKED_NAME}).")


# --------------------------------------------------------------------------- offline copy
def find_offline_copy() -> Path | None:
    """The folder of the offline copy: ``$IGKD_CIFAR10_OFFLINE``, ``shared/data/fallback-cifar10`` nearby, or
    a checkout's ``.window/data`` (the packed file a GPU window carries, :mod:`igkd_lib.data.packed`)."""
    def holds(folder: Path) -> bool:
        return (folder / _ZIP).is_file() or _packed.packed_file(folder) is not None

    return find_shared_folder("fallback-cifar10", holds, "IGKD_CIFAR10_OFFLINE", also=(_packed.WINDOW_DATA,))


def find_shared_folder(name: str, marker, env: str, also: tuple = ()) -> Path | None:
    """``$env`` if set, else the first ``shared/data/<name>`` (or folder ``also`` names, relative to the same
    places) holding ``marker`` (a file name, or a function of the folder), from the working directory or
    this package upwards (in a checkout or beside it), else None."""
    if os.environ.get(env):
        return Path(os.environ[env])
    holds = marker if callable(marker) else (lambda folder: (folder / marker).is_file())
    here = PACKAGE
    for base in (Path.cwd(), *Path.cwd().parents, here, *here.parents):
        for candidate in (base / "shared" / "data" / name, base.parent / "shared" / "data" / name,
                          *(base / extra for extra in also)):
            if holds(candidate):
                return candidate
    return None


def exact_rows(data: Cifar10) -> torch.Tensor:
    """Positions of ``data``'s rows whose pixels are canonical CIFAR-10: all of them from torchvision,
    on the offline copy only the images whose exact pixels it holds (the first 1,017 of each batch file)."""
    if data.source != "offline":
        return torch.arange(len(data))
    folder = find_offline_copy()
    if folder is None:
        raise DataUnavailable(f"The offline copy is not found, so its exact rows are unknown. {_explain([])}")
    arrays = Path(folder) / _NPZ if (Path(folder) / _NPZ).is_file() else _packed.packed_file(folder)
    exact = torch.from_numpy(np.load(arrays)[f"{data.split}_exact_index"].astype(np.int64))
    return torch.nonzero(torch.isin(data.indices, exact)).flatten()


def decode_offline_copy(folder: Path, cache_dir: Path) -> dict[str, Path]:
    """Decode the offline copy once into ``.npy`` arrays keyed by the SHA-256 of its files.

    The manifest records each array's size and SHA-256; they are checked on load (once per process
    while the file is unchanged), and a missing, truncated or altered array is decoded again (with a
    message on stderr), never used. The decode's worker processes die with the process that started them.
    A folder holding the packed file but not the zip is decoded from the packed file (same arrays).
    """
    folder = Path(folder)
    if not (folder / _ZIP).is_file() and _packed.packed_file(folder):
        try:
            return _packed.decode_packed(_packed.packed_file(folder), cache_dir)
        except ValueError as error:
            raise DataUnavailable(f"{error}. {_explain([])}") from None
    for name in (_ZIP, _NPZ):
        if not (folder / name).is_file():
            raise DataUnavailable(f"The offline copy at {folder} lacks {name}. {_explain([])}")
    digest = hashlib.sha256(f"decoder-v{_DECODER_VERSION}".encode())
    for name in (_ZIP, _NPZ):
        digest.update(sha256_file(folder / name).encode())
    out = Path(cache_dir) / f"cifar10-offline-{digest.hexdigest()[:16]}"
    names = {f"{s}_{k}": out / f"{s}_{k}.npy" for s in ("train", "test") for k in ("images", "labels")}
    if _cache_verified(out, names):
        return names
    out.mkdir(parents=True, exist_ok=True)
    try:
        exact = np.load(folder / _NPZ)
        label_names = [str(n) for n in exact["label_names"]]
        for split in ("train", "test"):
            labels = exact[f"{split}_labels"].astype(np.int64)
            images = _decode_jpegs(folder / _ZIP, split, labels, label_names)
            images[exact[f"{split}_exact_index"]] = exact[f"{split}_exact_data"].reshape(-1, 3, 32, 32)
            atomic_save_npy(names[f"{split}_images"], images)
            atomic_save_npy(names[f"{split}_labels"], labels)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, EOFError) as error:
        raise DataUnavailable(f"The offline copy at {folder} is damaged or incomplete ({type(error).__name__}: "
                              f"{error}). Restore the original files. {_explain([])}") from None
    files = {path.name: {"bytes": path.stat().st_size, "sha256": sha256_file(path)} for path in names.values()}
    atomic_write_json(out / "manifest.json", {"source": str(folder), "decoder_version": _DECODER_VERSION,
                                              "files": files})
    return names


def _cache_verified(out: Path, names: dict[str, Path]) -> bool:
    """Whether every decoded array matches the size and SHA-256 its manifest records (says why not)."""
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        return False  # never decoded (or killed before the end): decode, nothing to report
    try:
        files = json.loads(manifest_path.read_text())["files"]
        for path in names.values():
            _verify_array(path, files[path.name])
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"warning: the decoded CIFAR-10 cache {out} does not verify ({error}); decoding it again",
              file=sys.stderr)
        return False
    return True


def _verify_array(path: Path, expected: dict) -> None:
    stat = path.stat()
    token = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if token in _VERIFIED:
        return
    if stat.st_size != expected["bytes"]:
        raise ValueError(f"{path.name} has {stat.st_size} bytes, its manifest says {expected['bytes']}")
    actual = sha256_file(path)
    if actual != expected["sha256"]:
        raise ValueError(f"{path.name} has SHA-256 {actual}, its manifest says {expected['sha256']}")
    _VERIFIED.add(token)


def _decode_jpegs(zip_path: Path, split: str, labels: np.ndarray, label_names: list[str]) -> np.ndarray:
    rank = np.zeros(len(labels), dtype=np.int64)  # r: earlier images of the same label
    counts = np.zeros(len(label_names), dtype=np.int64)
    for i, label in enumerate(labels):
        rank[i] = counts[label]
        counts[label] += 1
    members = [f"{split}/{label_names[label]}/{r:04d}.jpg" for label, r in zip(labels, rank)]
    chunks = [members[i::2] for i in range(2)]
    with ProcessPoolExecutor(max_workers=2, initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        parts = list(pool.map(_decode_members, [str(zip_path)] * 2, chunks))
    images = np.empty((len(labels), 3, 32, 32), dtype=np.uint8)
    for i in range(2):
        images[i::2] = parts[i]
    return images


def _die_with_parent(parent: int) -> None:
    """In a decode worker: end when ``parent`` ends, even by kill -9 (no orphan holding ~600 MB)."""
    if sys.platform.startswith("linux"):
        try:  # PR_SET_PDEATHSIG (1): the kernel sends SIGKILL when the forking process ends
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    # Everywhere (and for a parent that died before prctl, or a worker forked by a server): poll it.
    threading.Thread(target=_exit_when_gone, args=(parent,), daemon=True, name="igkd-parent-watch").start()


def _exit_when_gone(parent: int, interval: float = 0.5) -> None:
    while _alive(parent):
        time.sleep(interval)
    os._exit(1)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS, Windows): os.kill answered


def _decode_members(zip_path: str, members: list[str]) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(members), 3, 32, 32), dtype=np.uint8)
    with zipfile.ZipFile(zip_path) as archive:
        for row, member in enumerate(members):
            with Image.open(io.BytesIO(archive.read(member))) as image:
                out[row] = np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
    return out
