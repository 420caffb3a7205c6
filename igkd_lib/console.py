"""What the command line prints: every subcommand's tables go through :func:`print_table`.

The subcommands themselves are wired in :mod:`igkd_lib.cli`; each module's ``cli(config, args)``
prints its results with this one formatter (no index, one float format, a title line).
"""
from __future__ import annotations

__all__ = ["print_table"]


def print_table(table, columns: list[str] | None = None, digits: str = ".2f", title: str | None = None) -> None:
    """Print a pandas table: no index, floats with ``digits`` (a format spec), only the ``columns`` it has
    (default all), under a ``title`` line after a blank one."""
    if title is not None:
        print(f"\n{title}")
    shown = table if columns is None else table[[c for c in columns if c in table]]
    print(shown.to_string(index=False, float_format=lambda v: format(v, digits)))
