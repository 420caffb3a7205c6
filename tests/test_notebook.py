"""igkd_lib.book.notebook: the chapter setup's provenance line and the note printed under a figure."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from igkd_lib.book.notebook import figure_note  # noqa: E402


def test_figure_note_shows_the_figure_then_prints_the_line_and_closes_it(capsys, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    fig = plt.figure()
    figure_note("profile=smoke · commit=abc", fig)
    assert shown == [fig] and not plt.fignum_exists(fig.number)
    assert capsys.readouterr().out == "profile=smoke · commit=abc\n"


def test_table_note_shows_html_and_a_numbered_myst_table_then_the_line(capsys, monkeypatch):
    import pandas as pd

    from igkd_lib.book.notebook import table_note

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append((obj, raw)))
    table = pd.DataFrame({"method": ["baseline", "kd"], "mean": [48.1, float("nan")]})
    table_note(table, "Final-epoch accuracy (%)", "tbl-x", "profile=quick · commit=abc")
    (bundle, raw), = shown
    assert raw and bundle["text/html"] == table.to_html()
    assert bundle["text/markdown"].splitlines()[:3] == ["```{table} Final-epoch accuracy (%)", ":name: tbl-x", ""]
    assert "| baseline | 48.1 |" in bundle["text/markdown"] and "| kd | NaN |" in bundle["text/markdown"]
    assert bundle["text/markdown"].endswith("\n```")
    assert capsys.readouterr().out == "profile=quick · commit=abc\n"


def test_an_empty_table_note_is_a_sentence_not_a_broken_table(capsys, monkeypatch):
    """A MyST table directive needs a table: an empty one (quick's chapter 8 compares no overlay sources)
    broke the Jupyter Book build."""
    import pandas as pd

    from igkd_lib.book.notebook import table_note
    from igkd_lib.evidence import stats

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append((obj, raw)))
    for empty in (pd.DataFrame(), stats.difference_table([], ("a", "b"), "case")):
        table_note(empty, "Sources against IG", "tbl-x", "profile=quick")
    for bundle, _ in shown:
        assert "{table}" not in bundle["text/markdown"] and "|" not in bundle["text/markdown"]
        assert bundle["text/plain"] == "Sources against IG: nothing to show in this build (no rows)."
    assert capsys.readouterr().out == "profile=quick\nprofile=quick\n"


def test_table_note_refuses_a_caption_the_directive_cannot_hold():
    import pandas as pd
    import pytest

    from igkd_lib.book.notebook import table_note

    for title, name in (("", "tbl-x"), ("two\nlines", "tbl-x"), ("ok", "")):
        with pytest.raises(ValueError, match="title|name"):
            table_note(pd.DataFrame({"a": [1]}), title, name)


def test_pipe_table_keeps_a_named_index_and_escapes_pipes():
    import pandas as pd

    from igkd_lib.book.notebook import pipe_table

    table = pd.DataFrame({"a|b": [1.5]}, index=pd.Index(["kd"], name="method"))
    assert pipe_table(table).splitlines() == ["| method | a\\|b |", "|---|---|", "| kd | 1.5 |"]
    assert pipe_table(pd.DataFrame({"x": [2]})).splitlines()[2] == "| 2 |"


def test_a_caption_without_a_data_source_names_the_source_the_config_resolves_to(smoke_config):
    from igkd_lib.book.notebook import caption
    from igkd_lib.data.cifar10 import source_label

    line = caption(smoke_config)
    assert "data=None" not in line and f"data={source_label(smoke_config)}" in line
