"""Where the checkout's own folders are: the one place that knows the repository's layout."""
from __future__ import annotations

from pathlib import Path

__all__ = ["PACKAGE", "CHECKOUT", "RESULTS_DIR", "LATENCY_DIR"]

PACKAGE = Path(__file__).resolve().parent  # igkd_lib/ itself: its weights/ and tables/ live here
CHECKOUT = PACKAGE.parent  # the repository root (igkd_lib's parent)
RESULTS_DIR = CHECKOUT / "results"  # committed results: results/<profile>/runs.csv, results/latency/
LATENCY_DIR = RESULTS_DIR / "latency"
