"""Early conflict warnings: which tasks touch the same files, and which pairs would really conflict.

Changed-file sets come from one `git diff-tree --stdin` call for every task and for each
target's own changes since the task forked; only pairs whose sets overlap are then merged in
memory (`git merge-tree`), so fifty tasks cost a handful of merges, not 1,225.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from git_agents.core.git import Git
from git_agents.merging.inmemory import merge_trees
from git_agents.tasks.store import Task, TaskState


@dataclass
class Branch:
    """A task's branch as the predictor sees it."""

    task_id: str
    target: str  # the branch it merges into
    tip: str
    fork: str = ""  # merge base with the target
    files: set[str] = field(default_factory=set)  # changed since the fork
    target_files: set[str] = field(default_factory=set)  # changed on the target since the fork


def task_branches(tasks: Iterable[Task], tips: Mapping[str, str]) -> tuple[list[Branch], dict[str, str]]:
    """The Branch of each unmerged task whose branch and target exist (`tips`: Git.tips), and each target's tip."""
    branches = [Branch(t.id, t.base, tips[t.branch]) for t in tasks
                if t.state != TaskState.MERGED and t.branch in tips and t.base in tips]
    return branches, {b.target: tips[b.target] for b in branches}


@dataclass
class Pair:
    """Two sides whose changes overlap: two tasks, or a task and its target branch (b = branch name)."""

    a: str
    b: str
    kind: str  # "task" or "target"
    overlap: list[str]
    conflicts: list[str]

    @property
    def conflict(self) -> bool:
        """Would merging the two conflict?"""
        return bool(self.conflicts)

    def to_json(self) -> dict[str, object]:
        """The pair as a JSON object (see git-agent-conflicts(1))."""
        return {"a": self.a, "b": self.b, "kind": self.kind, "overlap": self.overlap,
                "conflict": self.conflict, "conflicts": self.conflicts}


def changed_files(git: Git, ranges: Sequence[tuple[str, str]]) -> list[set[str]]:
    """For each (old, new) commit pair, the paths that differ: one `git diff-tree --stdin` for all."""
    if not ranges:
        return []
    out = git.run("diff-tree", "--stdin", "-r", "-z", "--raw", "--no-renames", "--always",
                  input="".join(f"{new} {old}\n" for old, new in ranges)).out
    fields = out.split("\0")
    result: list[set[str]] = []
    i = 0
    while i < len(fields):
        item = fields[i]
        if not item:
            i += 1
        elif item.startswith(":"):  # ":<modes> <oids> <status>" then the path
            result[-1].add(fields[i + 1])
            i += 2
        else:  # the header of the next range (its commit id)
            result.append(set())
            i += 1
    return result


def fill_file_sets(git: Git, branches: list[Branch], target_tips: dict[str, str]) -> None:
    """Find each branch's fork point and both sides' changed files since it."""
    for b in branches:
        b.fork = git("merge-base", target_tips[b.target], b.tip)
    ranges = [(b.fork, b.tip) for b in branches] + [(b.fork, target_tips[b.target]) for b in branches]
    sets = changed_files(git, ranges)
    for b, own, theirs in zip(branches, sets, sets[len(branches):]):
        b.files, b.target_files = own, theirs


def predict_pairs(git: Git, branches: list[Branch], target_tips: dict[str, str]) -> list[Pair]:
    """Every overlapping pair, task against target first, then task against task, with its merge outcome."""
    pairs = []
    for b in branches:
        overlap = sorted(b.files & b.target_files)
        if overlap:
            clean, res = merge_trees(git, target_tips[b.target], b.tip)
            pairs.append(Pair(b.task_id, b.target, "target", overlap, [] if clean else res.conflict_paths))
    for x, y in combinations(branches, 2):
        overlap = sorted(x.files & y.files)
        if overlap and x.target == y.target:
            clean, res = merge_trees(git, x.tip, y.tip)
            pairs.append(Pair(x.task_id, y.task_id, "task", overlap, [] if clean else res.conflict_paths))
    return pairs
