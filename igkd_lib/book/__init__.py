"""Stage 5, the book: chapter set-up and captions, interactive views, figures, and the build itself.

- :mod:`~igkd_lib.book.notebook`: a chapter's config and provenance line, numbered captions and tables;
- :mod:`~igkd_lib.book.coverage`: how many runs a chapter's figures rest on, and what is missing;
- :mod:`~igkd_lib.book.views`: the offline sliders; :mod:`~igkd_lib.book.plots`: the figures;
- :mod:`~igkd_lib.book.build`: papermill over the chapters and the Jupyter Book site (``make book``);
- :mod:`~igkd_lib.book.info`: ``python -m igkd_lib info``, the models, their costs, the data and the device.

It reads every stage below it; nothing below reads it.
"""
from igkd_lib.book.coverage import missing_note, missing_table, runs_line, show_coverage, students_line
from igkd_lib.book.notebook import caption, chapter_setup, figure_note, list_parameter, table_note

MODULES = ("notebook", "coverage", "views", "plots", "build", "info")
__all__ = ["MODULES", "caption", "chapter_setup", "figure_note", "list_parameter",
           "table_note", "runs_line", "missing_table", "missing_note", "show_coverage",
           "students_line"]
