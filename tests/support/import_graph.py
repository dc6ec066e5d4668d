"""The import walker the no-cycle tests share (the library's in test_engine.py, the autograder's in
test_autograder_rooms.py): which modules of a package a file imports when it runs, and a cycle."""

from __future__ import annotations

import ast
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    """'vitcourse/engine.py' -> 'vitcourse.engine'; a package's __init__.py is the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, own: str, is_package: bool) -> str:
    """The absolute module an ImportFrom names (relative imports resolved against `own`)."""
    if not node.level:
        return node.module or ""
    anchor = own.split(".") if is_package else own.split(".")[:-1]
    anchor = anchor[:len(anchor) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def runtime_imports(path: Path, modules: set[str], root: Path) -> set[str]:
    """The ``modules`` a file imports when it runs (``if TYPE_CHECKING:`` blocks left out).

    ``from package import submodule`` depends on the submodule; a module's own parent packages
    are not counted (Python has begun initialising them before the module runs)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    own = module_name(path, root) if path.is_relative_to(root) else path.stem
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, own, path.name == "__init__.py")
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    parents = {own.rsplit(".", k)[0] for k in range(1, own.count(".") + 1)}
    return {name for name in found if name in modules and name not in parents and name != own}


def import_graph(package: Path, root: Path, skip: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """module -> the modules of `package` (a folder under `root`) it imports when it runs; `skip`:
    folders of `package` left out (e.g. generated ones)."""
    files = {module_name(p, root): p for p in package.rglob("*.py")
             if "__pycache__" not in p.parts and not any(p.is_relative_to(package / s) for s in skip)}
    return {name: runtime_imports(p, set(files), root) for name, p in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, trail + [nxt])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name, [name])
            if cycle:
                return cycle
    return None
