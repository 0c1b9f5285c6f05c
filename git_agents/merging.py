"""Merging task branches into a target branch without touching any worktree until the end.

Each merge is computed with `git merge-tree --write-tree` (git >= 2.38) and recorded with
`git commit-tree`, exactly as `git merge --no-ff -m <message>` would have made it: the same
parents, tree and message. The target branch then moves once, by fast-forward in the
worktree that has it checked out (or by a compare-and-swap `update-ref` when none has), so
it is only ever at its old commit or at one where every merged task is completely in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import AgentError
from .git import Git


@dataclass
class Attempt:
    """The result of merging one task in memory."""

    task_id: str
    status: str  # "merged", "conflict", "up-to-date"
    commit: str = ""
    conflicts: list[str] = field(default_factory=list)


def merge_in_memory(git: Git, current: str, tip: str, message: str, task_id: str) -> Attempt:
    """Merge `tip` into the commit `current` like `git merge --no-ff`; no ref or worktree changes."""
    if git.ok("merge-base", "--is-ancestor", tip, current):
        return Attempt(task_id, "up-to-date")
    res = git.run("merge-tree", "--write-tree", "-z", "--name-only", "--no-messages", current, tip, ok=(0, 1))
    fields = [f for f in res.out.split("\0") if f]
    if res.code == 1:
        return Attempt(task_id, "conflict", conflicts=list(dict.fromkeys(fields[1:])))
    tree = fields[0]
    commit = git("commit-tree", tree, "-p", current, "-p", tip, "-F", "-", input=message + "\n")
    return Attempt(task_id, "merged", commit=commit)


def advance_branch(git: Git, branch: str, old: str, new: str, worktree: str | None, reason: str) -> None:
    """Move `branch` from `old` to its descendant `new`, updating the worktree that has it checked out."""
    if worktree:
        head = git.at(worktree)("rev-parse", "HEAD")
        if head != old:
            raise AgentError(f"'{branch}' moved while merging (now {head[:12]}, expected {old[:12]})",
                             hint="run the merge again")
        git.at(worktree).run("merge", "--ff-only", "--quiet", new,
                             env={"GIT_REFLOG_ACTION": reason})
    else:
        git.run("update-ref", "-m", reason, f"refs/heads/{branch}", new, old)
