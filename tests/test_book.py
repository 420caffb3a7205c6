"""The book builds on the smoke profile: every page exists, shows its figures, and carries its provenance.

The module fixture builds the site once (Jupyter Book, warnings as errors) into a temporary folder
from the stored notebooks, which are executed on the smoke profile and validated by nbval
(``make test``). Set ``IGKD_TEST_BOOK_EXECUTE=1`` to re-execute every page with papermill first.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from igkd_lib import book

ROOT = book.ROOT
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CHAPTERS = [Path(f + ".ipynb") for f in book._toc_files(TOC) if f.startswith("notebooks/")]
_IMG = re.compile(r"<img[^>]*\ssrc=\"([^\"]+)\"")
_ERROR = re.compile(r"Traceback \(most recent call last\)|class=\"[^\"]*\b(traceback|output error)\b")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The built site's html folder (built once per test module)."""
    site_root = tmp_path_factory.mktemp("site")
    if os.environ.get("IGKD_TEST_BOOK_EXECUTE") == "1":
        index = book.build("smoke", site_root=site_root, progress=False).index
    else:
        index = book.stage_and_build("smoke", site_root=site_root, executed_dir=site_root / "none")
    assert index.exists()
    return index.parent


def test_toc_lists_six_chapters_in_order():
    toc = book._toc_files(TOC)
    numbers = [Path(f).name[:2] for f in toc if f.startswith("notebooks/")]
    assert numbers == ["01", "02", "03", "04", "05", "06"]
    assert toc[-2:] == ["book/results_summary", "book/references"]


def test_execute_rejects_a_missing_chapter(tmp_path):
    with pytest.raises(ValueError, match="chapters"):
        book.execute_chapters("smoke", tmp_path, chapters=["notebooks/99_missing.ipynb"], progress=False)


def test_chapter_3_executes_after_the_ablations_it_reads_and_cycles_are_refused(tmp_path):
    order = book.execution_order(book.chapters_from_toc())
    names = [p.name[:2] for p in order]
    assert names.index("05") < names.index("03") and names.index("01") < names.index("02") < names.index("04")
    assert sorted(order) == sorted(book.chapters_from_toc())  # every page once
    for name, first in (("a", "b"), ("b", "a")):
        nbformat.write(new_notebook(metadata={"igkd": {"execute_after": [f"{first}.ipynb"]}}), tmp_path / f"{name}.ipynb")
    with pytest.raises(ValueError, match="execute_after: .* is a cycle"):
        book.execution_order([Path("a.ipynb"), Path("b.ipynb")], tmp_path)


def _tiny_notebook(path: Path) -> None:
    params = new_code_cell('profile = "quick"')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell("print('ran with', profile)")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.mark.slow
def test_execute_passes_the_profile_and_skips_a_fresh_copy(tmp_path):
    _tiny_notebook(tmp_path / "notebooks" / "00_tiny.ipynb")
    kwargs = dict(chapters=["notebooks/00_tiny.ipynb"], progress=False, root=tmp_path)
    first = book.execute_chapters("smoke", tmp_path / "out", **kwargs)
    assert not first[0].skipped
    outputs = nbformat.read(first[0].executed, as_version=4).cells[-1].outputs
    assert "ran with smoke" in "".join(o.get("text", "") for o in outputs)
    assert book.execute_chapters("smoke", tmp_path / "out", **kwargs)[0].skipped
    assert not book.execute_chapters("smoke", tmp_path / "out", parameters={"seeds": [1]}, **kwargs)[0].skipped
    assert not book.execute_chapters("smoke", tmp_path / "out", force=True, **kwargs)[0].skipped


PAGES = [Path(f + ".ipynb") for f in book._toc_files(TOC) if (ROOT / (f + ".ipynb")).exists() or f.startswith("notebooks/")]


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_page_structure_builds_under_warnings_as_errors(page):
    """One title, no skipped header level (a Sphinx warning), one parameters cell defaulting to smoke."""
    assert (ROOT / page).exists(), f"{page} is in _toc.yml but missing"
    nb = nbformat.read(ROOT / page, as_version=4)
    levels = [len(m.group(1)) for c in nb.cells if c.cell_type == "markdown"
              for m in re.finditer(r"^(#{1,6}) ", re.sub(r"```.*?```", "", c.source, flags=re.S), re.M)]
    assert levels[:1] == [1] and levels.count(1) == 1, f"{page}: needs exactly one '# ' title, first"
    jumps = [(a, b) for a, b in zip(levels, levels[1:]) if b > a + 1]
    assert not jumps, f"{page}: header levels jump {jumps}"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and 'profile = "smoke"' in params[0].source, f"{page}: one parameters cell, smoke"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{page}: kernel must be python3"


@pytest.mark.slow
@pytest.mark.parametrize("page", ["index.html", "book/references.html", "book/results_summary.html"])
def test_book_pages_exist(site, page):
    assert (site / page).exists()


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_page_shows_figures_provenance_and_no_error(site, chapter):
    page = site / chapter.with_suffix(".html")
    assert page.exists(), f"{page} was not built"
    html = page.read_text()
    sources = _IMG.findall(html)
    figures = [s for s in sources if "_images/" in s or s.startswith("data:image")]
    assert figures, f"{chapter}: no figure on the page"
    for src in sources:
        if not src.startswith(("data:", "http://", "https://")):
            assert (page.parent / src).resolve().exists(), f"{chapter}: image {src} is missing"
    assert not _ERROR.search(html), f"{chapter}: the page shows an execution error"
    assert "profile=smoke" in html and "commit=" in html, f"{chapter}: no provenance line"


@pytest.mark.slow
def test_results_summary_shows_provenance(site):
    html = (site / "book" / "results_summary.html").read_text()
    assert "profile=smoke" in html and not _ERROR.search(html)


@pytest.mark.slow
def test_a_failing_chapter_leaves_no_executed_copy(tmp_path):
    nb = new_notebook(cells=[new_code_cell("raise RuntimeError('boom')")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, tmp_path / "notebooks" / "00_bad.ipynb")
    with pytest.raises(Exception, match="boom"):
        book.execute_chapters("smoke", tmp_path / "out", chapters=["notebooks/00_bad.ipynb"], progress=False,
                              root=tmp_path)
    assert not (tmp_path / "out" / "notebooks" / "00_bad.ipynb").exists()
    assert (tmp_path / "out" / "notebooks" / "00_bad.failed.ipynb").exists()


def test_cli_passes_seeds_to_the_chapters(monkeypatch):
    from types import SimpleNamespace

    from igkd_lib.config import make_config

    calls = []
    monkeypatch.setattr(book, "build", lambda profile, **kw: calls.append((profile, kw)))
    book.cli(make_config("smoke"), SimpleNamespace(force=False))
    book.cli(make_config("quick", seeds=[0, 1, 2]), SimpleNamespace(force=True))
    assert calls[0] == ("smoke", {"force": False, "parameters": None})
    assert calls[1] == ("quick", {"force": True, "parameters": {"seeds": [0, 1, 2]}})


@pytest.mark.slow
@pytest.mark.browser
def test_overlay_sliders_work_in_the_static_site(site):
    """Issue 7: the built chapter 3 page, no kernel, every non-file request blocked and counted."""
    from test_views_browser import _assert_view_behaves, _require_browser, check_view

    _require_browser()
    page = site / "notebooks" / "03_overlay_augmentation.html"
    screenshot = site / "_static" / "overlay_explorer_paper_setting.png"  # kept in the build output
    report = check_view(page, ".igkd-overlay", screenshot)
    _assert_view_behaves(report)
    assert screenshot.is_file()


def test_time_table_lists_every_page_its_share_and_the_total():
    runs = [book.ChapterRun(ROOT / "notebooks" / "02_precomputing_maps.ipynb", ROOT / "x", 90.0, False),
            book.ChapterRun(ROOT / "book" / "results_summary.ipynb", ROOT / "y", 0.5, True)]
    table = book.time_table(runs, 9.5)
    lines = table.splitlines()
    assert "notebooks/02_precomputing_maps.ipynb" in table and "book/results_summary.ipynb" in table
    assert any(line.startswith("notebooks/02") and "90.0" in line and "90.0%" in line for line in lines)
    assert any("results_summary" in line and "up to date" in line for line in lines)
    assert any(line.startswith("Jupyter Book") and "9.5" in line for line in lines)
    assert lines[-1].split()[:2] == ["total", "100.0"] and "1.7 min" in lines[-1]
