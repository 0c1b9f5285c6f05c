"""The package's folders are its layers: a module imports only from its own layer or those below.

core -> tasks -> merging -> pool -> lifecycle -> remote -> run -> tui -> commands -> cli

Every import in git_agents/ (top-level or inside a function) is read from the source, so a
lazy import that breaks the layering fails here too, and so does any import cycle between
modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "git_agents"
LAYERS = ["core", "tasks", "merging", "pool", "lifecycle", "remote", "run", "tui", "commands", "cli"]


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = PACKAGE) -> set[str]:
    """The git_agents modules a source file imports (absolute names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("git_agents"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("git_agents"):
                continue
            for alias in node.names:  # `from git_agents.pool import slots` imports a module
                sub = f"{base}.{alias.name}"
                found.add(sub if (root.parent / sub.replace(".", "/")).with_suffix(".py").exists() else base)
    return found - {here}


def layer(module: str) -> int | None:
    """The index of a module's layer in LAYERS (None for git_agents itself and __main__)."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the git_agents modules it imports, for every module under root."""
    return {_module_name(p, root): imports_of(p, root) for p in sorted(root.rglob("*.py"))}


def upward_imports(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where a lower layer imports a higher one."""
    bad = []
    for module, targets in edges.items():
        mine = layer(module)
        for target in targets:
            theirs = layer(target)
            if mine is not None and theirs is not None and theirs > mine:
                bad.append((module, target))
    return sorted(bad)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each as the modules on it (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_every_module_is_in_a_layer() -> None:
    loose = [m for m in graph() if layer(m) is None and m not in ("git_agents", "git_agents.__main__")]
    assert loose == []


def test_no_layer_imports_a_higher_one() -> None:
    assert upward_imports(graph()) == []


def test_there_are_no_import_cycles() -> None:
    assert cycles(graph()) == []


@pytest.mark.parametrize("source, importer", [
    ("from git_agents.commands.merge import run\n", "core/repo.py"),
    ("from ...commands import merge\n", "tasks/x/y.py"),
    ("def f():\n    from git_agents.cli.dispatch import main\n", "merging/queue.py"),
])
def test_the_checks_catch_an_upward_import(tmp_path: Path, source: str, importer: str) -> None:
    fake = tmp_path / "git_agents"
    for name in ("core/repo.py", "commands/merge.py", "cli/dispatch.py", "merging/queue.py", importer):
        (fake / name).parent.mkdir(parents=True, exist_ok=True)
        (fake / name).touch()
    (fake / importer).write_text(source)
    assert upward_imports(graph(fake)) != []


def test_the_checks_catch_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
