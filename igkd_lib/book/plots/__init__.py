"""Figures of the book, one module per subject: ``maps``, ``overlay``, ``results``, ``latency``, ``beyond``, ``robustness``.

Every figure is drawn ``WIDTH`` inches wide with text of at least ``FONT`` points: the book shows it
at the column's width (about 750 px at a 1280 px window), so a label is about as large as the body
text. Titles say what a figure shows; the provenance goes in the caption line under it
(:func:`igkd_lib.book.notebook.figure_note`).
"""
WIDTH = 7.5  # inches; the book's column is about 7.5 in at matplotlib's 100 dpi
FONT = 9  # smallest font size (points) used in a figure

MODULES = ("maps", "overlay", "results", "latency", "beyond", "robustness")
__all__ = ["WIDTH", "FONT", "MODULES"]
