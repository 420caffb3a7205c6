"""igkd_lib.console: the one table printer of the command line."""
import pandas as pd

from igkd_lib.console import print_table


def test_print_table_formats_floats_keeps_known_columns_and_titles(capsys):
    table = pd.DataFrame({"model": ["teacher", "student"], "median_ms": [12.3456, 1.5]})
    print_table(table, ["model", "median_ms", "absent"], ".3g", "sweep")
    out = capsys.readouterr().out
    assert out.startswith("\nsweep\n") and "12.3" in out and "12.35" not in out and "absent" not in out
    print_table(table)
    assert "12.35" in capsys.readouterr().out and "index" not in out
