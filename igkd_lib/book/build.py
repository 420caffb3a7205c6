"""Build the book: papermill executes every page, then Jupyter Book publishes the executed copies.

``build(profile)`` runs :func:`execute_chapters` (each chapter from a fresh kernel, with
``-p profile <profile>``, into ``_build/executed/<profile>/``) and :func:`stage_and_build` (copies
the book's sources and the executed notebooks into a staging folder and builds the site with
warnings as errors). Jupyter Book itself never executes anything. A chapter is re-executed only
when its source, the library or the committed ``results/`` is newer than its executed copy (the summary
pages also when a page before them ran again), so a rebuild after a text edit takes seconds. Described in
the introduction ("How to run it").
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from igkd_lib.paths import CHECKOUT, PACKAGE
from igkd_lib.storage import atomic_write_json
from igkd_lib.timing import Stopwatch
from igkd_lib.training.loop import BATCH_ENV

__all__ = ["ROOT", "ChapterRun", "BookBuild", "chapters_from_toc", "execution_order", "execute_chapters",
           "chapter_overrides", "stage_and_build", "build", "time_table", "setup_seconds", "cli", "SUMMARY_PAGES",
           "STARTED_ENV"]

ROOT = CHECKOUT  # the repository root the book is built from
_SOURCES = ("_config.yml", "_toc.yml", "book")
# Pages that summarise the chapters' runs (read from the run cache): executed after every other page.
SUMMARY_PAGES = (Path("book/findings.ipynb"), Path("book/results_summary.ipynb"))
# Set by ``make book`` to the Unix time it started, so the time table includes the set-up before the book.
STARTED_ENV = "IGKD_BOOK_STARTED"


@dataclass(frozen=True)
class ChapterRun:
    """One page of the book: its source, its executed copy, seconds spent and whether it was skipped."""

    source: Path
    executed: Path
    seconds: float
    skipped: bool


@dataclass(frozen=True)
class BookBuild:
    """A finished build: the site's index page, the chapters and the seconds of each stage."""

    index: Path
    chapters: list
    execute_seconds: float
    build_seconds: float


def chapters_from_toc(root: Path = ROOT) -> list[Path]:
    """The notebooks of ``_toc.yml`` (paths relative to ``root``), in reading order.

    An entry without a ``.md`` file is a notebook, so a chapter missing from disk is reported, not skipped.
    """
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    files = [toc["root"]] + _toc_files(toc)
    return [Path(f + ".ipynb") for f in files if not (Path(root) / (f + ".md")).exists()]


def execution_order(pages: list[Path]) -> list[Path]:
    """Reading order, except that :data:`SUMMARY_PAGES` run last (the findings page comes right after the
    introduction but reads the runs of chapters 4, 5 and 7)."""
    pages = [Path(p) for p in pages]
    return [p for p in pages if p not in SUMMARY_PAGES] + [p for p in SUMMARY_PAGES if p in pages]


def _toc_files(node) -> list[str]:
    if isinstance(node, list):
        return [f for item in node for f in _toc_files(item)]
    if isinstance(node, dict):
        own = [node["file"]] if "file" in node else []
        return own + [f for key in ("chapters", "parts", "sections") for f in _toc_files(node.get(key, []))]
    return []


def _library_mtime() -> float:
    """The newest file of the installed library (code, templates, tables, weights and their cards)."""
    files = PACKAGE.rglob("*")
    return max(p.stat().st_mtime for p in files if p.is_file() and "__pycache__" not in p.parts)


def _inputs_mtime(root: Path) -> float:
    """The newest input a page reads from the checkout: the library and the committed ``results/``."""
    results = [p.stat().st_mtime for p in (Path(root) / "results").rglob("*") if p.is_file()]
    return max([_library_mtime(), *results])


def _is_fresh(source: Path, executed: Path, parameters: dict, library_mtime: float) -> bool:
    """The executed copy is newer than its source and the library, and ran with the same parameters."""
    if not executed.exists():
        return False
    mtime = executed.stat().st_mtime
    if mtime < source.stat().st_mtime or mtime < library_mtime:
        return False
    import nbformat

    stored = nbformat.read(executed, as_version=4).metadata.get("papermill", {}).get("parameters", {})
    return stored == parameters


def _execute(source: Path, executed: Path, parameters: dict, progress: bool) -> None:
    """Run one notebook with papermill from its own folder; a failed run is kept as ``*.failed.ipynb``."""
    import papermill

    executed.parent.mkdir(parents=True, exist_ok=True)
    running, failed = executed.with_suffix(".running.ipynb"), executed.with_suffix(".failed.ipynb")
    previous = os.environ.get(BATCH_ENV)
    os.environ[BATCH_ENV] = "1"  # the kernel inherits it: progress as lines on the page, never widgets
    try:
        papermill.execute_notebook(str(source), str(running), parameters=parameters, kernel_name="python3",
                                   cwd=str(source.parent), progress_bar=progress)
    except Exception:
        if running.exists():
            os.replace(running, failed)
        raise
    finally:
        if previous is None:
            del os.environ[BATCH_ENV]
        else:
            os.environ[BATCH_ENV] = previous
    os.replace(running, executed)  # atomic: a reader sees the old copy or the whole new one
    failed.unlink(missing_ok=True)


def execute_chapters(profile: str, out_dir: str | Path | None = None, chapters: list | None = None,
                     parameters: dict | None = None, progress: bool = True, force: bool = False,
                     root: str | Path = ROOT) -> list[ChapterRun]:
    """Execute the book's notebooks with papermill (``-p profile <profile>`` plus ``parameters``).

    ``chapters``: notebook paths relative to ``root`` (default: every notebook of ``_toc.yml``), run in
    reading order (no chapter needs another to have run first), the summary pages last (:func:`execution_order`).
    Executed copies go to ``out_dir`` (default ``_build/executed/<profile>``) under the same relative
    path; a fresh copy is skipped unless ``force``. Prints each chapter's time and the total.
    """
    root = Path(root)
    out_dir = Path(out_dir) if out_dir is not None else root / "_build" / "executed" / profile
    params = {"profile": profile, **(parameters or {})}
    library_mtime = _inputs_mtime(root)
    runs = []
    chapters = execution_order(chapters_from_toc(root) if chapters is None else [Path(c) for c in chapters])
    for chapter in chapters:
        source, executed = root / chapter, out_dir / chapter
        if not source.exists():
            raise ValueError(f"chapters: {chapter} does not exist under {root}; allowed: notebooks of _toc.yml")
        watch = Stopwatch()
        # a summary page reads the runs of the pages before it: stale when one of them ran again
        rerun = chapter in SUMMARY_PAGES and any(not r.skipped for r in runs)
        skipped = not force and not rerun and _is_fresh(source, executed, params, library_mtime)
        if not skipped:
            _execute(source, executed, params, progress)
        runs.append(ChapterRun(source, executed, watch.seconds, skipped))
        print(f"{chapter}: {'up to date' if skipped else f'{runs[-1].seconds:.1f} s'}", flush=True)
    print(f"executed {sum(not r.skipped for r in runs)} of {len(runs)} pages in "
          f"{sum(r.seconds for r in runs):.1f} s (profile={profile})", flush=True)
    return runs


def _stage(root: Path, executed_dir: Path, stage: Path) -> None:
    """Copy the book's sources, the notebooks and then the executed copies over them into ``stage``."""
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in _SOURCES:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, stage / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.failed.ipynb"))
        else:
            shutil.copy2(src, stage / name)
    for chapter in chapters_from_toc(root):
        target = stage / chapter
        target.parent.mkdir(parents=True, exist_ok=True)
        source = executed_dir / chapter if (executed_dir / chapter).exists() else root / chapter
        if source.exists():  # a missing chapter is left for Jupyter Book to report
            _copy_without_plumbing(source, target)


def _copy_without_plumbing(source: Path, target: Path) -> None:
    """Copy a notebook for the page: papermill's injected parameters cell is tagged ``remove-cell``, and
    consecutive text streams of a cell are joined (a kernel may send a line's end on its own, which would
    show as an empty block; Jupyter Book's own merging would also move a line printed under a figure above it)."""
    nb = json.loads(source.read_text())
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell["metadata"]["tags"] = tags + ["remove-cell"]
        if "outputs" in cell:
            cell["outputs"] = _join_streams(cell["outputs"])
    target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _join_streams(outputs: list) -> list:
    joined: list = []
    for output in outputs:
        last = joined[-1] if joined else {}
        if output.get("output_type") == "stream" and last.get("output_type") == "stream" \
                and last.get("name") == output.get("name"):
            text = lambda o: "".join(o["text"]) if isinstance(o["text"], list) else o["text"]  # noqa: E731
            joined[-1] = {**last, "text": text(last) + text(output)}
        else:
            joined.append(output)
    return joined


def _jupyter_book() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    return [str(exe)] if exe.exists() else ["jupyter-book"]


def stage_and_build(profile: str, site_root: str | Path | None = None, executed_dir: str | Path | None = None,
                    root: str | Path = ROOT) -> Path:
    """Stage the sources with the executed notebooks and build the site with warnings as errors.

    The site goes to ``<site_root>/_build/html`` (default ``site_root``: the repository, so
    ``_build/html/index.html``). Returns the index page; raises ``RuntimeError`` with the build log
    when Jupyter Book fails or warns.
    """
    root = Path(root)
    site_root = Path(site_root) if site_root is not None else root
    executed_dir = Path(executed_dir) if executed_dir is not None else root / "_build" / "executed" / profile
    stage = site_root / "_build" / "stage" / profile
    _stage(root, executed_dir, stage)
    html = site_root / "_build" / "html"
    if html.exists():
        shutil.rmtree(html)
    command = _jupyter_book() + ["build", str(stage), "--path-output", str(site_root), "-W", "--keep-going",
                                 "--builder", "html"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {result.returncode}):\n{result.stdout[-6000:]}\n"
                           f"{result.stderr[-6000:]}")
    return html / "index.html"


def build(profile: str, force: bool = False, progress: bool = True, site_root: str | Path | None = None,
          chapters: list | None = None, parameters: dict | None = None, root: str | Path = ROOT) -> BookBuild:
    """Execute every page (:func:`execute_chapters`) then publish (:func:`stage_and_build`); records times.

    Prints :func:`time_table` at the end, with the set-up before this call when ``make book`` says when it
    started (:data:`STARTED_ENV`).
    """
    root = Path(root)
    site_root = Path(site_root) if site_root is not None else root
    executed_dir = site_root / "_build" / "executed" / profile
    setup = setup_seconds()
    watch = Stopwatch()
    runs = execute_chapters(profile, executed_dir, chapters, parameters, progress, force, root)
    executed_seconds = watch.seconds
    index = stage_and_build(profile, site_root, executed_dir, root)
    result = BookBuild(index, runs, executed_seconds, watch.seconds - executed_seconds)
    atomic_write_json(executed_dir / "build_times.json", {
        "profile": profile, "setup_seconds": setup, "execute_seconds": result.execute_seconds,
        "build_seconds": result.build_seconds,
        "chapters": {str(r.source.relative_to(root)): {"seconds": r.seconds, "skipped": r.skipped} for r in runs}})
    print(f"book built in {result.execute_seconds + result.build_seconds:.1f} s (execute "
          f"{result.execute_seconds:.1f} s, Jupyter Book {result.build_seconds:.1f} s): {index}", flush=True)
    print(f"\ntime per page (profile={profile}):\n{time_table(runs, result.build_seconds, setup)}", flush=True)
    return result


def setup_seconds() -> float | None:
    """Seconds since ``make book`` started (:data:`STARTED_ENV`, Unix time): its set-up (.venv, install);
    None when the variable is unset (the book was started some other way)."""
    text = os.environ.get(STARTED_ENV, "").strip()
    if not text:
        return None
    try:
        started = float(text)
    except ValueError:
        raise ValueError(f"{STARTED_ENV}={text!r} is not allowed; allowed: a Unix time in seconds") from None
    if not started <= time.time():
        raise ValueError(f"{STARTED_ENV}={text!r} is not allowed; allowed: a Unix time not in the future")
    return time.time() - started


def time_table(runs: list, build_seconds: float, setup: float | None = None) -> str:
    """The time table ``make book`` prints at the end: the set-up (when known), seconds and share of each
    page (in execution order; "up to date" where a fresh executed copy was kept), the site build, the total."""
    rows = [("set-up (.venv, pip install)", setup, "")] if setup is not None else []
    rows += [(f"{r.source.parent.name}/{r.source.name}", r.seconds, "up to date" if r.skipped else "") for r in runs]
    rows.append(("Jupyter Book (site)", build_seconds, ""))
    total = sum(seconds for _, seconds, _ in rows)
    width = max(len(name) for name, _, _ in rows + [("total", 0, "")])
    rule = "-" * (width + 20)
    lines = [f"{'step':<{width}}  {'seconds':>8}  {'share':>6}", rule]
    for name, seconds, note in rows:
        share = f"{100 * seconds / total:5.1f}%" if total > 0 else "     -"
        lines.append(f"{name:<{width}}  {seconds:8.1f}  {share}" + (f"  {note}" if note else ""))
    minutes, rest = divmod(int(round(total)), 60)
    lines += [rule, f"{'total':<{width}}  {total:8.1f}  {minutes} min {rest:02d} s"
              + ("" if setup is not None else " (set-up not included)")]
    return "\n".join(lines)


def chapter_overrides(config) -> dict:
    """The fields where ``config`` differs from its profile's defaults, as papermill parameters (lists for tuples)."""
    from igkd_lib.config import make_config

    default = make_config(config.profile).to_dict()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.to_dict().items() if v != default[k]}


def cli(config, args) -> int:
    """``python -m igkd_lib book --profile X [--force] [--set key=value ...]``: build the book for the config's
    profile; every field the ``--set`` overrides (or ``--preset``) change reaches every chapter, as its
    ``overrides`` parameter (:func:`chapter_overrides`)."""
    overrides = chapter_overrides(config)
    build(config.profile, force=bool(getattr(args, "force", False)),
          parameters={"overrides": overrides} if overrides else None)
    return 0
