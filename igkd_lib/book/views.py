"""Interactive views: the overlay explorer with sliders for p and the blend ratio w.

The explorer shows a fixed set of training images with their IG maps and two real
``<input type=range>`` sliders. Everything the reader sees is one self-contained block of HTML
and JavaScript (data embedded as base64, blending done in the browser on canvases, nothing loaded
from the network), so the same output works live in Jupyter/Colab and in the static book with no
kernel. Explained in the overlay chapter of the book.

The overlay shown is the paper's: image i is overlaid iff its fixed draw ``u_i < p``; the overlaid
image is ``(1 - w) * x + w * norm(map_i ** s_i)`` with ``s_i = exp(U(ln 1, ln 2))`` drawn once and
``norm`` the per-map min-max to [0, 1]. For display, ``norm(map ** s)`` is quantised to 8 bits.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from igkd_lib.data.augment import draw_exponents, normalise_maps
from igkd_lib.validators import check_number

__all__ = ["OverlayExplorer", "overlay_explorer", "overlay_explorer_for", "measured_results", "PAPER_P", "PAPER_BLEND"]

PAPER_P = 0.1
PAPER_BLEND = 0.5
_ACCURACY_COLUMNS = ("accuracy", "final_acc", "mean_accuracy", "final_accuracy", "test_accuracy")
_MAX_IMAGES = 64
_FIXED_KNOBS = ("temperature", "alpha", "map_alignment", "shuffle_maps", "teacher_logits")


@dataclass(frozen=True, repr=False)
class OverlayExplorer:
    """A self-contained slider view; display it in a notebook or :meth:`save` it as a page.

    ``images`` uint8 (N, 3, H, W); ``maps`` uint8 (N, H, W) = round(255 * norm(map ** s));
    ``exponents`` s (N,); ``draws`` u (N,); ``results`` rows {p, blend, accuracy (%), runs, profile, source}.
    """

    images: np.ndarray
    maps: np.ndarray
    exponents: np.ndarray
    draws: np.ndarray
    p: float = PAPER_P
    blend: float = PAPER_BLEND
    results: tuple = ()
    provenance: str = ""
    titles: tuple = ()
    element_id: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256()
        for array in (self.images, self.maps, self.exponents, self.draws):
            digest.update(str(array.shape).encode() + np.ascontiguousarray(array).tobytes())
        digest.update(json.dumps([self.p, self.blend, list(self.results), list(self.titles)]).encode())
        object.__setattr__(self, "element_id", "igkd-overlay-" + digest.hexdigest()[:12])

    def __repr__(self) -> str:
        return (f"OverlayExplorer({len(self.images)} images, p={self.p}, blend={self.blend}, "
                f"results={len(self.results)}, id={self.element_id})")

    def overlaid(self, p: float | None = None) -> np.ndarray:
        """Boolean (N,): which images are overlaid at ``p`` (default: the view's p)."""
        return self.draws < (self.p if p is None else check_number("p", p, 0, 1))

    def blended(self, p: float | None = None, blend: float | None = None) -> np.ndarray:
        """uint8 (N, 3, H, W): exactly what the browser draws at ``p`` and ``blend``."""
        w = self.blend if blend is None else check_number("blend", blend, 0, 1)
        mixed = np.floor((1 - w) * self.images.astype(np.float64) + w * self.maps[:, None].astype(np.float64) + 0.5)
        on = self.overlaid(p)[:, None, None, None]
        return np.where(on, mixed, self.images).astype(np.uint8)

    def html(self) -> str:
        """The view as one HTML fragment (style, markup, data and script; no external request)."""
        return _render(self)

    def _repr_html_(self) -> str:
        return self.html()

    def save(self, path: str | Path, title: str = "Overlay explorer") -> Path:
        """Write a standalone HTML page holding the view; returns the path."""
        from igkd_lib.storage import atomic_path

        page = (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
                f"</title></head>\n<body>\n{self.html()}\n</body></html>\n")
        with atomic_path(path) as tmp:
            Path(tmp).write_text(page, encoding="utf-8")
        return Path(path)


# --------------------------------------------------------------------------- public constructors
def overlay_explorer(images: Any, maps: Any, *, exponents: Any = None, draws: Any = None, seed: int = 0,
                     results: Any = None, provenance: str = "", p: float = PAPER_P, blend: float = PAPER_BLEND,
                     titles: Sequence[str] | None = None,
                     exponent_range: tuple[float, float] = (1.0, 2.0)) -> OverlayExplorer:
    """The slider view for ``images`` uint8 or float in [0, 1] (N, 3, H, W) and ``maps`` >= 0 (N, H, W).

    ``exponents`` s (N,) and ``draws`` u (N,) in [0, 1) are drawn once from ``seed`` unless given
    (s = exp(U(ln lo, ln hi)) with ``exponent_range`` = (lo, hi)). ``results``: a DataFrame with
    columns p, blend, an accuracy column (accuracy, mean_accuracy, final_accuracy or test_accuracy;
    fractions are shown as %) and optionally profile, source and run_key; the distinct runs (by run_key)
    of one setting are averaged, and rows keep the order in which their source first appears.
    ``p``, ``blend``: the sliders' starting values.
    """
    x = _check_images(images)
    n, _, height, width = x.shape
    m = _check_maps(maps, n, height, width)
    s_drawn, u_drawn = _draw(n, seed, exponent_range)
    s = s_drawn if exponents is None else _check_vector("exponents", exponents, n, low=0.0, low_open=True)
    u = u_drawn if draws is None else _check_vector("draws", draws, n, low=0.0, high=1.0)
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles has {len(titles)} entries; allowed: one per image ({n})")
    return OverlayExplorer(images=x, maps=_normalised_power(m, s), exponents=s, draws=u,
                           p=check_number("p", p, 0, 1), blend=check_number("blend", blend, 0, 1),
                           results=_summarise_results(results), provenance=str(provenance),
                           titles=tuple(str(t) for t in titles) if titles is not None else ())


def overlay_explorer_for(config, n: int = 16, results: Any = None, maps: Any = None) -> OverlayExplorer:
    """The explorer on ``n`` fixed training images of ``config``'s subset (first of each class in turn).

    ``maps`` (optional): the subset's maps, row i = subset image i, or the full split's maps, row
    i = dataset image i; by default :func:`igkd_lib.attribution.maps.get_maps` computes (or reads from its cache)
    the maps of the ``n`` images shown only, never the whole split's (50,000 IG maps on the paper profile).
    """
    from igkd_lib.data.cifar10 import CLASSES, load_splits
    from igkd_lib.book.notebook import caption

    if not 1 <= int(n) <= _MAX_IMAGES:
        raise ValueError(f"n={n} is not allowed; allowed: 1 to {_MAX_IMAGES}")
    train, _ = load_splits(config)
    positions = _first_of_each_class(train.labels.numpy(), int(n))
    if maps is None:
        from igkd_lib.attribution.maps import get_maps  # written beside this module; imported late on purpose

        rows = get_maps(config, train=train.subset(torch.as_tensor(positions)), progress=False).maps.numpy()
    else:
        rows = _select_map_rows(maps, positions, train.indices.numpy())
    titles = [f"#{int(train.indices[i])} {CLASSES[int(train.labels[i])]}" for i in positions]
    return overlay_explorer(train.images[positions].numpy(), rows, seed=config.subset_seed, results=results,
                            provenance=caption(config, train.source_label, "Overlay explorer"),
                            p=config.p, blend=config.blend, titles=titles,
                            exponent_range=(config.exponent_low, config.exponent_high))


# --------------------------------------------------------------------------- private helpers
def _as_array(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} could not be read as an array ({error}); allowed: a numpy array or tensor") from None


def _check_images(images: Any) -> np.ndarray:
    x = _as_array(images, "images")
    if x.ndim != 4 or x.shape[1] != 3 or not 1 <= x.shape[0] <= _MAX_IMAGES:
        raise ValueError(f"images has shape {x.shape}; allowed: (N, 3, H, W) with 1 <= N <= {_MAX_IMAGES}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError(f"images of dtype {x.dtype} are not allowed; allowed: uint8, or float in [0, 1]")
    return np.floor(x.astype(np.float64) * 255 + 0.5).astype(np.uint8)


def _check_maps(maps: Any, n: int, height: int, width: int) -> np.ndarray:
    m = _as_array(maps, "maps")
    if m.shape != (n, height, width):
        raise ValueError(f"maps has shape {m.shape}; allowed: ({n}, {height}, {width}), one map per image")
    if not np.issubdtype(m.dtype, np.number) or not np.isfinite(m).all() or (m < 0).any():
        raise ValueError("maps must be finite and non-negative (e.g. |IG| summed over colour channels)")
    return m.astype(np.float64)


def _check_vector(name: str, value: Any, n: int, low: float, high: float | None = None,
                  low_open: bool = False) -> np.ndarray:
    v = _as_array(value, name).astype(np.float64).reshape(-1)
    bad_low = (v <= low).any() if low_open else (v < low).any()
    if v.shape != (n,) or not np.isfinite(v).all() or bad_low or (high is not None and (v >= high).any()):
        allowed = f"({low}, inf)" if low_open else f"[{low}, {high})"
        raise ValueError(f"{name} must hold {n} finite values in {allowed}; got shape {v.shape}")
    return v




def _draw(n: int, seed: int, exponent_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(s, u): the draws of one :func:`igkd_lib.data.augment.overlay` call on a CPU generator seeded ``seed``."""
    low, high = (float(v) for v in exponent_range)
    if not 0 < low <= high:
        raise ValueError(f"exponent_range={exponent_range!r} is not allowed; allowed: 0 < low <= high")
    generator = torch.Generator().manual_seed(int(seed))
    draws = torch.rand(n, generator=generator)  # same order as augment.overlay: mask draws, then exponents
    exponents = draw_exponents(n, low, high, generator)
    return exponents.double().numpy(), draws.double().numpy()


def _normalised_power(maps: np.ndarray, exponents: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W): round(255 * norm(maps ** s)), norm as in training (a constant map gives 0)."""
    unit = normalise_maps(torch.from_numpy(maps)[:, None].double(), torch.from_numpy(exponents))[:, 0]
    return np.floor(unit.double().numpy() * 255 + 0.5).astype(np.uint8)


def _summarise_results(results: Any) -> tuple:
    if results is None:
        return ()
    columns = list(getattr(results, "columns", []))
    found = [c for c in _ACCURACY_COLUMNS if c in columns]
    if not {"p", "blend"} <= set(columns) or not found:
        raise ValueError(f"results has columns {columns}; allowed: a DataFrame with p, blend and one of "
                         f"{', '.join(_ACCURACY_COLUMNS)} (and optionally profile)")
    source = results["source"] if "source" in columns else pd.Series("", index=results.index)
    frame = results.assign(profile=results["profile"] if "profile" in columns else "unknown", source=source,
                           _rank=source.map({s: i for i, s in enumerate(dict.fromkeys(source))}))
    if "run_key" in columns:  # two sweeps share their default run: count it once
        keyed = frame["run_key"].notna()
        frame = pd.concat([frame[keyed].drop_duplicates("run_key"), frame[~keyed]])
    accuracy = frame[found[0]].astype(float)
    frame = frame.assign(_acc=accuracy * (100.0 if accuracy.max() <= 1.0 else 1.0))
    grouped = frame.groupby(["_rank", "source", "p", "blend", "profile"], sort=True)["_acc"].agg(["mean", "count"])
    return tuple({"p": float(p), "blend": float(w), "accuracy": round(float(r["mean"]), 4), "runs": int(r["count"]),
                  "profile": str(profile), "source": str(source)}
                 for (_, source, p, w, profile), r in grouped.iterrows())


def measured_results(config, folder: Path | None = None):
    """The finished KD + IG runs the explorer can show, never training: the committed paper-profile runs
    (``results/paper/runs.csv``, when present; only rows at the paper's other settings) first, then
    ``config``'s profile's runs of chapter 5's p and blend sweeps found in the run cache. None when
    there are none."""
    from igkd_lib.evidence.experiments import overlay_results
    from igkd_lib.evidence.reference import committed_results

    frames = []
    committed = committed_results("paper", folder)
    if len(committed) and {"p", "blend", "final_acc"} <= set(committed.columns):
        frames.append(_at_paper_settings(committed).assign(profile="paper", source="committed"))
    if not any(len(f) and (f["profile"] == config.profile).all() for f in frames):  # not already the committed
        cached = overlay_results(config)
        if len(cached):
            frames.append(cached.assign(source="this build"))
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def _at_paper_settings(runs):
    """KD + IG rows whose knobs other than p and the blend are the paper profile's."""
    from igkd_lib.config import make_config

    paper = make_config("paper")
    keep = runs["method"] == "kd_ig" if "method" in runs else pd.Series(True, index=runs.index)
    for knob in _FIXED_KNOBS:
        if knob in runs:
            keep &= runs[knob].astype(str).str.lower() == str(getattr(paper, knob)).lower()
    return runs[keep]


def _first_of_each_class(labels: np.ndarray, n: int) -> np.ndarray:
    """Positions: the first image of each class, then the second of each, ... (n in all)."""
    rank = np.zeros(len(labels), dtype=np.int64)
    seen: dict[int, int] = {}
    for i, label in enumerate(labels.tolist()):
        rank[i] = seen.get(label, 0)
        seen[label] = rank[i] + 1
    order = np.lexsort((labels, rank))  # by rank, then class
    if n > len(order):
        raise ValueError(f"n={n} is not allowed; allowed: at most the subset's {len(order)} images")
    return order[:n]


def _select_map_rows(maps: Any, positions: np.ndarray, dataset_indices: np.ndarray) -> np.ndarray:
    m = _as_array(getattr(maps, "maps", maps), "maps")
    if len(m) == len(dataset_indices):
        return m[positions]
    if len(m) > int(dataset_indices.max()):
        return m[dataset_indices[positions]]
    raise ValueError(f"maps has {len(m)} rows; allowed: one per subset image ({len(dataset_indices)}) "
                     f"or one per dataset image")


def _template() -> str:
    return resources.files(__package__).joinpath("views_template.html").read_text(encoding="utf-8")


def _figure(view: OverlayExplorer, i: int) -> str:
    title = html.escape(view.titles[i]) if view.titles else f"image {i}"
    return (f'<figure data-index="{i}"><canvas width="{view.images.shape[3]}" height="{view.images.shape[2]}" '
            f'role="img" aria-label="{title}"></canvas><figcaption>{title}<br>s = {view.exponents[i]:.2f}<br>'
            f'u = {view.draws[i]:.3f}<br><span class="igkd-state"></span></figcaption></figure>')


def _render(view: OverlayExplorer) -> str:
    n, _, height, width = view.images.shape
    data = {"n": n, "height": height, "width": width, "paper_p": PAPER_P, "paper_blend": PAPER_BLEND,
            "draws": [float(u) for u in view.draws], "exponents": [float(s) for s in view.exponents],
            "results": list(view.results), "images": base64.b64encode(view.images.tobytes()).decode(),
            "maps": base64.b64encode(np.ascontiguousarray(view.maps).tobytes()).decode()}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    fills = {"FIGURES": "\n".join(_figure(view, i) for i in range(n)), "DATA": payload,
             "PROVENANCE": html.escape(view.provenance), "PAPER_P": f"{PAPER_P:g}",
             "PAPER_W": f"{PAPER_BLEND:g}", "P": f"{view.p:.2f}", "W": f"{view.blend:.2f}",
             "N": str(n), "ID": view.element_id}
    return re.sub(r"__([A-Z_]+?)__", lambda match: fills[match.group(1)], _template())
