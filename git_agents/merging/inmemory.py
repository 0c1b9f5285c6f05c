"""Merging task branches into a target branch without touching any worktree until the end.

Each merge is computed with `git merge-tree --write-tree` (git >= 2.38) and recorded with
`git commit-tree`, exactly as `git merge --no-ff -m <message>` would have made it: the same
parents, tree and message. The target branch then moves once, by fast-forward in the
worktree that has it checked out (or by a compare-and-swap `update-ref` when none has), so
it is only ever at its old commit or at one where every merged task is completely in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from git_agents.core.errors import AgentError
from git_agents.core.git import Git


@dataclass
class Attempt:
    """The result of merging one task in memory."""

    task_id: str
    status: str  # "merged", "conflict", "up-to-date", "check-failed"
    commit: str = ""
    conflicts: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # git's CONFLICT lines, e.g. "CONFLICT (rename/delete): ..."
    check: str = ""  # "passed", "failed", or "" when no check ran
    check_output: str = ""
    rebased: bool = False  # merged after `--rebase` replayed it onto the target
    tree: str = ""  # the tree of the merge commit (merged) or of the unchanged target (up-to-date)
    resolved_by: str = ""  # --resolve: who resolved its conflict with the target (merged), or tried (conflict)
    resolve_attempts: int = 0
    resolve_log: str = ""  # the tail of a failed resolver's log


@dataclass(frozen=True)
class MergeTreeResult:
    """`git merge-tree --write-tree -z --name-only` output, parsed."""

    tree: str
    conflicted: list[str]  # paths left with conflict stages
    messages: list[tuple[str, list[str], str]]  # (type, paths involved, message), in git's order

    @property
    def conflict_paths(self) -> list[str]:
        """Every path a conflict involves: the conflicted ones, then e.g. a rename's source path."""
        paths = list(self.conflicted)
        for kind, involved, _ in self.messages:
            if kind.startswith("CONFLICT"):
                paths += involved
        return list(dict.fromkeys(paths))


def parse_merge_tree(out: str) -> MergeTreeResult:
    """Parse `merge-tree --write-tree -z --name-only` output (with or without its messages section).

    Layout: `<tree> NUL`, then one `<path> NUL` per conflicted file, then (after an empty field,
    only when there were conflicts) per message `<n> NUL <path> NUL x n <type> NUL <message> NUL`.
    Paths may hold any byte but NUL, so nothing is split on newlines.
    """
    fields = out.split("\0")
    tree = fields[0].strip()
    i = 1
    conflicted: list[str] = []
    while i < len(fields) and fields[i] != "":
        conflicted.append(fields[i])
        i += 1
    i += 1  # the empty field that ends the conflicted-file section
    messages: list[tuple[str, list[str], str]] = []
    while i < len(fields) and fields[i].isdigit():
        count = int(fields[i])
        paths = fields[i + 1:i + 1 + count]
        i += 1 + count
        if i + 1 >= len(fields):
            break
        messages.append((fields[i], paths, fields[i + 1].rstrip("\n")))
        i += 2
    return MergeTreeResult(tree, list(dict.fromkeys(conflicted)), messages)


def merge_trees(git: Git, ours: str, theirs: str) -> tuple[bool, MergeTreeResult]:
    """Merge two commits in memory (no ref, index or worktree touched): (clean?, parsed result)."""
    res = git.run("merge-tree", "--write-tree", "-z", "--name-only", ours, theirs, ok=(0, 1))
    return res.code == 0, parse_merge_tree(res.out)


def merge_in_memory(git: Git, current: str, tip: str, message: str, task_id: str,
                    current_tree: str | None = None) -> Attempt:
    """Merge `tip` into the commit `current` like `git merge --no-ff`; no ref or worktree changes.

    Given `current_tree` (the tree of `current`), the "already up to date" test, a second git
    call, runs only when the merge leaves that tree unchanged, as it must when `tip` is in.
    """
    if current_tree is None and git.ok("merge-base", "--is-ancestor", tip, current):
        return Attempt(task_id, "up-to-date", tree=git("rev-parse", f"{current}^{{tree}}"))
    clean, result = merge_trees(git, current, tip)
    if not clean:
        return Attempt(task_id, "conflict", conflicts=result.conflict_paths,
                       messages=[m for kind, _, m in result.messages if kind.startswith("CONFLICT")])
    if result.tree == current_tree and git.ok("merge-base", "--is-ancestor", tip, current):
        return Attempt(task_id, "up-to-date", tree=result.tree)
    commit = git("commit-tree", result.tree, "-p", current, "-p", tip, "-F", "-", input=message + "\n")
    return Attempt(task_id, "merged", commit=commit, tree=result.tree)


def advance_branch(git: Git, branch: str, old: str, new: str, worktree: str | None, reason: str) -> None:
    """Move `branch` from `old` to its descendant `new`, updating the worktree that has it checked out."""
    if worktree:
        head = git.at(worktree)("rev-parse", "HEAD")
        if head != old:
            raise AgentError(f"'{branch}' moved while merging (now {head[:12]}, expected {old[:12]})",
                             hint="run the merge again")
        # A two-tree read-tree is the fast-forward `git merge --ff-only` does (local changes are
        # carried over, or it refuses, as checkout does) without merge's extra index refreshes:
        # half the time on a 100,000-file tree. Then the ref, compare-and-swap. Idempotent: if
        # the index is already at `new` (interrupted in between), read-tree keeps it.
        wt = git.at(worktree)
        wt.run("read-tree", "-m", "-u", old, new)
        wt.run("update-ref", "-m", reason, f"refs/heads/{branch}", new, old)
    else:
        git.run("update-ref", "-m", reason, f"refs/heads/{branch}", new, old)
