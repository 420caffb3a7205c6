"""The book builds on the smoke profile: every page exists, shows its figures, and carries its provenance.

The module fixture builds the site once (Jupyter Book, warnings as errors) into a temporary folder
from the stored notebooks, which are executed on the smoke profile and validated by nbval
(``make test``). Set ``IGKD_TEST_BOOK_EXECUTE=1`` to re-execute every page with papermill first, or
``IGKD_TEST_SITE=_build/html`` to check a site already built. The browser check of every page saves
full-page screenshots beside the site's html folder, in ``screenshots/``.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from igkd_lib.book import build as book

ROOT = book.ROOT
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CHAPTERS = [Path(f + ".ipynb") for f in book._toc_files(TOC) if f.startswith("notebooks/")]
_IMG = re.compile(r"<img[^>]*\ssrc=\"([^\"]+)\"")
_ERROR = re.compile(r"Traceback \(most recent call last\)|class=\"[^\"]*\b(traceback|output error)\b")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The built site's html folder (built once per test module; ``IGKD_TEST_SITE`` names an already built one,
    e.g. ``_build/html`` after ``make book``)."""
    if os.environ.get("IGKD_TEST_SITE"):
        return Path(os.environ["IGKD_TEST_SITE"]).resolve()
    site_root = tmp_path_factory.mktemp("site")
    if os.environ.get("IGKD_TEST_BOOK_EXECUTE") == "1":
        index = book.build("smoke", site_root=site_root, progress=False).index
    else:
        index = book.stage_and_build("smoke", site_root=site_root, executed_dir=site_root / "none")
    assert index.exists()
    return index.parent


def test_toc_lists_the_chapters_in_order_after_the_findings():
    toc = book._toc_files(TOC)
    numbers = [Path(f).name[:2] for f in toc if f.startswith("notebooks/")]
    assert numbers == ["01", "02", "03", "04", "05", "06", "07", "08"]
    assert toc[0] == "book/findings"  # right after the introduction (the root)
    assert toc[-2:] == ["book/results_summary", "book/references"]


def test_summary_pages_execute_after_every_chapter(tmp_path):
    """The findings page reads the runs the chapters leave in the cache: it runs last, with the results summary."""
    order = book.execution_order(book.chapters_from_toc())
    assert sorted(order) == sorted(book.chapters_from_toc())  # every page once
    assert [str(p) for p in order[-2:]] == ["book/findings.ipynb", "book/results_summary.ipynb"]
    chapters = [p for p in order if p.parts[0] == "notebooks"]
    assert chapters == sorted(chapters)  # the chapters keep their reading order


def test_execute_rejects_a_missing_chapter(tmp_path):
    with pytest.raises(ValueError, match="chapters"):
        book.execute_chapters("smoke", tmp_path, chapters=["notebooks/99_missing.ipynb"], progress=False)


def test_no_page_waits_for_another_and_the_injected_parameters_are_hidden(tmp_path):
    """Issue 15: chapter 3 runs in reading order (it reads whatever runs exist); papermill's injected cell is
    tagged remove-cell when staged, so the page does not show it."""
    for page in book.chapters_from_toc():
        assert "execute_after" not in nbformat.read(ROOT / page, as_version=4).metadata.get("igkd", {}), page
    from nbformat.v4 import new_output

    injected = new_code_cell('profile = "quick"')
    injected.metadata["tags"] = ["injected-parameters"]
    split = new_code_cell("print(1)", outputs=[new_output("stream", name="stdout", text="a line"),
                                               new_output("stream", name="stdout", text="\n"),
                                               new_output("display_data", data={"text/plain": "x"}),
                                               new_output("stream", name="stdout", text="under\n")])
    nbformat.write(new_notebook(cells=[injected, split]), tmp_path / "in.ipynb")
    book._copy_without_plumbing(tmp_path / "in.ipynb", tmp_path / "out.ipynb")
    cells = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells
    assert cells[0].metadata["tags"] == ["injected-parameters", "remove-cell"] and "tags" not in cells[1].metadata
    assert [o.get("text") for o in cells[1].outputs] == ["a line\n", None, "under\n"]  # joined, order kept


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


def test_the_kernels_of_a_book_run_are_batch_runs(tmp_path, monkeypatch):
    """make book's kernels see IGKD_BATCH, so training prints one line per epoch instead of widget bars."""
    import papermill

    from igkd_lib.training.loop import BATCH_ENV, interactive

    seen = []

    def fake_execute(source, output, **kwargs):
        seen.append((os.environ.get(BATCH_ENV), interactive()))
        Path(output).write_text(Path(source).read_text())

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.delenv(BATCH_ENV, raising=False)
    _tiny_notebook(tmp_path / "notebooks" / "00_tiny.ipynb")
    book.execute_chapters("smoke", tmp_path / "out", chapters=["notebooks/00_tiny.ipynb"], progress=False,
                          root=tmp_path)
    assert seen == [("1", False)] and BATCH_ENV not in os.environ  # set for the kernel, restored after
    monkeypatch.setenv(BATCH_ENV, "0")
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    monkeypatch.delitem(sys.modules, "papermill")  # imported above: papermill in this process is a batch run
    assert interactive()  # "0" is not a batch run: a live kernel shows bars


PAGES = [Path(f + ".ipynb") for f in book._toc_files(TOC)
         if (ROOT / (f + ".ipynb")).exists() or f.startswith("notebooks/")]


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


def test_cli_forwards_every_set_override_to_every_chapter(monkeypatch):
    from igkd_lib import cli
    from igkd_lib.book.notebook import chapter_setup

    calls = []
    monkeypatch.setattr(book, "build", lambda profile, **kw: calls.append((profile, kw)))
    assert cli.main(["book", "--profile", "smoke"]) == 0
    assert cli.main(["book", "--profile", "quick", "--force", "--set", "seeds=0,1,2", "--set", "student_epochs=2",
                     "--set", "map_alignment=official"]) == 0
    assert calls[0] == ("smoke", {"force": False, "parameters": None})
    overrides = {"seeds": [0, 1, 2], "student_epochs": 2, "map_alignment": "official"}
    assert calls[1] == ("quick", {"force": True, "parameters": {"overrides": overrides}})
    # what a chapter's setup cell makes of the papermill parameter (a mapping, or JSON text from `papermill -p`)
    for given in (overrides, json.dumps(overrides)):
        config = chapter_setup("quick", given, seeds=None, p=None)
        assert (config.seeds, config.student_epochs, config.map_alignment) == ((0, 1, 2), 2, "official")


def test_every_chapter_takes_overrides_and_passes_them_to_its_setup():
    for page in book.chapters_from_toc():
        cells = nbformat.read(ROOT / page, as_version=4).cells
        parameters = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
        assert "overrides = {}" in parameters.source, page
        assert any("chapter_setup(profile, overrides" in c.source for c in cells if c.cell_type == "code"), page


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


# --------------------------------------------------------------------------- the pages as a reader sees them
READER_WIDTH = 1280
# Run in the page: what a reader at READER_WIDTH px would find wrong (issue 15). Scrollable tables are
# allowed to be wider than the column; anything else that is wider, or scrolls/clips, is reported.
_READER_CHECK = r"""() => {
  const article = document.querySelector('article.bd-article');
  const column = article.getBoundingClientRect();
  const problems = [];
  const name = el => el.tagName.toLowerCase() + ' "' + ((el.innerText || el.getAttribute('alt') || el.textContent || '')
      .trim().replace(/\s+/g, ' ').slice(0, 70)) + '"';
  const visible = el => el.offsetParent !== null || el.getClientRects().length > 0;
  const scrolls = el => ['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(el).overflowX);
  const tableScroller = el => scrolls(el) && el.querySelector('table') !== null;
  const inScroller = (el, top) => { for (let a = el.parentElement; a && a !== top; a = a.parentElement) {
      if (scrolls(a)) return true; } return false; };
  const blocks = Array.from(article.querySelectorAll('.cell_output, div.math'));
  for (const block of blocks) {
    for (const el of [block, ...block.querySelectorAll('*')]) {
      if (!visible(el) || ['script', 'style'].includes(el.tagName.toLowerCase())) continue;
      if (el.closest('mjx-assistive-mml')) continue;  // MathJax's screen-reader copy, clipped on purpose
      const r = el.getBoundingClientRect();
      if (r.width === 0) continue;
      if (!inScroller(el, block) && (r.right > column.right + 1 || r.left < column.left - 1))
        problems.push('wider than the column (' + Math.round(r.width) + ' px > ' + Math.round(column.width) +
                      ' px): ' + name(el));
      if (scrolls(el) && el.scrollWidth > el.clientWidth + 1 && !tableScroller(el))
        problems.push('clipped (' + el.scrollWidth + ' px in ' + el.clientWidth + ' px): ' + name(el));
    }
  }
  const images = Array.from(article.querySelectorAll('.cell_output img'));
  for (const img of images) {
    const r = img.getBoundingClientRect();
    if (r.width < 0.6 * column.width)
      problems.push('figure ' + Math.round(r.width) + ' px wide, under 60 % of the ' + Math.round(column.width) +
                    ' px column: ' + img.getAttribute('src'));
    const alt = (img.getAttribute('alt') || '').trim();
    if (alt.length < 10 || /\.(png|jpe?g|svg)$/i.test(alt))
      problems.push('figure without alt text: ' + img.getAttribute('src'));
    const figure = img.closest('figure');
    const caption = figure && figure.querySelector('figcaption');
    if (!caption || caption.innerText.trim().length < 10)
      problems.push('figure without a caption: ' + img.getAttribute('src'));
    const number = caption && caption.querySelector('.caption-number');
    if (!number || !/^Figure \d+/.test(number.innerText.trim()))
      problems.push('figure without a number: ' + img.getAttribute('src'));
  }
  for (const table of article.querySelectorAll('.cell_output table[id^="tbl-"]')) {  // book.notebook.table_note
    const number = table.querySelector('caption .caption-number');
    if (!number || !/^Table \d+/.test(number.innerText.trim())) problems.push('table without a number: ' + table.id);
    const box = table.parentElement.getBoundingClientRect();  // the caption scrolls with its table: at rest,
    for (const part of table.querySelectorAll('caption span')) {  // it must be readable within the column
      const r = part.getBoundingClientRect();
      if (r.width > 0 && (r.right > Math.min(box.right, column.right) + 1 || r.left < column.left - 1))
        problems.push('table caption cut off at the column: ' + table.id);
    }
  }
  if (/```\{table\}|:name: tbl-/.test(article.innerText)) problems.push('a numbered table shown as its MyST source');
  for (const el of article.querySelectorAll('.cell_output .stderr, .cell_output .output.traceback'))
    if (visible(el)) problems.push('stderr/traceback output: ' + name(el));
  for (const cell of article.querySelectorAll('.cell'))
    if (visible(cell) && /NBVAL|papermill|injected-parameters/i.test(cell.innerText))
      problems.push('plumbing text visible: ' + name(cell));
  if (/np\.float(32|64)\(/.test(article.innerText)) problems.push('a numpy scalar repr (np.float64(...)) is shown');
  return {problems: problems, column: column.width, images: images.length};
}"""


# True once MathJax has typeset every formula of the page (or the page has none).
_MATH_TYPESET = """() => { const math = document.querySelectorAll('article .math').length;
  return math === 0 || (window.MathJax !== undefined && MathJax.startup !== undefined
    && document.querySelectorAll('article mjx-container').length >= math); }"""


def read_pages(site: Path, pages: list[str], screenshots: Path | None = None) -> dict:
    """{page: report} for every built ``page`` (html path relative to ``site``) at READER_WIDTH px.

    Saves a full-page screenshot of each page under ``screenshots`` when given.
    """
    from test_views_browser import _page

    reports = {}
    with _page(READER_WIDTH, 900) as (tab, _):
        for page in pages:
            tab.goto((site / page).resolve().as_uri())
            # index.html is a meta-refresh redirect: wait for the page it leads to (on a busy machine the
            # check could otherwise run on the redirect page itself, which has no article)
            tab.wait_for_selector("article.bd-article", state="attached")
            tab.wait_for_load_state("load")
            tab.wait_for_function(_MATH_TYPESET)
            tab.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
            reports[page] = tab.evaluate(_READER_CHECK)
            if screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                tab.screenshot(path=str(screenshots / (page.replace("/", "__").replace(".html", ".png"))),
                               full_page=True)
    return reports


HTML_PAGES = ["index.html"] + [f + ".html" for f in book._toc_files(TOC)]


@pytest.mark.slow
@pytest.mark.browser
def test_every_page_reads_well_at_1280px(site):
    """Issue 15: nothing wider than the column, figures >= 60 % of it with a numbered caption and alt text,
    numbered tables, no stderr, no plumbing. Full-page screenshots are kept in the build output
    (``_build/screenshots``)."""
    from test_views_browser import _require_browser

    _require_browser()
    reports = read_pages(site, HTML_PAGES, site.parent / "screenshots")
    problems = [f"{page}: {p}" for page, report in reports.items() for p in report["problems"]]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_plumbing_is_tagged_not_written_on_the_page(page):
    """Issue 15: nbval's markers are cell tags (which nbval honours), the Colab cell is removed from the page,
    the parameters cell is folded away, and every figure cell carries a caption and alt text."""
    from nbval.plugin import find_metadata_tags

    assert dict(find_metadata_tags({"tags": ["nbval-ignore-output"]})) == {"check": False}
    nb = nbformat.read(ROOT / page, as_version=4)
    # the calls that show a numbered table: table_note, show_coverage, and the page's own functions that call them
    shows = ["table_note(", "show_coverage("]
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        if any(call in cell.source for call in shows):
            shows += [f"{name}(" for name in re.findall(r"^def (\w+)\(", cell.source, flags=re.M)]
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        tags = cell.metadata.get("tags", [])
        assert "NBVAL" not in cell.source, f"{page}: an NBVAL comment; use the nbval-ignore-output tag"
        if cell.source.startswith("# On Colab"):
            assert "remove-cell" in tags, f"{page}: the Colab install cell must be tagged remove-cell"
        if "parameters" in tags:
            assert "hide-cell" in tags, f"{page}: the parameters cell must be tagged hide-cell"
        if "figure_note(" in cell.source and ", figure_note" not in cell.source:
            figure = cell.metadata.get("mystnb", {})
            assert figure.get("figure", {}).get("caption") and len(figure.get("image", {}).get("alt", "")) > 20, \
                f"{page}: a figure cell needs mystnb.figure.caption and mystnb.image.alt"
        calls = [call for call in shows if re.search(rf"(?<![\w.]){re.escape(call)}", cell.source)]
        if calls:
            assert cell.metadata.get("mystnb", {}).get("markdown_format") == "myst", \
                f"{page}: a cell calling {calls[0]}) shows a numbered table and needs mystnb.markdown_format = myst " \
                "(else its table shows as code)"


def test_time_table_lists_every_page_its_share_and_the_total():
    runs = [book.ChapterRun(ROOT / "notebooks" / "02_precomputing_maps.ipynb", ROOT / "x", 90.0, False),
            book.ChapterRun(ROOT / "book" / "results_summary.ipynb", ROOT / "y", 0.5, True)]
    table = book.time_table(runs, 9.5)
    lines = table.splitlines()
    assert "notebooks/02_precomputing_maps.ipynb" in table and "book/results_summary.ipynb" in table
    assert any(line.startswith("notebooks/02") and "90.0" in line and "90.0%" in line for line in lines)
    assert any("results_summary" in line and "up to date" in line for line in lines)
    assert any(line.startswith("Jupyter Book") and "9.5" in line for line in lines)
    assert lines[-1].split()[:2] == ["total", "100.0"] and "1 min 40 s" in lines[-1]
    assert "set-up not included" in lines[-1] and "set-up (" not in table


def test_time_table_counts_the_set_up_make_book_reports(monkeypatch):
    runs = [book.ChapterRun(ROOT / "notebooks" / "02_precomputing_maps.ipynb", ROOT / "x", 90.0, False)]
    monkeypatch.setenv(book.STARTED_ENV, str(time.time() - 30))
    setup = book.setup_seconds()
    assert 29 <= setup < 60
    lines = book.time_table(runs, 10.0, setup).splitlines()
    assert lines[2].startswith("set-up (") and lines[-1].startswith("total") and "set-up not included" not in lines[-1]
    assert float(lines[-1].split()[1]) == pytest.approx(100.0 + setup, abs=0.1)
    monkeypatch.setenv(book.STARTED_ENV, "yesterday")
    with pytest.raises(ValueError, match=book.STARTED_ENV):
        book.setup_seconds()
    monkeypatch.delenv(book.STARTED_ENV)
    assert book.setup_seconds() is None

def test_the_findings_page_hides_its_code():
    """Issue 28: the page a reader opens first shows results, not code: every code cell is removed, folded
    (the parameters) or has its input removed."""
    nb = nbformat.read(ROOT / "book" / "findings.ipynb", as_version=4)
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        tags = set(cell.metadata.get("tags", []))
        assert tags & {"remove-cell", "hide-cell", "remove-input"}, f"a visible code cell: {cell.source[:60]!r}"
