"""`git agent-merge --rebase`: replay a conflicting task onto the moved target, in the task's own worktree."""

from __future__ import annotations

import os

from git_agents.core.refs import branch_ref
from git_agents.core.repo import Repo
from git_agents.tasks import isolation
from git_agents.tasks.store import Task


def rebase_onto_target(repo: Repo, task: Task, target: str) -> str | None:
    """Rebase the task's branch onto `target` in its worktree; None on success, else why not.

    A rebase that stops on a conflict is aborted at once, so the branch and worktree are left
    exactly as they were.
    """
    if not task.worktree or not os.path.isdir(task.worktree):
        return "it has no worktree to rebase in"
    git = repo.git.at(task.worktree)
    if git.head_branch() != task.branch:
        return f"its worktree is not on '{task.branch}'"
    isolation.refresh_target(repo, task, target)  # a clone task rebases onto the target as it is here
    res = git.run("rebase", "--quiet", branch_ref(target), ok=range(0, 256),
                  env={"GIT_REFLOG_ACTION": "agent-merge --rebase"})
    if res.code == 0:
        isolation.sync(repo, task)
        return None
    git.run("rebase", "--abort", ok=(0, 128))  # 128: the rebase never started
    return "the rebase did not apply cleanly either"
