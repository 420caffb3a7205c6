"""The offline CIFAR-10 copy packed in one file, for a GPU machine that receives only the checkout.

``cifar10_jpeg_q75_packed.npz`` (see ``shared/data/fallback-cifar10/README.md``) holds the zip's 60,000
JPEG files byte for byte as one shared header plus each image's entropy-coded scan, the canonical
labels and the exact pixels of about 10 % of the images. Decoding it gives exactly the arrays of the
zip path of :mod:`igkd_lib.data.cifar10` (JPEG pixels, exact pixels where known), under the same source
label ("offline"). Decoded once into ``.npy`` arrays keyed by the file's SHA-256.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from igkd_lib.storage import atomic_save_npy, atomic_write_json, read_json, sha256_file

__all__ = ["PACKED_NAME", "WINDOW_DATA", "packed_file", "decode_packed", "packed_jpeg_bytes", "decode_jpeg_bytes"]

PACKED_NAME = "cifar10_jpeg_q75_packed.npz"
# The git-ignored folder of a checkout into which the GPU window copies the packed file (it travels).
WINDOW_DATA = Path(".window") / "data"
_DECODER_VERSION = 1
_SPLITS = ("train", "test")


class _Damaged(Exception):
    pass


def packed_file(folder: str | os.PathLike) -> Path | None:
    """The packed file in ``folder``, or None."""
    path = Path(folder) / PACKED_NAME
    return path if path.is_file() else None


def packed_jpeg_bytes(arrays, split: str, rows) -> list[bytes]:
    """The JPEG files (header + scan) of ``rows`` of ``split``, as the zip holds them."""
    header = arrays["jpeg_header"].tobytes()
    scans, offsets = arrays[f"{split}_scans"], arrays[f"{split}_offsets"]
    return [header + scans[offsets[i]:offsets[i + 1]].tobytes() for i in rows]


def decode_jpeg_bytes(files: list[bytes], workers: int | None = None) -> np.ndarray:
    """Decode JPEG files with Pillow (as the zip path does) -> uint8 (N, 3, 32, 32); threads, no child processes."""
    out = np.empty((len(files), 3, 32, 32), dtype=np.uint8)
    workers = workers or min(8, os.cpu_count() or 1)
    parts = [range(i, len(files), workers) for i in range(workers)]

    def decode(rows: range) -> None:
        from PIL import Image

        for row in rows:
            with Image.open(io.BytesIO(files[row])) as image:
                out[row] = np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(decode, parts))
    return out


def decode_packed(path: str | os.PathLike, cache_dir: str | os.PathLike) -> dict[str, Path]:
    """Decode the packed file once into ``{split}_images`` / ``{split}_labels`` ``.npy`` files; their paths.

    Images uint8 (N, 3, 32, 32) in canonical order: JPEG pixels, replaced by the exact pixels where the
    file holds them. Raises ValueError naming the file when it is damaged or incomplete.
    """
    path = Path(path)
    digest = hashlib.sha256(f"packed-decoder-v{_DECODER_VERSION}:{sha256_file(path)}".encode()).hexdigest()[:16]
    out = Path(cache_dir) / f"cifar10-packed-{digest}"
    names = {f"{s}_{k}": out / f"{s}_{k}.npy" for s in _SPLITS for k in ("images", "labels")}
    if _finished(out, names):
        return names
    try:
        arrays = np.load(path)
        manifest = {"source": str(path), "decoder_version": _DECODER_VERSION, "files": {}}
        for split in _SPLITS:
            labels = arrays[f"{split}_labels"].astype(np.int64)
            images = decode_jpeg_bytes(packed_jpeg_bytes(arrays, split, range(len(labels))))
            images[arrays[f"{split}_exact_index"]] = arrays[f"{split}_exact_data"].reshape(-1, 3, 32, 32)
            for kind, array in (("images", images), ("labels", labels)):
                atomic_save_npy(names[f"{split}_{kind}"], array)
                manifest["files"][f"{split}_{kind}"] = sha256_file(names[f"{split}_{kind}"])
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, EOFError) as error:
        raise ValueError(f"the packed CIFAR-10 file {path} is damaged or incomplete ({type(error).__name__}: "
                         f"{error}); allowed: the original {PACKED_NAME}") from None
    atomic_write_json(out / "manifest.json", manifest)
    return names


def _finished(out: Path, names: dict[str, Path]) -> bool:
    """The decoded arrays exist and match the SHA-256s of their manifest."""
    try:
        recorded = read_json(out / "manifest.json")["files"]
        return all(recorded.get(key) == sha256_file(path) for key, path in names.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False
