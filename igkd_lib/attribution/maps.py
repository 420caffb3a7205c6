"""The teacher's IG maps of the training set: computed once, cached, addressed by dataset index.

``get_maps(config)`` returns one 32x32 map per training image (Σ over colour channels of
|IG attribution|), with **row i = the map of image ``train.indices[i]``** whatever order the work
was done in. The cache (``{cache_dir}/maps/<key>/``) is keyed by everything the maps depend on,
written chunk by chunk with a manifest (a killed run resumes and ends with the identical file),
finalised atomically and verified by SHA-256 on every load (a damaged file is recomputed, never
used). Stored compactly and memory-mappable: ``maps.npy`` float16 (N, H, W), each map divided by
its maximum, and ``scales.npy`` float32 (N,), so map i = maps[i] * scales[i] with a relative
error below 5e-4 whatever the magnitude (plain float16 would flush an untrained teacher's ~1e-10
values to zero). Runs on the same key take turns (an exclusive lock on ``<key>.lock`` beside the
folder): a second ``precompute`` waits for the first and reuses its maps. See chapter 2 ("Precomputing the maps").
"""
from __future__ import annotations

import hashlib
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from igkd_lib.attribution.ig import chunk_size, integrated_gradients, reduce_map
from igkd_lib.config import Config, group_fields
from igkd_lib.data.augment import to_float
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.storage import atomic_save_npy, atomic_write_json, model_sha256, read_json, sha256_file, stable_hash
from igkd_lib.timing import Stopwatch
from igkd_lib.training.faults import official_pairing  # the official code's faults live in faults.py
from igkd_lib.training.loop import autocast, predict_logits

__all__ = ["MapSet", "get_maps", "maps_key", "maps_precision", "model_sha256", "open_maps", "official_pairing",
           "throughput", "cli", "FORMAT_VERSION", "REDUCTION", "MAPS_FIELDS"]

FORMAT_VERSION = 2
REDUCTION = "sum_abs_channels"
_DTYPE = np.float16



@dataclass(frozen=True)
class MapSet:
    """``maps`` float32 CPU (N, H, W), row i for dataset image ``indices[i]``; where and how it was made."""

    maps: torch.Tensor
    indices: torch.Tensor
    key: str
    path: Path
    seconds: float
    from_cache: bool

    @property
    def nbytes(self) -> int:
        """Size of the stored files (maps and scales) in bytes."""
        return self.path.stat().st_size + self.path.with_name("scales.npy").stat().st_size


# --------------------------------------------------------------------------- keys
def maps_precision(config: Config, device: torch.device) -> str:
    """The maps' arithmetic: ``config.ig_precision``, where ``auto`` is bf16 autocast on CUDA, float32 elsewhere."""
    if config.ig_precision == "auto":
        return "bf16" if device.type == "cuda" else "float32"
    return {"fp32": "float32", "bf16": "bf16"}[config.ig_precision]


# The config fields the maps depend on (besides the teacher, the data and the precision): runs that read
# maps made with other values of these must not share them (the campaign groups runs by them).
MAPS_FIELDS = group_fields("maps")
# their names in the key (as the first keys wrote them, so cached maps keep their folders)
_KEY_NAMES = {"ig_method": "method", "ig_steps": "steps", "ig_baseline": "baseline", "ig_target": "target",
              "map_source": "source", "map_views": "views"}


def maps_key(config: Config, teacher_sha: str, data_source: str, indices: torch.Tensor, precision: str) -> dict:
    """Everything the maps depend on (:data:`MAPS_FIELDS` and what they bring in); ``stable_hash`` of it
    names the cache folder."""
    ordered = np.ascontiguousarray(np.unique(indices.numpy()).astype(np.int64))
    key = {"teacher": teacher_sha, "data_source": data_source, "indices": hashlib.sha256(ordered).hexdigest(),
           "n": int(len(ordered)), "reduction": REDUCTION, "precision": precision, "dtype": np.dtype(_DTYPE).name,
           "version": FORMAT_VERSION, **{_KEY_NAMES[k]: v for k, v in config.group_key("maps").items()}}
    if config.map_views == "augmented":  # the official maps: one random crop and flip of each image
        from igkd_lib.training.faults import PRECOMPUTE_SEED

        key.update(views_seed=PRECOMPUTE_SEED, padding=config.crop_padding, flip=config.flip)
    return key


# --------------------------------------------------------------------------- computing
def _targets(config: Config, teacher: nn.Module, data: Cifar10, device: torch.device) -> torch.Tensor:
    if config.ig_target == "label":
        return data.labels
    return predict_logits(teacher, data.images, config.eval_batch_size, device).argmax(1)


def _compute_chunk(teacher: nn.Module, images_uint8: torch.Tensor, targets: torch.Tensor, config: Config,
                   device: torch.device) -> np.ndarray:
    """Maps (k, H, W) float32 for one chunk of uint8 images (k, 3, H, W)."""
    x = to_float(images_uint8.to(device))
    bf16 = maps_precision(config, device) == "bf16"
    context = autocast(device, bf16)
    with context:
        if config.map_source != "ig":  # a control source (igkd_lib.attribution.sources)
            from igkd_lib.attribution.sources import source_maps
            return source_maps(config.map_source, teacher, x, targets, config).numpy().astype(np.float32)
        result = integrated_gradients(teacher, x, targets, n_steps=config.ig_steps, method=config.ig_method,
                                      baseline=config.ig_baseline, chunk_size=chunk_size(config, device))
    return reduce_map(result.attributions).numpy().astype(np.float32)


def _chunk_rows(config: Config) -> int:
    """Images per cache chunk: about 16k interpolation points (a few seconds to a minute of work)."""
    return max(1, 16_384 // config.ig_steps)


def _chunk_ok(folder: Path, manifest: dict, number: int) -> bool:
    path = folder / f"chunk_{number:05d}.npy"
    return path.is_file() and manifest["chunks"].get(str(number)) == sha256_file(path)


def _fill_chunks(folder: Path, manifest: dict, data: Cifar10, targets: torch.Tensor, teacher: nn.Module,
                 config: Config, device: torch.device, progress: bool) -> None:
    """Compute every chunk not yet in the manifest; the manifest is rewritten after each one."""
    rows, n = manifest["chunk_rows"], len(data)
    numbers = range(-(-n // rows))
    done = {k for k in numbers if _chunk_ok(folder, manifest, k)}
    manifest["chunks"] = {str(k): manifest["chunks"][str(k)] for k in done}
    bar = tqdm(total=n, initial=min(n, len(done) * rows), unit="img", desc="IG maps", disable=not progress,
               smoothing=0.1)
    with bar:
        for k in numbers:
            if k in done:
                continue
            part = slice(k * rows, min(n, (k + 1) * rows))
            array = _compute_chunk(teacher, data.images[part], targets[part], config, device)
            path = folder / f"chunk_{k:05d}.npy"
            atomic_save_npy(path, array)
            manifest["chunks"][str(k)] = sha256_file(path)
            atomic_write_json(folder / "manifest.json", manifest)
            bar.update(len(array))


def _finalise(folder: Path, manifest: dict, seconds: float) -> None:
    """Write ``maps.npy`` (float16, max 1 per map) and ``scales.npy`` atomically, record SHA-256s, drop the chunks."""
    parts = [np.load(folder / f"chunk_{k:05d}.npy") for k in range(len(manifest["chunks"]))]
    maps = np.concatenate(parts)
    scales = maps.reshape(len(maps), -1).max(axis=1).astype(np.float32)
    safe = np.where(scales > 0, scales, 1.0).astype(np.float32)
    atomic_save_npy(folder / "maps.npy", (maps / safe[:, None, None]).astype(_DTYPE))
    atomic_save_npy(folder / "scales.npy", scales)
    card = {"key": manifest["key"], "sha256": sha256_file(folder / "maps.npy"), "seconds": seconds,
            "scales_sha256": sha256_file(folder / "scales.npy"), "n": manifest["key"]["n"]}
    atomic_write_json(folder / "maps.json", card)
    for k in range(len(parts)):
        (folder / f"chunk_{k:05d}.npy").unlink(missing_ok=True)
    (folder / "manifest.json").unlink(missing_ok=True)


def _load_verified(folder: Path, n: int) -> np.ndarray | None:
    """The finished maps (n, H, W) float32 if present and their SHA-256s match; else None (damaged files go)."""
    card_path, path, scales_path = folder / "maps.json", folder / "maps.npy", folder / "scales.npy"
    if not (card_path.is_file() and path.is_file() and scales_path.is_file()):
        return None
    try:
        card = read_json(card_path)
        ok = card["sha256"] == sha256_file(path) and card["scales_sha256"] == sha256_file(scales_path)
        maps, scales = open_maps(path) if ok else (None, None)
    except (ValueError, KeyError, OSError):
        ok, maps = False, None
    if not ok or maps is None or maps.shape[0] != n or scales.shape != (n,):
        for stale in (path, scales_path, card_path):
            stale.unlink(missing_ok=True)
        return None
    return np.asarray(maps, dtype=np.float32) * scales[:, None, None]


def _start_manifest(folder: Path, key: dict, rows: int) -> dict:
    path = folder / "manifest.json"
    try:
        manifest = read_json(path) if path.is_file() else None
    except ValueError:
        manifest = None
    if manifest is None or manifest.get("key") != key or manifest.get("chunk_rows") != rows:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {"key": key, "chunk_rows": rows, "chunks": {}}
        atomic_write_json(path, manifest)
    return manifest


@contextmanager
def _folder_lock(folder: Path):
    """Hold an exclusive lock of one cache folder (``<folder>.lock`` beside it) for reading or filling it.

    A second run on the same key waits here (it says so) and then finds the first one's finished maps.
    Without ``fcntl`` (Windows) runs are not serialised.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another run that is computing the maps in {folder}", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- public API
def get_maps(config: Config, teacher: nn.Module | None = None, train: Cifar10 | None = None,
             progress: bool = True) -> MapSet:
    """The teacher's maps of ``train``: ``MapSet.maps`` float32 (N, 32, 32), row i = image ``train.indices[i]``.

    Defaults: the profile's teacher (:func:`igkd_lib.training.teacher.get_teacher`) and training subset
    (:func:`igkd_lib.data.cifar10.load_splits`). Cached under ``{cache_dir}/maps/<key>/``; resumes an
    interrupted run; a damaged file is recomputed.
    """
    if teacher is None:
        from igkd_lib.training.teacher import get_teacher
        teacher = get_teacher(config, progress=progress)[0]
    if train is None:
        from igkd_lib.data.cifar10 import load_splits
        train = load_splits(config)[0]
    if any(m.training for m in teacher.modules()):
        raise ValueError("teacher must be in eval mode (call teacher.eval())")
    device = next(teacher.parameters()).device
    order = torch.argsort(train.indices)
    data = train.subset(order)  # dataset order: the stored row k is the k-th smallest index
    unique, first = np.unique(data.indices.numpy(), return_index=True)
    data = data.subset(torch.from_numpy(first))
    key = maps_key(config, model_sha256(teacher), train.source, train.indices, maps_precision(config, device))
    if config.map_views == "augmented":  # the official maps: one random crop and flip of each image
        from igkd_lib.training.faults import augmented_views

        data = Cifar10(augmented_views(data.images, config), data.labels, data.indices, data.split, data.source)
    name = stable_hash(key)
    folder = Path(config.cache_dir) / "maps" / name
    with _folder_lock(folder):
        stored, seconds = _load_verified(folder, len(data)), 0.0
        from_cache = stored is not None
        if not from_cache:
            watch = Stopwatch()
            manifest = _start_manifest(folder, key, _chunk_rows(config))
            targets = _targets(config, teacher, data, device)
            _fill_chunks(folder, manifest, data, targets, teacher, config, device, progress)
            seconds = watch.seconds
            _finalise(folder, manifest, seconds)
            stored = _load_verified(folder, len(data))
            if stored is None:
                raise RuntimeError(f"the maps written to {folder} failed their checksum right after writing")
    rows = torch.from_numpy(np.searchsorted(unique, train.indices.numpy()))
    maps = torch.from_numpy(stored)[rows]
    return MapSet(maps, train.indices.clone(), name, folder / "maps.npy", seconds, from_cache)


def throughput(config: Config, teacher: nn.Module, data: Cifar10) -> float:
    """Interpolation points per second of the map computation on ``data`` (uint8 images), after a warm-up."""
    device = next(teacher.parameters()).device
    _compute_chunk(teacher, data.images[:1], data.labels[:1], config.replace(ig_steps=2), device)
    watch = Stopwatch(device)
    _compute_chunk(teacher, data.images, data.labels, config, device)
    return len(data) * config.ig_steps / watch.seconds


def open_maps(path: str | Path) -> tuple[np.memmap, np.ndarray]:
    """A finished ``maps.npy``, memory-mapped read-only, and its scales: map i = maps[i] * scales[i].

    ``maps`` float16 (N, H, W), each divided by its maximum, rows in dataset-index order;
    ``scales`` float32 (N,) from ``scales.npy`` beside it.
    """
    path = Path(path)
    return np.load(path, mmap_mode="r"), np.load(path.with_name("scales.npy"))


def cli(config: Config, args) -> int:
    """``python -m igkd_lib precompute``: compute (or find) the maps and say where, how long and the key."""
    result = get_maps(config)
    how = "found in the cache" if result.from_cache else f"computed in {result.seconds:.1f} s"
    points = len(result.maps) * config.ig_steps
    print(f"maps: {len(result.maps)} images x {config.ig_steps} steps ({config.ig_method}, baseline "
          f"{config.ig_baseline}, target {config.ig_target}) {how}")
    if not result.from_cache:
        print(f"speed: {points / max(result.seconds, 1e-9):.0f} points/s, "
              f"{len(result.maps) / max(result.seconds, 1e-9):.1f} images/s")
    print(f"file: {result.path} ({result.nbytes / 1e6:.2f} MB: float16 maps + float32 scales)")
    print(f"key: {result.key}")
    return 0
