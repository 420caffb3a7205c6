"""Atomic, verifiable files: every cache and checkpoint of the book is written through here.

A file is written to a temporary name in the same folder, flushed, fsynced and renamed, so a
reader sees either the old file or the whole new one, never a torn one. A write that fails (a full
disk, a read-only folder) raises :class:`StorageError` naming the file and the cause, and leaves no
temporary file behind. A checkpoint that cannot be read is moved aside (:func:`load_checkpoint`), so
the run that needs it starts again instead of failing for good.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["atomic_path", "atomic_write_json", "atomic_save_npy", "atomic_torch_save", "sha256_file",
           "model_sha256", "stable_hash", "read_json", "StorageError", "load_checkpoint", "move_aside",
           "write_checked_json", "read_checked_json"]


class StorageError(OSError):
    """A cache or checkpoint file could not be written; the message names the file and the cause."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(handle)
        tmp_path = Path(tmp)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except OSError as error:
        if isinstance(error, StorageError):
            raise
        raise _storage_error(path, error) from error
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def _storage_error(path: Path, error: OSError) -> StorageError:
    cause = error.strerror or str(error)
    advice = ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "; free some space on that disk, or point IGKD_CACHE (cache_dir) at a disk with room"
    elif error.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        advice = "; make the folder writable, or point IGKD_CACHE (cache_dir) elsewhere"
    code = errno.errorcode.get(error.errno, "") if error.errno else ""
    return StorageError(error.errno, f"could not write {path}: {cause}{f' ({code})' if code else ''}{advice}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _payload_sha256(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()


def write_checked_json(path: str | os.PathLike, data: dict) -> None:
    """Write a JSON object atomically with a ``sha256`` field over the rest (canonical JSON)."""
    atomic_write_json(path, {**data, "sha256": _payload_sha256(data)})


def read_checked_json(path: str | os.PathLike) -> dict | None:
    """A file written by :func:`write_checked_json`, without its ``sha256`` field; None if absent.

    A file that does not parse, or whose checksum does not match its content, is moved aside
    (reported on stderr) and None is returned, so the result is computed again. A file written
    before checksums existed (no ``sha256`` field) is returned as it is.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = read_json(path)
        ok = isinstance(data, dict) and ("sha256" not in data or data["sha256"] == _payload_sha256(
            {k: v for k, v in data.items() if k != "sha256"}))
    except (OSError, ValueError):
        ok = False
    if not ok:
        move_aside(path, "its content does not match its checksum, or it does not parse")
        return None
    return {k: v for k, v in data.items() if k != "sha256"}


def move_aside(path: str | os.PathLike, why: str) -> Path:
    """Rename a damaged file to ``<name>.corrupt-<time>`` beside it (kept for inspection) and say so on stderr."""
    path = Path(path)
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, target)
    print(f"warning: {path} is unreadable ({why}); moved it to {target.name} and starting that work again",
          file=sys.stderr)
    return target


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict | None:
    """A training checkpoint (a dict saved by :func:`atomic_torch_save`), or None if absent or unreadable.

    Loaded with ``weights_only=True``: tensors and plain data only, so a file that holds anything else (a
    pickle that would run code) is refused like a damaged one, never run. An unreadable checkpoint
    (truncated, bit-flipped, not a checkpoint) is reported by path and moved aside (:func:`move_aside`), so
    the run restarts from scratch instead of failing on every rerun.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"it holds a {type(state).__name__}, not a checkpoint dict")
    except Exception as error:  # torch.load raises many kinds (RuntimeError, UnpicklingError, EOFError, ...)
        move_aside(path, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
        return None
    return state


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_sha256(model) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes, values), wherever it lives."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short hash of a JSON-serialisable object (keys sorted), for cache keys."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]
