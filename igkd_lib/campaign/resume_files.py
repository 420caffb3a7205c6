"""An unfinished teacher's resume files: written compactly, read only as tensors and plain data, verified.

A window whose budget ends before the paper teacher's last epoch returns its checkpoint as two files
(:data:`RESUME_FILES`: weights, epoch, log and recipe; the optimiser's state). Ingest checks them and
commits them under ``results/<profile>/teacher_resume/`` with :data:`RESUME_JSON` (their SHA-256,
the window, the epochs done), so they travel with the checkout to whichever machine runs the next window.

- Loaded only with ``torch.load(weights_only=True)``: nothing in them can run code.
- Checked against the model this checkout builds (every weight's name, shape and dtype; one momentum
  buffer of the right shape per parameter; SGD's settings) and, where given, against the recipe and data
  of the run that resumes them (:func:`read_resume`).
- Stored losslessly compressed (each tensor's bytes regrouped by significance, then zlib): the two files
  of the paper teacher take ~15.6 MB instead of 18.2 MB, which keeps the checkout that travels to the
  device (code, book, results, these files and the 35 MB packed CIFAR-10) under its 64 MiB.
"""
from __future__ import annotations

import hashlib
import io
import math
import zlib
from pathlib import Path

import torch

from igkd_lib.storage import atomic_path, atomic_write_json, read_json, sha256_file

RESUME_DIR = "teacher_resume"  # under results/<profile>/: an unfinished teacher's committed resume files

__all__ = ["RESUME_DIR", "RESUME_FILES", "RESUME_JSON", "FILE_LIMIT", "pack", "unpack", "load_part", "check_state",
           "encode_parts", "write_parts", "resume_record", "commit_resume", "read_resume", "committed_hashes"]

RESUME_FILES = ("teacher_resume_model.pt", "teacher_resume_optim.pt")
RESUME_JSON = "resume.json"
FILE_LIMIT = 16 * 2**20  # bytes: what one returned file may hold, and the most a resume file may be
_FORMAT = "igkd-packed-tensors-1"
_MARK = "__tensor__"
_DTYPES = {str(d).removeprefix("torch."): d for d in (torch.float32, torch.float16, torch.bfloat16, torch.float64,
                                                        torch.int64, torch.int32, torch.int16, torch.int8,
                                                        torch.uint8, torch.bool)}
_SGD_KEYS = {"lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize", "foreach", "differentiable",
             "fused", "params", "initial_lr"}


# --------------------------------------------------------------------------- the compact, pickle-free format
def pack(obj) -> dict:
    """``obj`` (tensors inside dicts, lists and tuples of plain data) as tensors' table + one compressed blob."""
    tensors: list = []

    def walk(value):
        if isinstance(value, torch.Tensor):
            tensors.append(value.detach().cpu().contiguous())
            return (_MARK, len(tensors) - 1)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(walk(v) for v in value)
        return value

    plain = walk(obj)
    planes = [t.reshape(-1).view(torch.uint8).view(-1, t.element_size()).t().contiguous().numpy().tobytes()
              for t in tensors]
    data = zlib.compress(b"".join(planes), 9)
    return {"format": _FORMAT, "plain": plain, "data": torch.frombuffer(bytearray(data), dtype=torch.uint8),
            "tensors": [(str(t.dtype).removeprefix("torch."), list(t.shape)) for t in tensors]}


def unpack(packed: dict, where: str, limit: int = 4 * FILE_LIMIT):
    """The object :func:`pack` packed; a table or blob that does not add up is an error naming ``where``."""
    table = packed.get("tensors")
    if not isinstance(table, list) or not isinstance(packed.get("data"), torch.Tensor):
        raise ValueError(f"{where} is not a packed resume file (no tensor table); allowed: the files a window wrote")
    sizes = []
    for entry in table:
        if not (isinstance(entry, tuple) and len(entry) == 2 and entry[0] in _DTYPES and isinstance(entry[1], list)
                and all(isinstance(n, int) and 0 <= n < 2**31 for n in entry[1])):
            raise ValueError(f"{where}: tensor entry {entry!r} is not allowed; allowed: (dtype, shape)")
        sizes.append(math.prod(entry[1]) * _DTYPES[entry[0]].itemsize)
    if sum(sizes) > limit:
        raise ValueError(f"{where} declares {sum(sizes) / 2**20:.1f} MiB of tensors; allowed: at most "
                         f"{limit / 2**20:.0f} MiB")
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(packed["data"].numpy().tobytes(), sum(sizes) + 1)
    except zlib.error as error:
        raise ValueError(f"{where}: its data does not decompress ({error})") from None
    if len(raw) != sum(sizes) or inflater.unconsumed_tail:
        raise ValueError(f"{where}: its data holds {len(raw)} bytes, its table {sum(sizes)}")
    tensors, start = [], 0
    for (dtype, shape), size in zip(table, sizes):
        width = _DTYPES[dtype].itemsize
        planes = torch.frombuffer(bytearray(raw[start:start + size]) or bytearray(1), dtype=torch.uint8)[:size]
        flat = planes.view(width, -1).t().contiguous().reshape(-1).clone()
        tensors.append(flat.view(_DTYPES[dtype]).reshape(shape))
        start += size

    def walk(value):
        if isinstance(value, tuple) and len(value) == 2 and value[0] == _MARK:
            if not (isinstance(value[1], int) and 0 <= value[1] < len(tensors)):
                raise ValueError(f"{where}: tensor reference {value!r} is not allowed")
            return tensors[value[1]]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(walk(v) for v in value)
        return value

    return walk(packed.get("plain"))


def load_part(path: Path):
    """One resume file, loaded with ``weights_only=True``: packed (:func:`pack`) or as the first windows wrote it."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise ValueError(f"{path} is absent or not a plain file; allowed: the resume files a window wrote")
    if path.stat().st_size > FILE_LIMIT:
        raise ValueError(f"{path} holds {path.stat().st_size / 2**20:.1f} MiB; allowed: at most "
                         f"{FILE_LIMIT / 2**20:.0f} MiB")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError for anything beyond tensors and plain data, or a torn file
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ValueError(f"{path} does not load as tensors and plain data ({type(error).__name__}: {first[:200]}); "
                         "allowed: the resume files a window wrote") from None
    if isinstance(loaded, dict) and loaded.get("format") == _FORMAT:
        return unpack(loaded, str(path))
    return loaded


# --------------------------------------------------------------------------- what the state must be
def _fail(where: str, what: str) -> ValueError:
    return ValueError(f"{where}: {what}; allowed: a checkpoint of this checkout's teacher (igkd_lib.models.teacher)")


def check_state(state, where: str, expected_meta: dict | None = None) -> int:
    """Check a joined checkpoint against the teacher this checkout builds; returns the epochs it holds."""
    from igkd_lib import models

    if not isinstance(state, dict) or not {"model", "optimizer", "epoch", "log", "meta"} <= set(state):
        raise _fail(where, "it lacks model, optimizer, epoch, log or meta")
    model = models.teacher()
    expected = model.state_dict()
    weights = state["model"]
    if not isinstance(weights, dict) or list(weights) != list(expected):
        raise _fail(where, "its weights' names differ from the teacher's")
    for name, tensor in weights.items():
        if not isinstance(tensor, torch.Tensor) or tensor.shape != expected[name].shape or \
                tensor.dtype != expected[name].dtype:
            raise _fail(where, f"weight {name} is not a {expected[name].dtype} tensor of shape "
                               f"{tuple(expected[name].shape)}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise _fail(where, f"weight {name} holds inf or nan")
    epoch, log = state["epoch"], state["log"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not isinstance(log, list) or len(log) != epoch + 1:
        raise _fail(where, f"epoch={epoch!r} does not match its log of {len(log) if isinstance(log, list) else '?'}")
    for i, row in enumerate(log, start=1):
        if not (isinstance(row, dict) and row.get("epoch") == i and all(
                isinstance(row.get(k), (int, float)) and math.isfinite(row[k]) for k in ("loss", "test_acc"))):
            raise _fail(where, f"its log's row {i} is not an epoch row (epoch {i}, finite loss and test_acc)")
    if expected_meta is not None and state["meta"] != expected_meta:
        raise ValueError(f"{where} resumes another run: its recipe and data {state['meta']!r} differ from this "
                         f"window's {expected_meta!r}; allowed: resume files of the same recipe and data (delete "
                         "them to start the teacher again)")
    _check_optimizer(state["optimizer"], list(model.parameters()), where)
    return epoch + 1


def _check_optimizer(optimizer, parameters: list, where: str) -> None:
    if not isinstance(optimizer, dict) or set(optimizer) != {"state", "param_groups"}:
        raise _fail(where, "its optimiser state is not SGD's (state, param_groups)")
    groups = optimizer["param_groups"]
    if not (isinstance(groups, list) and len(groups) == 1 and isinstance(groups[0], dict)
            and set(groups[0]) <= _SGD_KEYS and groups[0].get("params") == list(range(len(parameters)))):
        raise _fail(where, "its optimiser's parameter group is not SGD's over the teacher's parameters")
    for key in ("lr", "momentum", "weight_decay", "dampening"):
        value = groups[0].get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _fail(where, f"its optimiser's {key}={value!r} is not a finite number")
    per_param = optimizer["state"]
    if not isinstance(per_param, dict) or not set(per_param) <= set(range(len(parameters))):
        raise _fail(where, "its optimiser state names parameters the teacher does not have")
    for index, entry in per_param.items():
        buffer = entry.get("momentum_buffer") if isinstance(entry, dict) else None
        if set(entry if isinstance(entry, dict) else ()) != {"momentum_buffer"} or not isinstance(
                buffer, torch.Tensor) or buffer.shape != parameters[index].shape or buffer.dtype != torch.float32:
            raise _fail(where, f"the momentum of parameter {index} is not a float32 tensor of shape "
                               f"{tuple(parameters[index].shape)}")


# --------------------------------------------------------------------------- writing and reading a folder
def encode_parts(state: dict) -> dict:
    """``state`` (a teacher checkpoint) as the bytes of the two packed files, by name."""
    parts = (pack({k: v for k, v in state.items() if k != "optimizer"}), pack({"optimizer": state["optimizer"]}))
    encoded = {}
    for name, part in zip(RESUME_FILES, parts):
        buffer = io.BytesIO()
        torch.save(part, buffer)
        encoded[name] = buffer.getvalue()
    return encoded


def write_parts(folder: Path, state: dict) -> dict:
    """Write ``state`` (a teacher checkpoint) as the two packed files in ``folder``; their SHA-256 by name."""
    folder = Path(folder)
    for name, data in encode_parts(state).items():
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(data)
    return {name: sha256_file(folder / name) for name in RESUME_FILES}


def resume_record(encoded: dict, state: dict, window: str) -> dict:
    """:data:`RESUME_JSON`'s content for the ``encoded`` files of ``state``: hashes, window, epochs done."""
    return {"sha256": {name: hashlib.sha256(data).hexdigest() for name, data in encoded.items()}, "window": window,
            "epochs_done": len(state["log"]), "test_acc_last": state["log"][-1]["test_acc"], "format": _FORMAT,
            "loads_with": "torch.load(weights_only=True), then igkd_lib.campaign.resume_files.unpack"}


def commit_resume(folder: Path, state: dict, window: str) -> dict:
    """The committed form: the two files plus :data:`RESUME_JSON` (hashes, window, epochs done); its content."""
    encoded = encode_parts(state)
    for name, data in encoded.items():
        with atomic_path(Path(folder) / name) as tmp:
            tmp.write_bytes(data)
    record = resume_record(encoded, state, window)
    atomic_write_json(Path(folder) / RESUME_JSON, record)
    return record


def committed_hashes(folder: Path) -> dict | None:
    """The SHA-256 by name from ``folder``'s :data:`RESUME_JSON`; None when the folder holds no resume files.

    Resume files without the record, or a record that does not parse, are an error (never loaded unchecked).
    """
    folder = Path(folder)
    present = [name for name in RESUME_FILES if (folder / name).exists()]
    record = folder / RESUME_JSON
    if not present and not record.exists():
        return None
    try:
        if record.stat().st_size > 2**20:
            raise ValueError("larger than 1 MiB")
        hashes = read_json(record)["sha256"]
        if not (isinstance(hashes, dict) and set(hashes) == set(RESUME_FILES)):
            raise ValueError("its sha256 does not name both resume files")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{record} is absent or damaged ({type(error).__name__}: {error}) beside resume files "
                         f"{present}; allowed: the folder ingest committed (restore it, or delete the folder to "
                         "start the teacher again)") from None
    return hashes


def read_resume(folder: Path, sha256: dict | None, expected_meta: dict | None = None) -> dict:
    """The checkpoint in ``folder``'s two files after checking each SHA-256 against ``sha256`` (required),
    loading them as tensors and plain data, and checking them (:func:`check_state`)."""
    folder = Path(folder)
    if not isinstance(sha256, dict):
        raise ValueError(f"resume files in {folder} come without their SHA-256 ({RESUME_JSON} or window.json); "
                         "allowed: resume files with their recorded hashes (they are never loaded unchecked)")
    for name in RESUME_FILES:
        path = folder / name
        if path.is_symlink() or not path.is_file():
            raise ValueError(f"resume file {path} is absent or not a plain file; allowed: both {RESUME_FILES}")
        if path.stat().st_size > FILE_LIMIT or sha256_file(path) != sha256.get(name):
            raise ValueError(f"resume file {path} does not match its recorded SHA-256 {sha256.get(name)!r}; allowed: "
                             "the files a window returned (delete the folder to restart the teacher)")
    state = load_part(folder / RESUME_FILES[0])
    optimizer = load_part(folder / RESUME_FILES[1])
    if not isinstance(state, dict) or not isinstance(optimizer, dict) or "optimizer" not in optimizer:
        raise ValueError(f"resume files in {folder} are not a teacher checkpoint's two parts")
    state = {**state, "optimizer": optimizer["optimizer"]}
    check_state(state, f"resume files in {folder}", expected_meta)
    return state
