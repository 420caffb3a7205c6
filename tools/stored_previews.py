"""Shrink the figures stored in the notebooks to previews: half their width and height, PNG optimised.

    python tools/stored_previews.py notebooks/*.ipynb book/findings.ipynb book/results_summary.ipynb

The stored notebooks' outputs are what a reader of the repository (or of Colab, before running) sees; the book
renders its own figures from fresh executions, and nbval compares no image. Every checkout travels to a GPU window
within 64 MiB, so the previews keep it lighter (2.08 MiB of figures became 1.16 MiB on 2026-12-05). Each preview
keeps its display size (the output's ``metadata["image/png"]`` width and height); a figure whose preview would be
larger (a small plot: smoothed edges compress worse) is kept as it is. Both are marked ``preview``, so a second run
leaves them alone. ``make notebooks`` runs this after executing them.
"""
from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import nbformat
from PIL import Image

SCALE = 2  # each side divided by this


def shrink_png(encoded: str) -> tuple[str, int, int]:
    """A base64 PNG -> (its preview, base64; the original width and height in pixels)."""
    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    width, height = image.size
    small = image.resize((max(1, width // SCALE), max(1, height // SCALE)), Image.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii"), width, height


def shrink_notebook(path: Path) -> tuple[int, int]:
    """Make every PNG output of the notebook at ``path`` a preview (in place); returns (bytes before, after) of the
    figures it changed."""
    nb = nbformat.read(path, as_version=4)
    before = after = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            encoded = output.get("data", {}).get("image/png")
            if not encoded or output.get("metadata", {}).get("image/png", {}).get("preview"):
                continue
            shown = output.setdefault("metadata", {}).setdefault("image/png", {})
            preview, width, height = shrink_png(encoded)
            if len(preview) < len(encoded):  # a small plot can come out larger (smoothed edges compress worse)
                output["data"]["image/png"] = preview
                shown.update({"width": shown.get("width", width), "height": shown.get("height", height)})
            shown["preview"] = True
            before, after = before + len(encoded), after + len(output["data"]["image/png"])
    if before:
        nbformat.write(nb, path)
    return before, after


def main(paths: list[str]) -> int:
    if not paths:
        print("usage: python tools/stored_previews.py NOTEBOOK.ipynb ...", file=sys.stderr)
        return 2
    for name in paths:
        before, after = shrink_notebook(Path(name))
        if before:
            print(f"{name}: figures {before / 2**20:.2f} MiB -> {after / 2**20:.2f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
