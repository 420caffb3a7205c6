"""The chapters import only igkd_lib's public surface: a subpackage's ``__all__`` and ``MODULES``, a module's
``__all__``, and of an imported module only the names in its ``__all__``; nothing private."""
import ast
import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "book").glob("*.ipynb"))


def _public(module) -> set[str]:
    return set(getattr(module, "__all__", ())) | set(getattr(module, "MODULES", ()))


def _is_module(owner: str, name: str) -> bool:
    try:
        importlib.import_module(f"{owner}.{name}")
    except ModuleNotFoundError:
        return False
    return True


def surface_problems(source: str) -> list[str]:
    """What one page's code imports or uses from igkd_lib that is not public, one line each."""
    problems, modules = [], {}  # modules: alias in the page -> igkd_lib module it names
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("igkd_lib"):
            owner = importlib.import_module(node.module)
            for alias in node.names:
                if alias.name.startswith("_") or (alias.name not in _public(owner) and owner.__name__ != "igkd_lib"):
                    problems.append(f"from {node.module} import {alias.name}")
                elif _is_module(node.module, alias.name):
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import) and any(a.name.startswith("igkd_lib.") for a in node.names):
            problems.append("import igkd_lib.<module> (use from ... import ...)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            module = importlib.import_module(modules[node.value.id])
            if node.attr not in _public(module):
                problems.append(f"{modules[node.value.id]}.{node.attr}")
    return sorted(set(problems))


def _code(page: Path) -> str:
    cells = json.loads(page.read_text())["cells"]
    lines = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_a_chapter_imports_only_the_public_surface(page):
    assert surface_problems(_code(page)) == []


def test_a_private_import_or_name_is_found():
    source = ("from igkd_lib.data.cifar10 import _ZIP\nfrom igkd_lib.attribution import maps as m\n"
              "from igkd_lib.training import loop\nm._compute_chunk\nm.get_maps\nloop.not_there")
    assert surface_problems(source) == ["from igkd_lib.data.cifar10 import _ZIP",
                                        "igkd_lib.attribution.maps._compute_chunk", "igkd_lib.training.loop.not_there"]
