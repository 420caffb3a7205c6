"""tools/stored_previews.py: the stored notebooks' figures are half-size previews that keep their display size."""
import base64
import importlib.util
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("stored_previews", ROOT / "tools" / "stored_previews.py")
previews = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(previews)
STORED = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")) + [ROOT / "book" / "findings.ipynb",
                                                                ROOT / "book" / "results_summary.ipynb"]


def _png() -> str:
    fig, ax = plt.subplots(figsize=(4, 2), dpi=100)
    ax.plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def test_a_figure_becomes_a_preview_and_text_is_left_alone(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plot()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"}),
                    nbformat.v4.new_output("stream", name="stdout", text="provenance line\n")]
    nb.cells = [cell]
    path = tmp_path / "a.ipynb"
    nbformat.write(nb, path)
    before, after = previews.shrink_notebook(path)
    assert 0 < after < before
    out = nbformat.read(path, as_version=4).cells[0].outputs
    image = Image.open(io.BytesIO(base64.b64decode(out[0]["data"]["image/png"])))
    assert image.size == (200, 100) and out[0]["metadata"]["image/png"] == {"width": 400, "height": 200,
                                                                             "preview": True}
    assert out[0]["data"]["text/plain"] == "<Figure>" and out[1]["text"] == "provenance line\n"
    assert "metadata" not in out[1]
    nbformat.validate(nbformat.read(path, as_version=4))
    assert previews.shrink_notebook(path) == (0, 0)  # a preview is left alone


@pytest.mark.parametrize("page", STORED, ids=[p.stem for p in STORED])
def test_the_stored_notebooks_hold_previews(page):
    """``make notebooks`` shrinks what it stored: every checkout travels to a GPU window within 64 MiB."""
    nb = nbformat.read(page, as_version=4)
    figures = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert all(o.get("metadata", {}).get("image/png", {}).get("preview") for o in figures), \
        f"{page.name}: run `python tools/stored_previews.py {page.relative_to(ROOT)}` (make notebooks does)"
