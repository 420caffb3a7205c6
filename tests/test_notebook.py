"""igkd_lib.notebook: the chapter setup's provenance line and the note printed under a figure."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from igkd_lib.notebook import figure_note  # noqa: E402


def test_figure_note_shows_the_figure_then_prints_the_line_and_closes_it(capsys, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    fig = plt.figure()
    figure_note("profile=smoke · commit=abc", fig)
    assert shown == [fig] and not plt.fignum_exists(fig.number)
    assert capsys.readouterr().out == "profile=smoke · commit=abc\n"
