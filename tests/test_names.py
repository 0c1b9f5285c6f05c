"""The branch namespace is spelled in one module, git_agents/core/refs.py.

Every other module builds a branch's ref with its helpers (`branch_ref`, `branch_name`, `HEADS`),
so a string literal holding the prefix anywhere else (docstrings aside) fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import Project

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



def _blob(project: Project, data: bytes) -> str:
    path = project.path.parent / "blob"
    path.write_bytes(data)
    return project.git("hash-object", "-w", str(path))


def test_read_objects_gives_each_object_byte_for_byte(project: Project) -> None:
    from git_agents.core.git import Git

    odd, text = _blob(project, b"caf\xc3\xa9 \xff\xfe\x00\n\n"), _blob(project, b"task 2\n")
    assert Git(project.path).read_objects([odd, "0" * 40, text, odd]) == \
        [b"caf\xc3\xa9 \xff\xfe\x00\n\n", None, b"task 2\n", b"caf\xc3\xa9 \xff\xfe\x00\n\n"]
    assert Git(project.path).read_objects([]) == []


def test_port_leases_read_by_batch_after_a_multibyte_one(project: Project) -> None:
    # the batch reader sliced decoded text by byte sizes: after "task é" it lost the next lease's owner
    from git_agents.core.repo import Repo
    from git_agents.tasks import ports

    first, second = _blob(project, "task é\n".encode()), _blob(project, b"task 2\n")
    project.git("update-ref", f"{ports.REF_PREFIX}100", first, "")
    project.git("update-ref", f"{ports.REF_PREFIX}110", second, "")
    assert ports._holders_by_batch(Repo.discover(str(project.path))) == \
        {f"{ports.REF_PREFIX}100": (first, "é"), f"{ports.REF_PREFIX}110": (second, "2")}


def test_pool_claims_that_are_not_utf8_are_read(project: Project) -> None:
    # the claims reader encoded git's decoded output without surrogateescape: a traceback
    from git_agents.core.repo import Repo
    from git_agents.pool import slots

    blob = _blob(project, b'{"version": %d, "task": "caf\xe9", "nonce": "n"}' % slots.CLAIM_VERSION)
    project.git("update-ref", f"{slots.REF_PREFIX}pool-1", blob, "")
    claim = slots.read_slots(Repo.discover(str(project.path)), details=True)["pool-1"].claim
    assert claim is not None and (claim.task, claim.nonce) == ("caf\ufffd", "n")
