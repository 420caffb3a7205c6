"""Print the cycles of igkd_lib's import graph (every import, top-level or inside a function) and its back-arrows
(a module of a lower stage of the method importing one of a higher stage).

    python tools/import_cycles.py          # prints one cycle or back-arrow a line; exit 1 if any

A module ``a`` imports ``b`` when its source holds ``import b`` / ``from b import ...`` /
``from . import b`` anywhere (a deferred import inside a function counts: it is a cycle that only
waits for its call). Read with :mod:`ast`; nothing is imported.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

__all__ = ["import_graph", "find_cycles", "STAGES", "stage", "back_arrows", "main"]

PACKAGE = "igkd_lib"
# The method's stages, lowest first: a module may import its own stage and those below it, never one above.
# The top-level modules (config, storage, models, provenance, ...) are shared by all and import no stage;
# the command line (cli, __main__) sits above everything.
STAGES = ("data", "training", "attribution", "bench", "evidence", "book", "campaign")
_ENTRY = ("cli", "__main__")


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


def stage(module: str) -> int:
    """0 for the shared top-level modules, 1.. for :data:`STAGES`, above them all for the command line."""
    parts = module.split(".")
    if len(parts) < 2:
        return 0
    if parts[1] in _ENTRY:
        return len(STAGES) + 1
    return STAGES.index(parts[1]) + 1 if parts[1] in STAGES else 0


def back_arrows(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every (importer, imported) where the importer sits in a lower stage than what it imports."""
    return sorted((a, b) for a, targets in graph.items() for b in targets if stage(a) < stage(b))


def main() -> int:
    root = Path(__file__).resolve().parent.parent / PACKAGE
    graph = import_graph(root)
    cycles, arrows = find_cycles(graph), back_arrows(graph)
    for cycle in cycles:
        print(" <-> ".join(cycle))
    for a, b in arrows:
        print(f"back-arrow: {a} -> {b}")
    if not cycles and not arrows:
        print("no import cycles, no back-arrows")
    return 1 if cycles or arrows else 0


if __name__ == "__main__":
    sys.exit(main())
