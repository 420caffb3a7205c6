"""What every chapter does first: build its config from the ``parameters`` cell and say where it runs.

``config = chapter_setup(profile, overrides, **named)`` is the one way a notebook gets its
configuration: ``profile`` and ``overrides`` (any Config field -> value; ``make book SET=...`` and
``python -m igkd_lib book --set key=value`` fill it in every chapter) come from the ``parameters``
cell, ``named`` from the chapter's own parameters. It prints the provenance line (profile, seeds, data
source, device, commit) that stands beside every result of the chapter.
"""
from __future__ import annotations

import html as _html
import json
from collections.abc import Mapping

import torch

from igkd_lib.config import Config, ConfigError, make_config
from igkd_lib.data.cifar10 import source_label
from igkd_lib.provenance import provenance_line, resolve_device

__all__ = ["chapter_setup", "caption", "figure_note", "table_note", "pipe_table", "prepare_runtime", "list_parameter"]


def chapter_setup(profile: str, overrides: Mapping | str | None = None, **named) -> Config:
    """A validated config for a chapter, ``make_config(profile, **named, **overrides)``; prints its provenance line.

    ``named`` values that are None are left out (the profile's); ``overrides`` (a mapping, or its JSON text
    as ``papermill -p`` passes it) win over ``named``.
    """
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides or "{}")
        except ValueError:
            raise ConfigError(f"overrides={overrides!r} is not allowed; allowed: a mapping of config fields to "
                              "values, or its JSON text, e.g. '{\"student_epochs\": 2}'") from None
    if not isinstance(overrides, Mapping if overrides is not None else type(None)):
        raise ConfigError(f"overrides={overrides!r} is not allowed; allowed: a mapping of config fields to values")
    values = {**{k: v for k, v in named.items() if v is not None}, **(overrides or {})}
    config = make_config(profile, **values)
    prepare_runtime(config)
    print(provenance_line(config, source_label(config)))
    return config


def prepare_runtime(config: Config) -> torch.device:
    """Apply ``num_threads`` and check that ``device`` exists here (before any work); returns the device.

    Shared by the chapters and the command line, so ``--set num_threads=N`` means what it means in a notebook.
    """
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device={config.device!r} is not available here; allowed: cuda:0 to "
                          f"cuda:{torch.cuda.device_count() - 1}, cuda, auto, cpu")
    return device


def list_parameter(name: str, value, kind: type = str, allowed=None) -> list | None:
    """A list parameter of a chapter, however papermill passed it; None stays None.

    ``-p methods kd_ig`` arrives as the string ``"kd_ig"`` (one item), ``-p methods kd,kd_ig`` as a
    comma-separated string, ``-p methods '["kd", "kd_ig"]'`` as JSON, ``-p p_values 0.1`` as a number:
    each becomes a list of ``kind``. An item that does not convert, or is not in ``allowed``, raises
    :class:`ConfigError` naming the parameter.
    """
    if value is None:
        return None
    items = value
    if isinstance(value, str):
        text = value.strip()
        try:
            items = json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a list; write it as a JSON list, e.g. '[\"a\", \"b\"]', "
                              "or comma-separated, e.g. a,b") from None
    elif not isinstance(value, (list, tuple)):
        items = [value]
    try:
        out = [_convert(item, kind) for item in items]
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} is not allowed; allowed: a list of {kind.__name__}") from None
    bad = [item for item in out if allowed is not None and item not in allowed]
    if not out or bad:
        raise ConfigError(f"{name}={value!r} is not allowed; allowed: a non-empty list"
                          + (f" of {', '.join(map(str, allowed))}" if allowed is not None else ""))
    return out


def _convert(item, kind: type):
    if isinstance(item, bool) or (kind is int and isinstance(item, float) and not item.is_integer()):
        raise TypeError(item)
    if kind is str and not isinstance(item, str):
        raise TypeError(item)
    return kind(item)


def caption(config: Config, data_source: str | None = None, what: str = "") -> str:
    """A figure or table caption that carries the provenance line (the data source resolved from ``config`` when
    not given)."""
    line = provenance_line(config, data_source or source_label(config))
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


def table_note(table, title: str, name: str, text: str | None = None) -> None:
    """Show ``table`` (a DataFrame) as the book's numbered "Table N: ``title``", then print ``text`` under it
    (a provenance line, :func:`caption`).

    One output, two forms: HTML (what Jupyter and Colab show) and a MyST ``{table}`` directive with the
    label ``name`` (what the book shows, numbered; the cell's metadata ``mystnb.markdown_format`` must be
    ``"myst"`` and ``_config.yml`` ranks Markdown above HTML). An empty table (e.g. a comparison with
    nothing to compare at a small profile) shows as one sentence instead, without a number.
    """
    from IPython.display import display

    for label, value in (("title", title), ("name", name)):
        if not isinstance(value, str) or not value.strip() or "\n" in value:
            raise ValueError(f"{label}={value!r} is not allowed; allowed: a one-line, non-empty string")
    if table.empty:  # no rows (or no columns): a sentence, since a table directive needs a table
        line = f"{title}: nothing to show in this build (no rows)."
        display({"text/html": f"<p><em>{_html.escape(line)}</em></p>", "text/markdown": f"*{line}*",
                 "text/plain": line}, raw=True)
    else:
        directive = f"```{{table}} {title}\n:name: {name}\n\n{pipe_table(table)}\n```"
        display({"text/html": table.to_html(), "text/markdown": directive, "text/plain": table.to_string()}, raw=True)
    if text:
        print(text, flush=True)


def pipe_table(table) -> str:
    """``table`` (a DataFrame) as a Markdown pipe table: its index too unless it is the default 0..n-1."""
    import pandas as pd

    frame = table if isinstance(table.index, pd.RangeIndex) and table.index.name is None else table.reset_index()
    cell = lambda value: ("NaN" if _is_nan(value) else str(value)).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    header = [cell(column) for column in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _is_nan(value) -> bool:
    return isinstance(value, float) and value != value
