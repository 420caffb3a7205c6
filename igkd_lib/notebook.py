"""What every chapter does first: build its config from the ``parameters`` cell and say where it runs.

``config = chapter_setup(profile, **overrides)`` is the one way a notebook gets its configuration;
it prints the provenance line (profile, seeds, data source, device, commit) that stands beside
every result of the chapter.
"""
from __future__ import annotations

import torch

from .config import Config, make_config
from .provenance import provenance_line, resolve_device

__all__ = ["chapter_setup", "caption", "figure_note"]


def chapter_setup(profile: str, **overrides) -> Config:
    """A validated config for a chapter; prints its provenance line. Empty overrides are ignored."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    config = make_config(profile, **overrides)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    resolve_device(config.device)  # fail early on an absent device
    print(provenance_line(config))
    return config


def caption(config: Config, data_source: str | None = None, what: str = "") -> str:
    """A figure or table caption that carries the provenance line."""
    line = provenance_line(config, data_source)
    return f"{what} — {line}" if what else line


def figure_note(text: str, figure=None) -> None:
    """Show ``figure`` (a matplotlib Figure, then closed) and print under it ``text`` (a provenance line,
    :func:`caption`). The line is a text stream, not a display, so the book's figure caption (cell metadata
    ``mystnb.figure``) wraps the image alone; the book's stylesheet sets it small and wrapping."""
    if figure is not None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        display(figure)
        plt.close(figure)
    print(text, flush=True)
