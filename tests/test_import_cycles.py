"""tools/import_cycles.py: igkd_lib's import graph has no cycle and no back-arrow between the method's stages
(deferred imports inside functions included)."""
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


def test_no_stage_imports_a_higher_one():
    graph = import_cycles.import_graph(ROOT / "igkd_lib")
    assert "igkd_lib.training.loop" in graph["igkd_lib.attribution.maps"]  # attribution reads training
    assert import_cycles.back_arrows(graph) == []


def test_a_back_arrow_is_found():
    graph = {"igkd_lib.data.cifar10": {"igkd_lib.training.loop", "igkd_lib.storage"},
             "igkd_lib.storage": {"igkd_lib.evidence.stats"}, "igkd_lib.cli": {"igkd_lib.campaign.window"},
             "igkd_lib.campaign.window": {"igkd_lib.evidence.stats"}}
    assert import_cycles.back_arrows(graph) == [("igkd_lib.data.cifar10", "igkd_lib.training.loop"),
                                                ("igkd_lib.storage", "igkd_lib.evidence.stats")]
