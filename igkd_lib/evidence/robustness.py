"""The authors' six published students under corruption, and their IG maps against the teacher's: measured once,
committed under ``results/robustness/``.

Every student sees the same images: the whole test set clean and under each corruption family of
:mod:`igkd_lib.evidence.corruptions` at :data:`SEVERITIES` (seeded, deterministic), so every comparison can be
paired over images (:mod:`igkd_lib.evidence.robustness_tables`). Each image's predicted class per student and
version is kept (``official_students_images.npz``), so any paired statistic can be recomputed without
inference. Beside it, the agreement of each student's IG maps with the teacher's on :data:`N_PROBES`
seeded exact-pixel test images (:func:`igkd_lib.evidence.agreement.agreement_study`).

``python -m igkd_lib official --robustness`` writes the files once (``--recompute``: again); the chapter
"The authors' artifacts" and the findings page read them (:func:`load`). Predictions are cached per
corruption in ``{cache_dir}/robustness/<key>/``, so an interrupted run resumes.
"""
from __future__ import annotations

import datetime as _dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from igkd_lib.config import Config
from igkd_lib.data.cifar10 import Cifar10
from igkd_lib.evidence.committed_predictions import FOLDER, STEM
from igkd_lib.evidence.corruptions import SEVERITIES as LEVELS
from igkd_lib.evidence.corruptions import corrupt, exact_pixel_mask
from igkd_lib.storage import atomic_path, atomic_save_npy, atomic_write_json, read_json, stable_hash

__all__ = ["SEVERITIES", "N_PROBES", "SEED", "FOLDER", "STEM", "official_students", "versions", "predict_versions",
           "measure", "compute", "save", "load", "cli"]

SEVERITIES = (1, 3, 5)  # of the five of igkd_lib.evidence.corruptions.SEVERITIES: mild, middle, strongest
N_PROBES = 256  # exact-pixel test images for the agreement
SEED = 0  # the noise, the probe set and the bootstrap
_SHORT = {"Student": "Student", "KD": "KD", "IG": "IG", "KD_IG": "KD+IG"}


def official_students() -> list:
    """The six published students of the paper's architecture (not the attention-transfer files), in a fixed
    order: full training set first, then the random 80 %."""
    from igkd_lib.evidence.official import checkpoints

    found = [c for c in checkpoints() if c.loads]
    return sorted(found, key=lambda c: (c.training_set != "full", c.official_method))


def _label(checkpoint) -> str:
    return f"{_SHORT.get(checkpoint.official_method, checkpoint.official_method)} ({checkpoint.training_set})"


def versions(severities=SEVERITIES, kinds=tuple(LEVELS)) -> list[tuple[str, int, float]]:
    """``(kind, severity, level)`` of every version of the test set: clean (severity 0) first."""
    bad = [s for s in severities if s not in (1, 2, 3, 4, 5)]
    if bad or not severities:
        raise ValueError(f"severities={severities!r} is not allowed; allowed: some of 1, 2, 3, 4, 5")
    return [("clean", 0, 0.0)] + [(k, s, float(LEVELS[k][s - 1])) for k in kinds for s in severities]


def predict_versions(models: dict, data: Cifar10, config: Config, cache: Path | None, severities=SEVERITIES,
                     seed: int = SEED, progress: bool = True) -> np.ndarray:
    """Predicted classes (models, versions, images) as uint8: each version of ``data`` is made once and every
    model sees it (``torch.inference_mode``, batches of ``config.eval_batch_size``); one ``.npy`` per version
    in ``cache`` (None: no cache)."""
    from tqdm.auto import tqdm

    from igkd_lib.provenance import resolve_device
    from igkd_lib.training.loop import predict_logits, prepare_model

    device = resolve_device(config.device)
    ready = {label: prepare_model(model.eval(), device) for label, model in models.items()}
    table = versions(severities)
    out = np.zeros((len(ready), len(table), len(data)), np.uint8)
    bar = tqdm(total=len(table) * len(ready), desc="students x versions", disable=not progress)
    for v, (kind, severity, _) in enumerate(table):
        path = cache / f"pred_{kind}_{severity}.npy" if cache else None
        if path is not None and path.is_file():
            stored = np.load(path)
            if stored.shape == (len(ready), len(data)):
                out[:, v] = stored
                bar.update(len(ready))
                continue
        images = data.images if kind == "clean" else corrupt(data.images, kind, severity, seed)
        for m, model in enumerate(ready.values()):
            logits = predict_logits(model, images, config.eval_batch_size, device)
            out[m, v] = logits.argmax(1).numpy().astype(np.uint8)
            bar.update(1)
        if path is not None:
            atomic_save_npy(path, out[:, v])
    bar.close()
    return out


def measure(models: dict, info: pd.DataFrame, data: Cifar10, probes: Cifar10 | None, teacher: nn.Module | None,
            config: Config, cache: Path | None = None, severities=SEVERITIES, seed: int = SEED,
            progress: bool = True) -> dict:
    """The study's raw results: ``predictions`` (models, versions, images), ``labels``, ``indices``, ``exact``
    (bool per image), ``models`` (``info``: one row per model, ``label`` first), ``versions`` (kind,
    severity, level) and ``agreement`` (one row per model and probe image; None without ``teacher``)."""
    if list(info["label"]) != list(models):
        raise ValueError("info must list the models' labels in the order of models")
    agree = None
    if teacher is not None and probes is not None:  # first: the shorter part, cached apart
        agree = _agreement(models, info, probes, teacher, config, cache)
    predictions = predict_versions(models, data, config, cache, severities, seed, progress)
    return {"predictions": predictions, "labels": data.labels.numpy(), "indices": data.indices.numpy(),
            "exact": exact_pixel_mask(data).numpy(), "models": info.reset_index(drop=True),
            "versions": pd.DataFrame(versions(severities), columns=["kind", "severity", "level"]), "agreement": agree}


def _agreement(models: dict, info: pd.DataFrame, probes: Cifar10, teacher: nn.Module, config: Config,
               cache: Path | None) -> pd.DataFrame:
    from igkd_lib.evidence.agreement import agreement_study

    path = cache / f"agreement_{len(probes)}_{config.ig_steps}_{config.ig_method}_{config.ig_baseline}.csv" \
        if cache else None
    if path is not None and path.is_file():
        return pd.read_csv(path)
    methods = dict(zip(info["label"], info["method"]))
    agree, _ = agreement_study(teacher, {label: (model, methods[label], None) for label, model in models.items()},
                               probes, config)
    agree = agree.drop(columns=["seed"])
    if path is not None:
        with atomic_path(path) as tmp:
            agree.to_csv(tmp, index=False)
    return agree


def compute(config: Config, progress: bool = True) -> dict:
    """Load the six published students (SHA-256 verified), the whole test set and the teacher, and
    :func:`measure`; the result carries its provenance (``provenance``)."""
    from igkd_lib.data.cifar10 import load_cifar10
    from igkd_lib.evidence.agreement import probe_images
    from igkd_lib.evidence.official import load_student
    from igkd_lib.provenance import provenance, resolve_device
    from igkd_lib.training.loop import precision_name
    from igkd_lib.training.teacher import get_teacher

    started = time.time()
    found = official_students()
    data = load_cifar10("test", config)
    meta = provenance(config, data.source)  # the commit that starts the run
    info = pd.DataFrame([{"label": _label(c), "file": c.name, "sha256": c.sha256, "method": c.method,
                          "official_method": c.official_method, "training_set": c.training_set,
                          "overlay": "IG" in c.official_method.split("_"), "reported_acc": c.reported_acc}
                         for c in found])
    models = {label: load_student(c, config.cache_dir) for label, c in zip(info["label"], found)}
    exact = data.subset(torch.nonzero(exact_pixel_mask(data)).flatten())
    probes = probe_images(exact, min(N_PROBES, len(exact)), seed=SEED)
    teacher, teacher_info = get_teacher(config, progress=False)
    key = stable_hash({"files": list(info["sha256"]), "source": data.source, "n": len(data), "seed": SEED,
                       "severities": list(SEVERITIES), "device": resolve_device(config.device).type, "version": 1})
    store = measure(models, info, data, probes, teacher.cpu(), config, Path(config.cache_dir) / "robustness" / key,
                    progress=progress)
    device = resolve_device(config.device)
    store["provenance"] = {
        **meta, "command": "python -m " + " ".join(["igkd_lib", *sys.argv[1:]]),
        "written": _dt.datetime.now().isoformat(timespec="seconds"), "seconds": round(time.time() - started, 1),
        "precision": precision_name(device), "threads": torch.get_num_threads(),
        "inference": f"torch.inference_mode, batches of {config.eval_batch_size}, {device.type}",
        "seeds": {"corruption noise": SEED, "agreement probe set": SEED, "bootstrap": SEED},
        "severities": {k: {s: LEVELS[k][s - 1] for s in SEVERITIES} for k in LEVELS},
        "n_images": len(data), "n_exact": int(store["exact"].sum()), "n_probes": len(probes),
        "teacher": {"origin": teacher_info.origin, "sha256": teacher_info.sha256,
                    "test_accuracy": teacher_info.test_accuracy, "data_source": teacher_info.data_source},
        "ig": {"steps": config.ig_steps, "method": config.ig_method, "baseline": config.ig_baseline,
               "device": "cpu", "precision": "fp32"},
        "checkpoints": {"repository": "nordlinglab/ModelCompression-IntegratedGradients",
                        "files": dict(zip(info["file"], info["sha256"]))},
    }
    return store


def save(store: dict, folder: str | Path = FOLDER, stem: str = STEM) -> Path:
    """Write the raw results (``<stem>_images.npz``, ``<stem>_agreement.csv``), the tables of
    :mod:`igkd_lib.evidence.robustness_tables` (``<stem>.csv``, ``<stem>_paired.csv``) and the provenance
    (``<stem>.json``), each atomically. Returns the provenance file."""
    from igkd_lib.evidence.robustness_tables import accuracy_rows, paired_table

    folder = Path(folder)
    models, kinds = store["models"], store["versions"]
    with atomic_path(folder / f"{stem}_images.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, predictions=store["predictions"], labels=store["labels"].astype(np.uint8),
                                indices=store["indices"].astype(np.int32), exact=store["exact"],
                                labels_of_models=np.array(models["label"], dtype=str),
                                files=np.array(models["file"], dtype=str), kinds=np.array(kinds["kind"], dtype=str),
                                severities=kinds["severity"].to_numpy(np.int8))
    tables = {f"{stem}.csv": accuracy_rows(store), f"{stem}_paired.csv": paired_table(store),
              f"{stem}_models.csv": models}
    if store.get("agreement") is not None:
        tables[f"{stem}_agreement.csv"] = store["agreement"]
    for name, table in tables.items():
        with atomic_path(folder / name) as tmp:
            table.to_csv(tmp, index=False)
    atomic_write_json(folder / f"{stem}.json", store.get("provenance", {}))
    return folder / f"{stem}.json"


def load(folder: str | Path = FOLDER, stem: str = STEM) -> dict | None:
    """The committed study: the raw results as :func:`measure` gives them, plus ``rows`` and ``paired`` (the
    committed tables) and ``provenance``; None when it has not been written."""
    folder = Path(folder)
    if not (folder / f"{stem}.json").is_file() or not (folder / f"{stem}_images.npz").is_file():
        return None
    with np.load(folder / f"{stem}_images.npz") as raw:
        arrays = {name: raw[name] for name in raw.files}
    agreement_file = folder / f"{stem}_agreement.csv"
    return {"predictions": arrays["predictions"], "labels": arrays["labels"].astype(np.int64),
            "indices": arrays["indices"].astype(np.int64), "exact": arrays["exact"].astype(bool),
            "models": pd.read_csv(folder / f"{stem}_models.csv"),
            "versions": pd.DataFrame({"kind": arrays["kinds"], "severity": arrays["severities"].astype(int)}),
            "agreement": pd.read_csv(agreement_file) if agreement_file.is_file() else None,
            "rows": pd.read_csv(folder / f"{stem}.csv"), "paired": pd.read_csv(folder / f"{stem}_paired.csv"),
            "provenance": read_json(folder / f"{stem}.json")}


def cli(config: Config, args) -> int:
    """``python -m igkd_lib official --robustness [--recompute]``: measure (when not yet written, or asked to)
    and print the paired comparisons."""
    from igkd_lib.evidence.robustness_tables import findings_table

    store = None if getattr(args, "recompute", False) else load()
    if store is None:
        path = save(compute(config, progress=True))
        print(f"wrote {path.parent}/{STEM}*")
        store = load()
    else:
        print(f"the committed results ({FOLDER}/{STEM}*); --recompute measures again")
    paired = store["paired"]
    shown = paired[paired["contrast"] == paired["contrast"].iloc[0]]
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(shown[["measure", "kind", "severity", "subset", "n_images", "mean_a", "mean_b", "difference", "ci_low",
                     "ci_high", "p_holm"]].round(3).to_string(index=False))
        print(findings_table(store)[["claim", "n", "evidence", "verdict"]].to_string(index=False))
    p = store["provenance"]
    print(f"commit={p.get('commit')} · data={p.get('data_source')} · device={p.get('device')} · "
          f"precision={p.get('precision')} · written={p.get('written')}")
    return 0
