"""The authors' own artifacts: their ten-run accuracies and their published student checkpoints.

- :func:`ten_run_accuracies`: the per-run test accuracies of the official repository
  (``nordlinglab/ModelCompression-IntegratedGradients``, ``PyTorch_CIFAR10/calculate_stats_results.py``)
  in the two versions of that file, carried in the package (``tables/official_ten_run_accuracies.csv``)
  as a run table like this book's (method, seed, final_acc) with its source (commit, date).
- :func:`checkpoints` / :func:`fetch_checkpoint` / :func:`load_student`: the published student
  checkpoints, SHA-256 verified, found offline (``$IGKD_OFFICIAL_CHECKPOINTS`` or
  ``shared/data/official-checkpoints`` beside the repository), in the cache, or downloaded from the
  official repository where the internet answers; one clear error otherwise.
- :func:`measure_checkpoints`: each loadable checkpoint's accuracy on the data in use and on the test
  images whose exact pixels are known, with Wilson 95% intervals (``python -m igkd_lib official``).

See the chapter "The authors' artifacts".
"""
from __future__ import annotations

import re
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from igkd_lib import models
from igkd_lib.config import Config
from igkd_lib.data.cifar10 import exact_rows, find_shared_folder, load_cifar10, stratified_subset
from igkd_lib.evidence.committed_predictions import clean_predictions
from igkd_lib.evidence.stats import wilson_interval
from igkd_lib.paths import PACKAGE
from igkd_lib.storage import atomic_path, read_checked_json, sha256_file, stable_hash, write_checked_json

__all__ = ["REPOSITORY", "CHECKPOINT_COMMIT", "CHECKPOINT_DATE", "RESULT_VERSIONS", "METHOD_NAMES",
           "OfficialUnavailable", "OfficialCheckpoint", "ten_run_accuracies", "checkpoints", "parse_name",
           "find_checkpoint_folder", "fetch_checkpoint", "load_student", "measure_checkpoints", "cli", "SPOT_CHECK"]

REPOSITORY = "nordlinglab/ModelCompression-IntegratedGradients"
CHECKPOINT_COMMIT = "c534787545bb5d2f42ecce730c4935ac2a3656b5"
CHECKPOINT_DATE = "2025-06-25"
RESULTS_FILE = "PyTorch_CIFAR10/calculate_stats_results.py"
# commit date -> what that version of the results file is
RESULT_VERSIONS = {
    "2025-03-18": "its maxima of Student, KD, IG, KD_IG are the paper's reported numbers",
    "2025-03-23": "a later version (Student's 10th run and all of KD_IG differ); its means are the ones quoted as "
                  "the official code's 10-run means",
}
# the official names -> this book's (the attention-transfer variants keep theirs)
METHOD_NAMES = {"Student": "baseline", "KD": "kd", "IG": "ig", "KD_IG": "kd_ig", "AT": "at", "KD_AT": "kd_at",
                "IG_AT": "ig_at", "KD_IG_AT": "kd_ig_at"}
_TABLES = PACKAGE / "tables"
SPOT_CHECK = 64  # images a student predicts here before its committed predictions are read (measure_checkpoints)
_RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/saved_models/{folder}/{name}"
_NAME = re.compile(r"^CIFAR10(?P<subset>-Train80Rand)?_(?P<method>[A-Za-z_]+?)"
                   r"(?:_T(?P<T>[\d.]+)_alpha(?P<alpha>[\d.]+)_p(?P<p>[\d.]+)_gamma(?P<gamma>[\d.]+))?"
                   r"_TestAcc(?P<acc>[\d.]+)\.pt$")


class OfficialUnavailable(RuntimeError):
    """A published checkpoint could not be found, verified or downloaded; the message says what was tried."""


def ten_run_accuracies(version: str | None = None) -> pd.DataFrame:
    """The official ten-run accuracies as a run table: method (this book's name), official_method, seed (run
    1-10), final_acc (%), commit, commit_date, version, source. ``version``: a commit date of
    :data:`RESULT_VERSIONS`, or None for both."""
    if version is not None and version not in RESULT_VERSIONS:
        raise ValueError(f"version={version!r} is not allowed; allowed: {', '.join(RESULT_VERSIONS)} or None")
    raw = pd.read_csv(_TABLES / "official_ten_run_accuracies.csv", dtype={"commit": str, "commit_date": str})
    if version is not None:
        raw = raw[raw["commit_date"] == version]
    table = pd.DataFrame({
        "method": raw["method"].map(METHOD_NAMES), "official_method": raw["method"], "seed": raw["run"],
        "final_acc": raw["test_accuracy"].astype(float), "commit": raw["commit"], "commit_date": raw["commit_date"],
    })
    table["version"] = table["commit_date"] + " (" + table["commit"].str[:12] + ")"
    table["source"] = "official code, " + RESULTS_FILE + " of " + table["version"]
    return table.reset_index(drop=True)


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One published student: its file name, SHA-256 and what the name says."""

    name: str
    sha256: str
    official_method: str
    training_set: str  # "full" (saved_models/ablation) or "random 80%" (saved_models/montecarlo_weights)
    reported_acc: float
    settings: str

    @property
    def method(self) -> str:
        return METHOD_NAMES.get(self.official_method, self.official_method)

    @property
    def loads(self) -> bool:
        """False for the attention-transfer files: another architecture (``ModifiedStudent``)."""
        return "AT" not in self.official_method.split("_")

    @property
    def url(self) -> str:
        folder = "montecarlo_weights" if self.training_set == "random 80%" else "ablation"
        return _RAW_URL.format(repo=REPOSITORY, commit=CHECKPOINT_COMMIT, folder=folder, name=self.name)


def parse_name(name: str) -> dict:
    """What a checkpoint's file name says: official_method, training_set, reported_acc, settings."""
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"name={name!r} is not allowed; allowed: an official checkpoint name "
                         "(CIFAR10[-Train80Rand]_<method>[_T.._alpha.._p.._gamma..]_TestAcc<acc>.pt)")
    g = match.groupdict()
    settings = "" if g["T"] is None else f"T={g['T']}, alpha={g['alpha']}, p={g['p']}, gamma={g['gamma']}"
    return {"official_method": g["method"], "training_set": "random 80%" if g["subset"] else "full",
            "reported_acc": float(g["acc"]), "settings": settings}


def checkpoints() -> list[OfficialCheckpoint]:
    """The eleven published checkpoints (from the package's copy of their SHA256SUMS)."""
    found = []
    for line in (_TABLES / "official_checkpoints.sha256").read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            found.append(OfficialCheckpoint(name=name.strip(), sha256=digest, **parse_name(name.strip())))
    return found


def find_checkpoint_folder() -> Path | None:
    """``$IGKD_OFFICIAL_CHECKPOINTS``, else ``shared/data/official-checkpoints`` beside the repository, else None."""
    return find_shared_folder("official-checkpoints", "SHA256SUMS", "IGKD_OFFICIAL_CHECKPOINTS")


def fetch_checkpoint(checkpoint: OfficialCheckpoint, cache_dir: str | Path) -> Path:
    """A verified local path of ``checkpoint``: the offline folder, the cache, or a download into the cache."""
    tried = []
    folder = find_checkpoint_folder()
    cached = Path(cache_dir) / "official-checkpoints" / checkpoint.name
    for candidate in ([folder / checkpoint.name] if folder else []) + [cached]:
        if candidate.is_file():
            if sha256_file(candidate) == checkpoint.sha256:
                return candidate
            tried.append(f"{candidate}: SHA-256 differs from the published file's")
        else:
            tried.append(f"{candidate}: not found")
    from igkd_lib.data.cifar10 import _internet_available

    if not _internet_available("raw.githubusercontent.com"):
        tried.append(f"download {checkpoint.url}: the internet is not reachable (checked within 3 s)")
        raise OfficialUnavailable(_unavailable(checkpoint, tried))
    try:
        with atomic_path(cached) as tmp:
            with urllib.request.urlopen(checkpoint.url, timeout=30) as response, open(tmp, "wb") as out:
                out.write(response.read())
            if sha256_file(tmp) != checkpoint.sha256:
                raise OfficialUnavailable(f"the download of {checkpoint.url} has another SHA-256")
        return cached
    except (OSError, OfficialUnavailable) as error:
        tried.append(f"download {checkpoint.url}: {error}")
    raise OfficialUnavailable(_unavailable(checkpoint, tried))


def _unavailable(checkpoint: OfficialCheckpoint, tried: list) -> str:
    return (f"the official checkpoint {checkpoint.name} is not available. Tried:\n  - " + "\n  - ".join(tried) +
            "\nSet IGKD_OFFICIAL_CHECKPOINTS to a folder holding it, or run where raw.githubusercontent.com answers.")


def load_student(checkpoint: OfficialCheckpoint, cache_dir: str | Path) -> nn.Module:
    """The published student in eval mode: ``models.student(5)`` (raw [0, 1] input, no dropout) with its weights."""
    if not checkpoint.loads:
        raise ValueError(f"checkpoint={checkpoint.name!r} is not allowed: the attention-transfer students use "
                         "another architecture (ModifiedStudent); allowed: Student, KD, IG, KD_IG checkpoints")
    state = torch.load(fetch_checkpoint(checkpoint, cache_dir), map_location="cpu", weights_only=True)
    model = models.student(5)
    model.load_state_dict(state)
    return model.eval()


def _predict(model: nn.Module, images: torch.Tensor, config: Config) -> torch.Tensor:
    from igkd_lib.provenance import resolve_device
    from igkd_lib.training.loop import predict_logits, prepare_model

    device = resolve_device(config.device)
    return predict_logits(prepare_model(model, device), images, config.eval_batch_size, device).argmax(1).cpu()


def _committed(model: nn.Module, committed, sets: dict, config: Config) -> dict | None:
    """Each set's committed predictions, if the committed file holds every image of them and ``model`` predicts
    the first :data:`SPOT_CHECK` of the first set as committed; else None (they are predicted here)."""
    predicted = {prefix: committed.predictions(data.indices.tolist()) for prefix, data in sets.items()}
    if any(value is None for value in predicted.values()):
        return None
    first = next(iter(sets))
    here = _predict(model, sets[first].images[:SPOT_CHECK], config)
    if not torch.equal(here, torch.as_tensor(predicted[first][:SPOT_CHECK])):
        return None
    return {prefix: torch.as_tensor(value) for prefix, value in predicted.items()}


def _accuracy_columns(prefix: str, correct: int, n: int) -> dict:
    acc, low, high = wilson_interval(correct, n)
    return {f"{prefix}n": n, f"{prefix}acc": acc, f"{prefix}ci_low": low, f"{prefix}ci_high": high}


def measure_checkpoints(config: Config, progress: bool = False) -> pd.DataFrame:
    """One row per published checkpoint: method, training_set, reported_acc (its name), accuracy on the
    profile's test images (n_test, the data in use) and on the canonical ones (exact pixels), each with
    a Wilson 95% interval, and ``measured``: how. Where the robustness study committed the student's clean
    predictions on the same data (:mod:`igkd_lib.evidence.committed_predictions`), they are read, after the
    student predicts :data:`SPOT_CHECK` of the images here and agrees on every one; otherwise every image is
    predicted here. Attention-transfer files, and files that cannot be found or downloaded
    (:class:`OfficialUnavailable`), get a note saying so instead.

    Cached in ``{cache_dir}/official-checkpoints/measured-<key>.json`` (key: the files' SHA-256, the data
    source and the test subset), so the chapter and the findings page measure once.
    """
    full = load_cifar10("test", config)
    key = stable_hash({"files": [c.sha256 for c in checkpoints()], "source": full.source, "n_test": config.n_test,
                       "subset_seed": config.subset_seed, "version": 3})  # 2: a checksum; 3: the measured column
    path = Path(config.cache_dir) / "official-checkpoints" / f"measured-{key}.json"
    stored = read_checked_json(path)  # an edited accuracy fails the checksum: moved aside, measured again
    if stored is not None and isinstance(stored.get("rows"), list):
        table = pd.DataFrame(stored["rows"])
    else:
        table = _measure(config, full, progress)
        if not table["note"].str.startswith("unavailable").any():  # measure again once they can be found
            write_checked_json(path, {"rows": table.to_dict(orient="records")})
    table.attrs.update(data_source=full.source_label, canonical_source=full.source)
    return table


def _measure(config: Config, full, progress: bool) -> pd.DataFrame:
    from tqdm.auto import tqdm

    in_use = stratified_subset(full, config.n_test, config.subset_seed)
    canonical = full.subset(exact_rows(full))
    rows = []
    for checkpoint in tqdm(checkpoints(), desc="official checkpoints", disable=not progress):
        row = {"method": checkpoint.method, "official_method": checkpoint.official_method,
               "training_set": checkpoint.training_set, "settings": checkpoint.settings,
               "reported_acc": checkpoint.reported_acc, "file": checkpoint.name, "note": ""}
        if not checkpoint.loads:
            rows.append({**row, "note": "skipped: attention-transfer student, another architecture (ModifiedStudent)"})
            continue
        try:
            model = load_student(checkpoint, config.cache_dir)
        except OfficialUnavailable as error:
            rows.append({**row, "note": f"unavailable: {error}"})
            continue
        sets = {"": in_use, "canonical_": canonical}
        committed = clean_predictions(checkpoint.sha256, full.source_label)
        predicted = _committed(model, committed, sets, config) if committed is not None else None
        if predicted is None:
            predicted = {prefix: _predict(model, data.images, config) for prefix, data in sets.items()}
            row["measured"] = "every image predicted here"
        else:
            row["measured"] = f"{committed.describe()}; {SPOT_CHECK} images predicted here agree"
        for prefix, data in sets.items():
            row.update(_accuracy_columns(prefix, int((predicted[prefix] == data.labels).sum()), len(data)))
        rows.append(row)
    # every column, also when no file could be measured (no ../shared, offline): the chapter shows the notes
    columns = [f"{prefix}{name}" for prefix in ("", "canonical_") for name in ("n", "acc", "ci_low", "ci_high")]
    columns.append("measured")
    return pd.DataFrame(rows).reindex(columns=[*rows[0], *columns] if rows else columns).loc[
        :, lambda frame: ~frame.columns.duplicated()]


def _with_interval(row: pd.Series, prefix: str) -> str:
    if pd.isna(row.get(f"{prefix}acc")):
        return "-"
    return (f"{row[f'{prefix}acc']:.2f} [{row[f'{prefix}ci_low']:.2f}, {row[f'{prefix}ci_high']:.2f}] "
            f"(n={int(row[f'{prefix}n'])})")


def cli(config: Config, args) -> int:
    """``python -m igkd_lib official``: measure every published student and say what the numbers mean."""
    from igkd_lib.provenance import provenance_line

    table = measure_checkpoints(config, progress=False)
    shown = pd.DataFrame({"method": table["method"], "training set": table["training_set"],
                          "in its name": table["reported_acc"].map("{:.2f}".format),
                          "data in use [95% CI]": table.apply(_with_interval, axis=1, prefix=""),
                          "exact pixels [95% CI]": table.apply(_with_interval, axis=1, prefix="canonical_"),
                          "note": table["note"]})
    print(shown.to_string(index=False))
    print(f"\ndata in use: the profile's test images ({table.attrs['data_source']}); exact pixels: the test images "
          "whose pixels are canonical CIFAR-10. Accuracies in %, Wilson 95% intervals; chance level 10%.")
    if table.attrs["canonical_source"] == "offline":
        print("On the offline copy about 90% of the test images carry JPEG loss that the students never saw in "
              "training, so 'data in use' falls below the name's number for a reason that has nothing to do with "
              "the method. The exact-pixel images are the authors' test images (a subset of 1,017), so the name's "
              "number should lie inside that interval; the gap between the two columns is the JPEG copy's cost.")
    print(provenance_line(config, table.attrs["data_source"]))
    if table["acc"].isna().all():  # nothing measured: say why, and fail (every row above is "-")
        reasons = sorted({note.splitlines()[0] for note in table["note"] if note})
        print("error: no published checkpoint could be measured: " + "; ".join(reasons) + ". Set "
              "IGKD_OFFICIAL_CHECKPOINTS to a folder holding them (e.g. ../shared/data/official-checkpoints), or run "
              "where raw.githubusercontent.com answers", file=sys.stderr)
        return 1
    return 0
