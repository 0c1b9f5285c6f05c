"""Names of branches and refs, and object ids: the one module that spells the branch namespace.

Small types in the manner of git-machete's `LocalBranchShortName`/`LocalBranchFullName` and
git-revise's `Oid`: `NewType`s over str, free at run time, that say which kind of name a value
is. tests/test_names.py fails if the namespace's prefix is written in any other module.
"""

from __future__ import annotations

from typing import NewType

#: A branch's short name (`task-1`, `main`).
BranchName = NewType("BranchName", str)
#: A full ref name (`refs/heads/task-1`, `refs/agents/...`).
RefName = NewType("RefName", str)
#: An object id (a commit, tree or blob), as hex.
Oid = NewType("Oid", str)

#: Where branches live; `for-each-ref` takes it as the pattern for every branch.
HEADS = RefName("refs/heads/")


def branch_ref(name: str) -> RefName:
    """The full ref name of the branch `name` (`task-1` -> `refs/heads/task-1`)."""
    return RefName(HEADS + name)


def is_branch_ref(ref: str) -> bool:
    """Whether the full ref name `ref` names a branch."""
    return ref.startswith(HEADS)


def branch_name(ref: str) -> BranchName:
    """The short name of the branch ref `ref` (`refs/heads/task-1` -> `task-1`); other refs unchanged."""
    return BranchName(ref.removeprefix(HEADS))
