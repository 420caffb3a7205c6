"""tools/import_cycles.py: igkd_lib's import graph has no cycle (deferred imports inside functions included)."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "tools" / "import_cycles.py")
import_cycles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_cycles)


def test_igkd_lib_has_no_import_cycle():
    graph = import_cycles.import_graph(ROOT / "igkd_lib")
    assert "igkd_lib.storage" in graph["igkd_lib.attribution.maps"]  # the graph is read at all
    assert import_cycles.find_cycles(graph) == []


def test_a_cycle_through_a_deferred_import_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub.b import f\n")
    (package / "sub" / "b.py").write_text("def f():\n    from ..a import g\n")
    (package / "c.py").write_text("from . import a\n")
    graph = import_cycles.import_graph(package)
    assert import_cycles.find_cycles(graph) == [["pkg.a", "pkg.sub.b"]]
