"""The teacher out of the student's step: its logits for every clean view of every training image, in one table.

A student's crop (zero padding ``p``: offsets ``0..2p`` down and across) and flip come from a finite
set of ``V = (2p+1)^2 x 2`` views (162 at ``p = 4``), so the teacher's logits for every clean view of
every training image fit in one table ``(N_train, V, classes)``. :class:`TeacherTable` fills it in
large batches of one inference pass (BatchNorm folded into the convolutions, :func:`fold_batchnorm`;
bf16 autocast on CUDA, the teacher's own dtype elsewhere), only for the entries a run asks for
(:meth:`TeacherTable.ensure`: the whole table is 8.1 M inferences at paper scale, an H200's minute,
never a CPU's), and keeps it on disk per teacher (atomic, verified by SHA-256, keyed by the teacher's
weights, the images, the padding, the dtype and the arithmetic). Values are stored in the dtype the
teacher's output has (bf16 under CUDA autocast: exactly the values the online teacher gives; 50,000 x
162 x 10 is 162 MB there, 324 MB in float32).

:func:`epoch_targets` gives every teacher-signal option its targets for one epoch from that table:
``online`` and ``online_clean`` read the view the student's crop and flip chose (``online``'s
overlaid images are computed ahead of the epoch, in large batches, from the epoch's known draws),
``cached`` the centre view (no crop, no flip), ``official`` the official code's one augmented view of
another image (:mod:`igkd_lib.training.faults`). The numbers equal the online teacher's up to float rounding
(tests/test_teacher_table.py).
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from igkd_lib.data.augment import draw_crops, draws_batch
from igkd_lib.storage import (
    atomic_torch_save,
    model_sha256,
    move_aside,
    read_checked_json,
    sha256_file,
    stable_hash,
    write_checked_json,
)
from igkd_lib.training.faults import PRECOMPUTE_SEED, loader_order
from igkd_lib.training.loop import autocast, prepare_model

__all__ = ["view_count", "view_index", "view_draws", "centre_view", "fold_batchnorm", "TeacherTable",
           "epoch_targets", "overlay_fn", "TABLE_FORMAT"]

TABLE_FORMAT = 1  # bump when the table's layout or meaning changes (it is in the cache key)


def view_count(padding: int) -> int:
    """The clean views of an image: ``(2 * padding + 1) ** 2`` crops x 2 flips."""
    return (2 * padding + 1) ** 2 * 2


def view_index(offset_y: torch.Tensor, offset_x: torch.Tensor, flipped: torch.Tensor, padding: int) -> torch.Tensor:
    """The view of each crop and flip, int64: ``(offset_y * (2p+1) + offset_x) * 2 + flipped``."""
    return (offset_y * (2 * padding + 1) + offset_x) * 2 + flipped.long()


def view_draws(views: torch.Tensor, padding: int) -> dict:
    """The crop and flip of each view (the inverse of :func:`view_index`): offset_y, offset_x, flipped."""
    side = 2 * padding + 1
    crop = views // 2
    return {"offset_y": crop // side, "offset_x": crop % side, "flipped": views % 2 == 1}


def centre_view(padding: int) -> int:
    """The view that is the image itself (no crop, no flip): the ``cached`` option's."""
    return int(view_index(torch.tensor(padding), torch.tensor(padding), torch.tensor(False), padding))


def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """``conv`` followed by ``norm`` in eval mode as one convolution (computed in float64)."""
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    folded = folded.to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        folded.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
        folded.bias.copy_((bias - norm.running_mean.double()) * scale + norm.bias.double())
    return folded


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every BatchNorm2d that directly follows a Conv2d (in the same
    container) folded into it; the same function up to float rounding, half the inference's memory traffic."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = module._modules[first], module._modules[second]
            if (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and norm.affine
                    and norm.track_running_stats):
                module._modules[first], module._modules[second] = _fold(conv, norm), nn.Identity()
    return model


class TeacherTable:
    """The teacher's logits (N, V, classes) for every clean view of ``images_uint8`` (N, 3, H, W) on ``device``.

    ``ensure(rows, views)`` computes the entries not there yet (one batched pass of ``batch_size``);
    ``lookup(rows, views)`` reads them. ``cache_dir``: the table is loaded from and saved to
    ``<cache_dir>/teacher_tables/<key>.pt`` (:meth:`save`), verified by its SHA-256.
    """

    def __init__(self, teacher: nn.Module, images_uint8: torch.Tensor, padding: int, device: torch.device,
                 batch_size: int, cache_dir: str | Path | None = None):
        self.device, self.padding, self.batch_size = device, padding, batch_size
        self.images = images_uint8.to(device)
        self.teacher = fold_batchnorm(prepare_model(teacher, device))
        self.dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # what .float() of autocast gives
        self.views = view_count(padding)
        self.inferences = 0  # teacher images computed by this object (the table's and the overlays')
        self.key = stable_hash({"teacher": model_sha256(teacher), "images": _images_sha256(images_uint8),
                                "padding": padding, "dtype": str(self.dtype), "device_type": device.type,
                                "folded": True, "format": TABLE_FORMAT}, length=24)
        self.path = None if cache_dir is None else Path(cache_dir) / "teacher_tables" / f"{self.key}.pt"
        self.values, self.filled = self._load()
        self._saved_count = int(self.filled.sum())

    def _load(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.images)
        values = torch.zeros(n, self.views, 0, dtype=self.dtype, device=self.device)
        filled = torch.zeros(n, self.views, dtype=torch.bool, device=self.device)
        if self.path is None or not self.path.is_file():
            return values, filled
        check = read_checked_json(self.path.with_suffix(".json"))
        if check is None or check.get("file_sha256") != sha256_file(self.path):
            move_aside(self.path, "its SHA-256 does not match its record")
            return values, filled
        state = torch.load(self.path, map_location=self.device, weights_only=True)
        return state["values"].to(self.dtype), state["filled"]

    @property
    def filled_fraction(self) -> float:
        return float(self.filled.float().mean())

    @torch.inference_mode()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The (folded) teacher's logits of float images ``x`` in the table's dtype, in large batches."""
        out = []
        for start in range(0, len(x), self.batch_size):
            with autocast(self.device):
                chunk = self.teacher(x[start:start + self.batch_size].contiguous(memory_format=torch.channels_last))
            out.append(chunk.to(self.dtype))
        self.inferences += len(x)
        return torch.cat(out) if out else torch.zeros(0, 0, dtype=self.dtype, device=self.device)

    def ensure(self, rows: torch.Tensor, views: torch.Tensor) -> int:
        """Compute the entries (rows[i], views[i]) not in the table yet; returns how many were computed."""
        flat = torch.unique(rows.reshape(-1).to(self.device) * self.views + views.reshape(-1).to(self.device))
        missing = flat[~self.filled.view(-1)[flat]]  # one host read (the missing count)
        for start in range(0, len(missing), self.batch_size * 8):
            chunk = missing[start:start + self.batch_size * 8]
            chunk_rows, chunk_views = chunk // self.views, chunk % self.views
            x = draws_batch(self.images[chunk_rows], None, view_draws(chunk_views, self.padding),
                            padding=self.padding, p=0.0, blend=0.0)
            out = self.logits(x)
            if self.values.shape[-1] == 0:
                self.values = torch.zeros(len(self.images), self.views, out.shape[-1], dtype=self.dtype,
                                          device=self.device)
            self.values[chunk_rows, chunk_views] = out
            self.filled[chunk_rows, chunk_views] = True
        return len(missing)

    def lookup(self, rows: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """The entries (rows, views) -> (..., classes); every one must have been ensured."""
        return self.values[rows, views]

    def save(self) -> bool:
        """Write the table (atomically, with its SHA-256) if it gained entries since it was loaded or saved."""
        count = int(self.filled.sum())
        if self.path is None or count == self._saved_count:
            return False
        atomic_torch_save(self.path, {"values": self.values.cpu(), "filled": self.filled.cpu(), "key": self.key})
        write_checked_json(self.path.with_suffix(".json"), {"file_sha256": sha256_file(self.path), "entries": count})
        self._saved_count = count
        return True


def _images_sha256(images_uint8: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(images_uint8.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _official_views(n: int, config) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, views)`` (n,) of the official code's teacher table, by training row: row i holds the
    logits of the one augmented view of row ``loader_order(n)[i]``
    (:func:`igkd_lib.training.faults.official_teacher_logits`)."""
    crops = draw_crops(n, config.crop_padding, config.flip, torch.Generator().manual_seed(PRECOMPUTE_SEED))
    views = view_index(crops["offset_y"], crops["offset_x"], crops["flipped"], config.crop_padding)
    order = loader_order(n)
    return order, views[order]


def epoch_targets(table: TeacherTable, configs, draws: dict, overlay) -> torch.Tensor:
    """Every member's teacher targets of one epoch, (members, n, classes) in the epoch's positions.

    ``draws``: the members' epoch draws (members, n) per key (:func:`igkd_lib.data.augment.epoch_draws`),
    on the table's device. ``overlay(member, positions)`` gives the student's overlaid input of those
    epoch positions of that member (only called for ``online`` members with an overlay, on the
    positions whose ``overlay_u < p``). Members without KD get zeros.
    """
    from igkd_lib.training.student import uses_maps

    n_members, n = draws["order"].shape
    padding = table.padding
    rows, views, kd = [], [], []
    for i, config in enumerate(configs):
        if config.alpha == 0:
            continue
        order = draws["order"][i]
        if config.teacher_logits == "cached":
            member_rows, member_views = order, torch.full_like(order, centre_view(padding))
        elif config.teacher_logits == "official":
            official_rows, official_views = (t.to(table.device) for t in _official_views(len(table.images), config))
            member_rows, member_views = official_rows[order], official_views[order]
        else:  # online, online_clean: the view the student's crop and flip chose
            member_rows = order
            member_views = view_index(draws["offset_y"][i], draws["offset_x"][i], draws["flipped"][i], padding)
        rows.append(member_rows)
        views.append(member_views)
        kd.append(i)
    if not kd:
        return torch.zeros(n_members, n, 10, dtype=table.dtype, device=table.device)
    table.ensure(torch.stack(rows), torch.stack(views))
    found = table.lookup(torch.stack(rows), torch.stack(views))
    targets = torch.zeros(n_members, n, found.shape[-1], dtype=table.dtype, device=table.device)
    targets[kd] = found
    for i in kd:
        config = configs[i]
        if config.teacher_logits == "online" and uses_maps(config):
            positions = torch.nonzero(draws["overlay_u"][i] < config.p).view(-1)
            if len(positions):
                targets[i, positions] = _overlaid_logits(table, overlay, i, positions)
    return targets


def overlay_fn(images: torch.Tensor, maps: torch.Tensor | None, sources: torch.Tensor | None, draws: dict,
               configs):
    """``overlay(member, positions)`` for :func:`epoch_targets`: the student's overlaid input of those epoch
    positions, exactly as its step builds it (:func:`igkd_lib.data.augment.draws_batch`). ``sources`` (members,
    N_train): the training row whose map each row uses (:func:`igkd_lib.training.student.map_source_rows`)."""
    def overlay(member: int, positions: torch.Tensor) -> torch.Tensor:
        config = configs[member]
        rows = draws["order"][member, positions]
        step = {key: value[member, positions] for key, value in draws.items() if key != "order"}
        return draws_batch(images[rows], maps[sources[member, rows]], step, padding=config.crop_padding,
                           p=config.p, blend=config.blend, aligned=config.map_alignment == "aligned")

    return overlay


def _overlaid_logits(table: TeacherTable, overlay, member: int, positions: torch.Tensor) -> torch.Tensor:
    chunk = table.batch_size * 8
    return torch.cat([table.logits(overlay(member, positions[start:start + chunk]))
                      for start in range(0, len(positions), chunk)])
