"""Print the cycles of igkd_lib's import graph (every import, top-level or inside a function).

    python tools/import_cycles.py          # prints "no import cycles" or one cycle a line; exit 1 if any

A module ``a`` imports ``b`` when its source holds ``import b`` / ``from b import ...`` /
``from . import b`` anywhere (a deferred import inside a function counts: it is a cycle that only
waits for its call). Read with :mod:`ast`; nothing is imported.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

__all__ = ["import_graph", "find_cycles", "main"]

PACKAGE = "igkd_lib"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's modules that one import statement of ``module`` names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = module.split(".")[:len(module.split(".")) - node.level + (1 if is_package else 0)] if node.level else []
        stem = ".".join([*base, *([node.module] if node.module else [])])
        names = [stem] + [f"{stem}.{alias.name}" for alias in node.names]
    else:
        return set()
    found = set()
    for name in names:
        while name and name not in known:  # `from .a.b import c` names a.b; `import a.b.c` imports a.b.c
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (itself and its parent packages left out)."""
    files = {_module_name(root, path): path for path in sorted(root.rglob("*.py"))}
    known = set(files)
    graph = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            edges |= _targets(node, module, is_package, known)
        graph[module] = {m for m in edges if m != module and not module.startswith(m + ".")}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def main() -> int:
    root = Path(__file__).resolve().parent.parent / PACKAGE
    cycles = find_cycles(import_graph(root))
    for cycle in cycles:
        print(" <-> ".join(cycle))
    if not cycles:
        print("no import cycles")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
