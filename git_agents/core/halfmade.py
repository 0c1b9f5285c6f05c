"""Worktree entries half-made by a killed `git worktree add`: finding them, and removing ours.

Kept apart from worktrees.py so that Repo.discover can use it without an import cycle.
"""

from __future__ import annotations

import os
from typing import Protocol

from git_agents.core.errors import AgentError
from git_agents.core.lock import RepoLock


class RepoPlaces(Protocol):
    """What this module needs of a Repo."""

    @property
    def common_dir(self) -> str: ...

    @property
    def state_dir(self) -> str: ...

    @property
    def worktree_root(self) -> str: ...


def half_made_entries(repo: RepoPlaces) -> list[str]:
    """`<common-dir>/worktrees/<name>` directories without a readable, non-empty commondir.

    `git worktree add` writes commondir last but one; a kill before that leaves an entry that
    makes every git command that looks at all worktrees die ("failed to read .../commondir").
    No git call: a directory listing and one small read per worktree.
    """
    admin_root = os.path.join(repo.common_dir, "worktrees")
    try:
        names = os.listdir(admin_root)
    except OSError:
        return []
    found = []
    for name in names:
        entry = os.path.join(admin_root, name)
        try:
            with open(os.path.join(entry, "commondir"), "rb") as fh:
                if fh.read(4096).strip():
                    continue
        except FileNotFoundError:
            if not os.path.isdir(entry):
                continue
        except OSError:
            pass
        found.append(entry)
    return found


def _gitdir_of(entry: str) -> str:
    """The worktree's `.git` file an admin entry points at ("" when unknown)."""
    try:
        with open(os.path.join(entry, "gitdir"), encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _is_ours(repo: RepoPlaces, entry: str) -> bool:
    """Whether removing a half-made entry loses nothing: it points nowhere, at our scratch
    worktree, or at a task worktree under agent.worktreeRoot that holds nothing but its .git file."""
    gitdir = _gitdir_of(entry)
    if not gitdir:
        return True
    worktree = os.path.dirname(gitdir)
    try:
        root = os.path.realpath(repo.worktree_root)
    except AgentError:
        root = "\0"  # agent.worktreeRoot is unusable (the command that needs it says so): no task worktree is under it
    inside = [os.path.realpath(repo.state_dir), root]
    real = os.path.realpath(worktree)
    if real.startswith(inside[0] + os.sep):
        return True  # the check worktree: scratch, rebuilt on next use
    if real.startswith(inside[1] + os.sep):
        try:
            return set(os.listdir(worktree)) <= {".git"}
        except FileNotFoundError:
            return True
        except OSError:
            return False
    return False


def repair_half_made(repo: RepoPlaces, *, strict: bool) -> None:
    """Remove the half-made worktree entries that are ours (with a warning on stderr).

    With `strict`, one that is not ours raises AgentError naming exactly what to remove.
    Under the `worktrees` lock, so an add in progress in another git-agents process is never
    mistaken for a dead one.
    """
    import shutil
    import sys

    if not half_made_entries(repo):
        return
    with RepoLock(repo.common_dir, "worktrees"):
        for entry in half_made_entries(repo):
            if _is_ours(repo, entry):
                shutil.rmtree(entry, ignore_errors=True)
                sys.stderr.write(f"warning: removed the half-made worktree entry {entry} "
                                 "(left by an interrupted `git worktree add`)\n")
            elif strict:
                gitdir = _gitdir_of(entry)
                where = os.path.dirname(gitdir) if gitdir else "its worktree"
                raise AgentError(f"the worktree entry {entry} is half-made (its commondir is empty); "
                                 "every git command that lists worktrees fails",
                                 hint=f"if {where} holds nothing you need, remove the entry: rm -r '{entry}'")
