"""What ingest does with a window's teacher, checked in full before anything is written.

- ``installed``: the window used the checkout's installed teacher; every row must name it, and so must
  the teacher installed here now.
- ``finished``: ``teacher.pt`` must match ``teacher.json`` and the SHA-256 the window recorded, its card
  must hold this command's recipe, complete, and every row must name it; its accuracy is measured again
  here. It is installed where this command says (never where the folder says), and the committed resume
  files are removed.
- ``unfinished``: the resume files must match the SHA-256 the window recorded, load as tensors and plain
  data, fit this checkout's teacher and hold this command's recipe; they are committed (packed) with
  ``resume.json`` unless a later state is committed already.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from igkd_lib.campaign import TINY
from igkd_lib.campaign.paper_teacher import check_install, write_install
from igkd_lib.campaign.resume_files import RESUME_FILES, RESUME_JSON, encode_parts, read_resume, resume_record
from igkd_lib.campaign.returned import LIMITS, Returned, read_limited
from igkd_lib.config import Config, make_config
from igkd_lib.storage import atomic_path, atomic_write_json, read_json, sha256_file
from igkd_lib.training.teacher import recipe_from_config

__all__ = ["TeacherPlan", "plan_teacher"]


@dataclasses.dataclass
class TeacherPlan:
    """What ingest will do with the teacher: ``report`` (one line), and the writes, done by :meth:`write`."""

    report: str
    install: tuple | None = None  # (returned teacher.pt, card, target weights)
    resume: tuple | None = None  # (folder, {name: bytes}, record)
    remove: Path | None = None  # the committed resume folder, once a finished teacher is installed

    def bytes_change(self) -> int:
        """Bytes the checkout gains (or loses, negative) by the writes."""
        change = 0
        if self.install is not None:
            returned, _, target = self.install
            change += returned.stat().st_size - (target.stat().st_size if target.is_file() else 0)
        if self.resume is not None:
            folder, encoded, _ = self.resume
            change += sum(len(data) - ((folder / name).stat().st_size if (folder / name).is_file() else 0)
                          for name, data in encoded.items())
        if self.remove is not None and self.remove.is_dir():
            change -= sum(p.stat().st_size for p in self.remove.rglob("*") if p.is_file())
        return change

    def write(self) -> None:
        if self.install is not None:
            write_install(*self.install)
        if self.resume is not None:
            folder, encoded, record = self.resume
            for name, data in encoded.items():
                with atomic_path(folder / name) as tmp:
                    tmp.write_bytes(data)
            atomic_write_json(folder / RESUME_JSON, record)
        if self.remove is not None and self.remove.is_dir():
            shutil.rmtree(self.remove)


def _config(returned: Returned, config: Config | None) -> Config:
    if config is not None:
        return config
    return make_config(returned.meta["profile"], **(TINY if returned.meta.get("tiny") else {}))


def _rows_name(returned: Returned, sha: str | None, what: str) -> None:
    for run in returned.complete:
        named = run["row"].get("teacher_sha256")
        if named != sha:
            raise ValueError(f"{returned.folder / 'runs.jsonl'}: run_key {run['row']['run_key']} has "
                             f"teacher_sha256={named!r}, but {what} is {sha!r}; allowed: rows trained with the "
                             "teacher they are committed beside")


def plan_teacher(returned: Returned, weights: Path | None, resume_dir: Path, test,
                 config: Config | None = None) -> TeacherPlan:
    """Check the window's teacher (see the module's docstring); returns what to write, writes nothing."""
    teacher = returned.meta.get("teacher") or {}
    state = teacher.get("status")
    where = returned.folder / "window.json"
    if state == "installed":
        _rows_name(returned, teacher.get("sha256"), f"{where}'s teacher.sha256")
        if weights is not None and Path(weights).is_file() and returned.complete:
            here = read_json(Path(weights).with_suffix(".json")).get("sha256")
            _rows_name(returned, here, f"the teacher installed here ({weights})")
        return TeacherPlan("installed (the window used the checkout's teacher)")
    if state == "finished":
        return _finished(returned, teacher, weights, resume_dir, test, _config(returned, config))
    if state == "unfinished":
        _rows_name(returned, None, "no teacher (unfinished)")
        return _unfinished(returned, teacher, resume_dir, _config(returned, config))
    if state is not None:
        raise ValueError(f"{where}: teacher.status={state!r} is not allowed; allowed: installed, finished, unfinished")
    _rows_name(returned, None, "no teacher")
    return TeacherPlan("none")


def _finished(returned: Returned, teacher: dict, weights, resume_dir: Path, test, config: Config) -> TeacherPlan:
    folder = returned.folder
    read_limited(folder / "teacher.pt", LIMITS["teacher.pt"])
    try:
        card = json.loads(read_limited(folder / "teacher.json", LIMITS["teacher.json"]))
    except ValueError as error:
        raise ValueError(f"{folder / 'teacher.json'} does not parse ({error})") from None
    actual = sha256_file(folder / "teacher.pt")
    if not isinstance(card, dict) or card.get("sha256") != actual or teacher.get("sha256") != actual:
        raise ValueError(f"{folder / 'teacher.pt'}: its SHA-256 {actual} differs from teacher.json's sha256 "
                         f"{card.get('sha256') if isinstance(card, dict) else None!r} or window.json's teacher.sha256 "
                         f"{teacher.get('sha256')!r}; allowed: the teacher the window recorded")
    recipe = dataclasses.asdict(recipe_from_config(config))
    if json.loads(json.dumps(card.get("recipe"))) != json.loads(json.dumps(recipe)):
        raise ValueError(f"{folder / 'teacher.json'}: recipe={card.get('recipe')!r} is not this command's "
                         f"{config.profile} recipe {recipe!r}; allowed: a teacher trained by it")
    log = card.get("log")
    if card.get("status") != "complete" or not isinstance(log, list) or len(log) != recipe["epochs"]:
        raise ValueError(f"{folder / 'teacher.json'}: status={card.get('status')!r} with a log of "
                         f"{len(card['log']) if isinstance(card.get('log'), list) else '?'} epochs; allowed: complete, "
                         f"{recipe['epochs']} epochs")
    _rows_name(returned, actual, "the returned teacher's SHA-256")
    if weights is None or test is None:
        return TeacherPlan(f"finished ({actual[:12]}), not installed: no target given")
    checked = check_install(folder / "teacher.pt", test)
    return TeacherPlan(f"installed {weights} ({checked['test_accuracy']:.2f}% measured here, "
                       f"{checked['device_test_accuracy']:.2f}% on the device); removed {resume_dir}",
                       install=(folder / "teacher.pt", checked, Path(weights)), remove=Path(resume_dir))


def _unfinished(returned: Returned, teacher: dict, resume_dir: Path, config: Config) -> TeacherPlan:
    folder, window = returned.folder, returned.meta["window"]
    state = read_resume(folder, teacher.get("resume_sha256"))
    recipe = dataclasses.asdict(recipe_from_config(config))
    meta = state["meta"]
    if not isinstance(meta, dict) or meta.get("recipe") != recipe or meta.get("n_train") != config.n_train or \
            meta.get("source") not in ("offline", "torchvision"):
        raise ValueError(f"{folder / RESUME_FILES[0]}: meta={meta!r} is not this command's {config.profile} recipe "
                         f"on {config.n_train} training images; allowed: resume files of that run")
    done = len(state["log"])
    if teacher.get("epochs_done") != done:
        raise ValueError(f"{folder / 'window.json'}: teacher.epochs_done={teacher.get('epochs_done')!r} but the resume "
                         f"files hold {done} epochs")
    record_path = Path(resume_dir) / RESUME_JSON
    if record_path.is_file():
        committed = read_json(record_path)
        if committed.get("window") == window:
            return TeacherPlan(f"unfinished ({done} epochs): resume files already committed in {resume_dir}")
        if committed.get("epochs_done", 0) >= done:
            raise ValueError(f"{folder}: its resume files hold {done} epochs, those committed in {resume_dir} "
                             f"{committed.get('epochs_done')} (window {committed.get('window')}); allowed: a later "
                             "state (ingest windows in the order they ran)")
    encoded = encode_parts(state)
    return TeacherPlan(f"unfinished ({done} epochs, last test accuracy {state['log'][-1]['test_acc']:.2f}%): resume "
                       f"files committed in {resume_dir}",
                       resume=(Path(resume_dir), encoded, resume_record(encoded, state, window)))
