"""The overlay explorer in a real browser: Debian's headless Chromium driven by Playwright.

Every non-``file:`` request is blocked and counted. :func:`check_view` takes any HTML file and a
CSS selector for the view's root, so the same checks run on the book's built chapter page:

    IGKD_VIEW_PAGE=_build/html/notebooks/03_overlay.html pytest tests/test_views_browser.py -m browser

``IGKD_VIEW_SELECTOR`` (default ``.igkd-overlay``) picks the view; ``IGKD_VIEW_SCREENSHOT`` is where
the screenshot of the view at the paper's setting goes (default: pytest's tmp folder).
Without ``/usr/bin/chromium`` the tests skip, except under ``CI`` or ``IGKD_REQUIRE_BROWSER=1`` (set by
``make test``, which installs chromium first) where they fail.
"""
from __future__ import annotations

import base64
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from igkd_lib.book import views

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("IGKD_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
P_VALUES = (0.0, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0)


def _require_browser() -> None:
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright Python package is missing (pip install playwright)"
    required = any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("CI", "IGKD_REQUIRE_BROWSER"))
    if problem and required:
        pytest.fail(f"browser tests must run under CI and make test: {problem}")
    if problem:
        pytest.skip(f"no browser: {problem}")


@contextmanager
def _page(width: int = 900, height: int = 900):
    """A fresh headless Chromium page (viewport ``width`` x ``height`` px); yields (page, blocked) where
    blocked lists refused URLs."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []

    def route(request_route):
        url = request_route.request.url
        if url.startswith("file:"):
            request_route.continue_()
        else:
            blocked.append(url)
            request_route.abort()

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(profile, executable_path=str(CHROMIUM), headless=True,
                                                            args=ARGS, viewport={"width": width, "height": height})
        try:
            context.route("**/*", route)
            context.on("websocket", lambda ws: blocked.append(ws.url))
            yield context.new_page(), blocked
        finally:
            context.close()


# --------------------------------------------------------------------------- in-page helpers
_SET = """(root, [name, value]) => { const el = root.querySelector(`input[name=${name}]`);
  el.value = String(value); el.dispatchEvent(new Event('input', {bubbles: true})); return el.value; }"""
_PIXELS = """(root) => Array.from(root.querySelectorAll('canvas')).map(c => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let s = ''; for (let k = 0; k < d.length; k++) { s += String.fromCharCode(d[k]); } return btoa(s); })"""


def _pixels(root, height: int, width: int) -> np.ndarray:
    """uint8 (N, 3, H, W): what every canvas of the view shows now."""
    rgba = [np.frombuffer(base64.b64decode(b), dtype=np.uint8).reshape(height, width, 4)
            for b in root.evaluate(_PIXELS)]
    return np.stack([a[..., :3].transpose(2, 0, 1) for a in rgba])


def _embedded(root) -> dict:
    data = json.loads(root.evaluate("(r) => r.querySelector('script.igkd-data').textContent"))
    n, h, w = data["n"], data["height"], data["width"]
    data["images"] = np.frombuffer(base64.b64decode(data["images"]), np.uint8).reshape(n, 3, h, w)
    data["maps"] = np.frombuffer(base64.b64decode(data["maps"]), np.uint8).reshape(n, h, w)
    data["draws"] = np.asarray(data["draws"])
    return data


def _show(root, p: float, w: float, data: dict) -> np.ndarray:
    root.evaluate(_SET, ["p", p])
    root.evaluate(_SET, ["blend", w])
    return _pixels(root, data["height"], data["width"])


def check_view(html_path: str | Path, selector: str = ".igkd-overlay", screenshot: str | Path | None = None) -> dict:
    """Open ``html_path``, move the sliders of the view at ``selector`` and report what was shown.

    Returns a dict: ``data`` (decoded embedded data), ``pixels`` {(p, w): uint8 (N, 3, H, W)},
    ``counts`` {p: (images that differ from the original at w=0.5, shown count attribute)},
    ``keyboard`` (p before, p after one ArrowRight), ``summary`` (text at the paper's point),
    ``blocked`` (every non-file URL the page tried to load).
    """
    with _page() as (page, blocked):
        page.goto(Path(html_path).resolve().as_uri())
        root = page.locator(selector).first
        page.wait_for_function("(r) => r.getAttribute('data-ready') === 'true'", arg=root.element_handle())
        data = _embedded(root)
        pixels = {(p, w): _show(root, p, w, data) for p, w in ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0))}
        counts = {}
        for p in P_VALUES:
            shown = _show(root, p, 0.5, data)
            changed = int((shown != data["images"]).reshape(len(shown), -1).any(axis=1).sum())
            counts[p] = (changed, int(root.get_attribute("data-overlaid-count")))
        root.evaluate(_SET, ["p", 0.2])
        root.locator("input[name=p]").focus()
        before = root.locator("input[name=p]").input_value()
        page.keyboard.press("ArrowRight")
        keyboard = (float(before), float(root.locator("input[name=p]").input_value()),
                    root.locator("output").first.inner_text())
        root.locator("button.igkd-reset").click()
        pixels[(views.PAPER_P, views.PAPER_BLEND)] = _pixels(root, data["height"], data["width"])
        summary = root.locator(".igkd-summary").inner_text() + "\n" + root.locator(".igkd-measured").inner_text()
        if screenshot is not None:
            root.screenshot(path=str(screenshot))
        page.wait_for_timeout(100)  # let any late request show up in the count
        return {"data": data, "pixels": pixels, "counts": counts, "keyboard": keyboard, "summary": summary,
                "blocked": list(blocked)}


def _assert_view_behaves(report: dict) -> None:
    data, pixels = report["data"], report["pixels"]
    assert np.array_equal(pixels[(1.0, 0.0)], data["images"]), "w=0 must show the original images"
    assert np.array_equal(pixels[(0.0, 1.0)], data["images"]), "p=0 must show the original images"
    expected_map = np.broadcast_to(data["maps"][:, None], data["images"].shape)
    assert np.array_equal(pixels[(1.0, 1.0)], expected_map), "p=1, w=1 must show the normalised maps"
    for p, (changed, shown) in report["counts"].items():
        below = int((data["draws"] < p).sum())
        assert changed == below == shown, f"at p={p}: {changed} images changed, {shown} shown, {below} draws < p"
    before, after, label = report["keyboard"]
    assert after == pytest.approx(before + 0.01) and label == f"{after:.2f}", "ArrowRight must move p by one step"
    assert report["blocked"] == [], f"requests left the page: {report['blocked']}"


# --------------------------------------------------------------------------- tests
def _synthetic(n: int = 16, seed: int = 3):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    maps = rng.gamma(2.0, 1.0, (n, 32, 32))
    maps[0] = 0.0  # a constant map must not break the view
    return images, maps


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    _require_browser()
    import pandas as pd

    images, maps = _synthetic()
    results = pd.DataFrame({"p": [0.1, 0.1, 0.5], "blend": [0.5, 0.5, 0.25], "accuracy": [0.70, 0.72, 0.61],
                            "profile": ["quick"] * 3})
    explorer = views.overlay_explorer(images, maps, seed=5, results=results, provenance="profile=synthetic")
    folder = tmp_path_factory.mktemp("view")
    page = explorer.save(folder / "explorer.html")
    shot = Path(os.environ.get("IGKD_VIEW_SCREENSHOT") or folder / "overlay_explorer.png")
    return explorer, check_view(page, screenshot=shot), shot


def test_view_behaves_in_chromium(synthetic_report):
    _, report, _ = synthetic_report
    _assert_view_behaves(report)


def test_view_shows_what_python_computes(synthetic_report):
    explorer, report, _ = synthetic_report
    data = report["data"]
    assert np.array_equal(data["images"], explorer.images) and np.array_equal(data["maps"], explorer.maps)
    assert np.array_equal(data["draws"], explorer.draws)
    for (p, w), shown in report["pixels"].items():
        assert np.array_equal(shown, explorer.blended(p, w)), f"browser and Python differ at p={p}, w={w}"


def test_view_reports_fraction_and_measured_accuracy(synthetic_report):
    explorer, report, shot = synthetic_report
    count = int(explorer.overlaid(views.PAPER_P).sum())
    assert f"Overlaid: {count} of 16 images" in report["summary"]
    assert "71.00% (mean of 2 distinct runs, profile quick)" in report["summary"]
    assert shot.is_file() and shot.stat().st_size > 1000


def test_blocked_requests_are_counted(tmp_path):
    _require_browser()
    images, maps = _synthetic(4)
    page = views.overlay_explorer(images, maps).save(tmp_path / "leaky.html")
    page.write_text(page.read_text().replace("<body>", '<body><img src="http://example.invalid/x.png">'))
    report = check_view(page)
    assert report["blocked"] == ["http://example.invalid/x.png"]


def _measured_text(explorer: views.OverlayExplorer, tmp_path: Path, settings) -> list[str]:
    """The measured-accuracy line of the saved ``explorer`` at each (p, w) of ``settings``."""
    page = explorer.save(tmp_path / "explorer.html")
    with _page() as (tab, _):
        tab.goto(page.resolve().as_uri())
        root = tab.locator(".igkd-overlay").first
        tab.wait_for_function("(r) => r.getAttribute('data-ready') === 'true'", arg=root.element_handle())
        texts = []
        for p, w in settings:
            root.evaluate(_SET, ["p", p])
            root.evaluate(_SET, ["blend", w])
            texts.append(root.locator(".igkd-measured").inner_text())
        return texts


def test_no_overlay_is_never_paired_with_an_overlay_run_and_no_runs_is_said(tmp_path):
    _require_browser()
    import pandas as pd

    images, maps = _synthetic(4)
    results = pd.DataFrame({"p": [0.1, 0.0], "blend": [0.05, 0.5], "accuracy": [70.0, 60.0], "profile": "quick"})
    at_w0, at_p0, on = _measured_text(views.overlay_explorer(images, maps, results=results), tmp_path,
                                      [(0.1, 0.0), (0.0, 0.0), (0.1, 0.1)])
    assert "(p = 0, w = 0.5): 60.00%" in at_w0 and "(p = 0, w = 0.5)" in at_p0, "w = 0 must pair with the p = 0 run"
    assert "(p = 0.1, w = 0.05): 70.00%" in on
    only_overlay = views.overlay_explorer(images, maps, results=results.iloc[:1])
    assert _measured_text(only_overlay, tmp_path, [(0.1, 0.0)]) == ["No run without overlay was measured."]
    assert "No finished runs to show" in _measured_text(views.overlay_explorer(images, maps), tmp_path, [(0.1, 0.5)])[0]


@pytest.mark.skipif(not os.environ.get("IGKD_VIEW_PAGE"), reason="set IGKD_VIEW_PAGE to check a built book page")
def test_book_page_view(tmp_path):
    _require_browser()
    shot = os.environ.get("IGKD_VIEW_SCREENSHOT") or tmp_path / "book_overlay_explorer.png"
    report = check_view(os.environ["IGKD_VIEW_PAGE"], os.environ.get("IGKD_VIEW_SELECTOR", ".igkd-overlay"), shot)
    _assert_view_behaves(report)
