"""Adding, listing and removing worktrees: thin, serialised wrappers over `git worktree`.

Concurrent `git worktree add` calls fail while another one is half-way through creating its
administrative directory ("failed to read .git/worktrees/<name>/commondir"); every change to
the set of worktrees therefore runs under the repository's `worktrees` lock. The checkout
itself, the slow part on a large repository, runs outside the lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from git_agents.core.errors import GitError
from git_agents.core.halfmade import half_made_entries, repair_half_made
from git_agents.core.lock import RepoLock
from git_agents.core.repo import Repo


@dataclass
class Worktree:
    """One entry of `git worktree list --porcelain`."""

    path: str
    head: str = ""
    branch: str = ""  # short name, empty when detached
    bare: bool = False
    locked: bool = False
    prunable: bool = False


def list_worktrees(repo: Repo) -> list[Worktree]:
    """Every worktree of the repository, the main one first.

    An entry half-made by a killed `git worktree add` (empty commondir) makes this fail; one of
    ours is repaired and the listing retried, any other is named (see repair_half_made).
    """
    try:
        out = repo.git.run("worktree", "list", "--porcelain", "-z").out
    except GitError:
        if not half_made_entries(repo):
            raise
        repair_half_made(repo, strict=True)
        out = repo.git.run("worktree", "list", "--porcelain", "-z").out
    result: list[Worktree] = []
    current: Worktree | None = None
    for field in out.split("\0"):
        if not field:
            current = None
            continue
        key, _, value = field.partition(" ")
        if key == "worktree":
            current = Worktree(value)
            result.append(current)
        elif current is None:
            continue
        elif key == "HEAD":
            current.head = value
        elif key == "branch":
            current.branch = value.removeprefix("refs/heads/")
        elif key == "bare":
            current.bare = True
        elif key == "locked":
            current.locked = True
        elif key == "prunable":
            current.prunable = True
    return result


def add_worktree(repo: Repo, path: str, branch: str | None, commit: str) -> None:
    """Create a worktree at `path` on a new `branch` (or detached when None) at `commit`."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with RepoLock(repo.common_dir, "worktrees"):
        args = ["worktree", "add", "--no-checkout", "--quiet"]
        args += ["-b", branch, path, commit] if branch else ["--detach", path, commit]
        made_branch = bool(branch) and not repo.git.has_ref(f"refs/heads/{branch}")
        try:
            repo.git.run(*args)
        except GitError:
            # `worktree add -b` makes the branch before the worktree: take back the branch this
            # call made (compare-and-swap: only while it is still at `commit`) and the half-made entry.
            if made_branch:
                repo.git.run("update-ref", "-d", f"refs/heads/{branch}", commit, ok=range(0, 256))
            repo.git.run("worktree", "prune", ok=range(0, 256))
            raise
    repo.git.at(path).run("reset", "--hard", "--quiet")


def remove_worktree(repo: Repo, path: str, *, force: bool = False) -> None:
    """Remove a worktree (its directory and git's record of it)."""
    with RepoLock(repo.common_dir, "worktrees"):
        if os.path.isdir(path):
            repo.git.run("worktree", "remove", *(["--force", "--force"] if force else []), path)
        else:
            repo.git.run("worktree", "prune")


def prune_worktrees(repo: Repo) -> None:
    """Forget worktrees whose directories were deleted by hand."""
    with RepoLock(repo.common_dir, "worktrees"):
        repo.git.run("worktree", "prune")


def unsaved_work(repo: Repo, path: str) -> list[str]:
    """`git status --porcelain` lines for uncommitted and untracked work in a worktree."""
    # --no-optional-locks: a read must not take index.lock, which would make the agent's own
    # `git add`/`git commit` in that worktree fail; it is faster too (no index write-back).
    out = repo.git.at(path).run("--no-optional-locks", "status", "--porcelain", "-z",
                                "--untracked-files=all").out
    entries: list[str] = []
    fields = out.split("\0")
    i = 0
    while i < len(fields):
        entry = fields[i]
        if entry:
            entries.append(entry)
            if entry[0] in "RC":  # a rename carries its source path in the next field
                i += 1
        i += 1
    return entries


def describe_unsaved(entries: list[str], limit: int = 3) -> str:
    """The first few paths of `unsaved_work` entries, for a refusal message."""
    return ", ".join(e[3:] for e in entries[:limit]) + (", ..." if len(entries) > limit else "")

