"""The branch namespace is spelled in one module, git_agents/core/refs.py.

Every other module builds a branch's ref with its helpers (`branch_ref`, `branch_name`, `HEADS`),
so a string literal holding the prefix anywhere else (docstrings aside) fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "git_agents"
OWNER = PACKAGE / "core" / "refs.py"
PREFIX = "refs/" + "heads/"


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes of a module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def spelled_outside(root: Path = PACKAGE, prefix: str = PREFIX) -> list[str]:
    """`path:line` of each string literal (f-string parts included) holding `prefix` outside OWNER."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        if path == OWNER:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs \
                    and prefix in node.value:
                bad.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return bad


def test_branch_refs_are_spelled_only_in_core_refs() -> None:
    assert spelled_outside() == []


def test_the_check_finds_a_branch_ref_built_by_hand(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text('"""Docs may say refs/heads/x."""\n'
                                     'def f(b):\n    return f"refs/heads/{b}"\n', encoding="utf-8")
    assert spelled_outside(tmp_path) == [f"{tmp_path.name}/mod.py:3"]

