"""Removing a task: what would be lost, and the removal itself (worktree, branch, slot, ports, record)."""

from __future__ import annotations

import os
import shutil

from git_agents.core.repo import Repo
from git_agents.core.worktrees import (
    describe_unsaved,
    remove_worktree,
    unsaved_work,
)
from git_agents.pool import slots as pool
from git_agents.tasks import agent
from git_agents.tasks.ports import release as release_ports
from git_agents.tasks.store import Task, delete_task


def is_merged(repo: Repo, task: Task) -> bool:
    """Whether the task's work is in its target branch (or it had none and was merged)."""
    if task.state == "merged":
        return True
    branch, target = f"refs/heads/{task.branch}", f"refs/heads/{task.base}"
    if not repo.git.has_ref(branch):
        return False
    has_commits = not repo.git.ok("merge-base", "--is-ancestor", branch, task.base_commit or target)
    return has_commits and repo.git.ok("merge-base", "--is-ancestor", branch, target)


def what_would_be_lost(repo: Repo, task: Task) -> list[str]:
    """Reasons a task cannot be removed without --force (empty: safe)."""
    reasons = []
    if task.agent and agent.read_exit(repo.task_dir(task.id)) is None and agent.is_alive(task.pid, task.pid_start):
        reasons.append(f"its agent is still running (pid {task.pid})")
    if task.worktree and os.path.isdir(task.worktree):
        entries = unsaved_work(repo, task.worktree)
        if entries:
            reasons.append(f"its worktree has uncommitted or untracked work ({describe_unsaved(entries)})")
        slot = pool.read_slots(repo, details=True).get(task.slot) if task.slot else None
        if slot and slot.claim and slot.claim.task == task.id and slot.exists:
            count = pool.unreachable_commits(repo, slot)
            if count:
                reasons.append(f"its slot {slot.name} has {count} commit(s) that no branch contains")
    branch = f"refs/heads/{task.branch}"
    if task.branch and repo.git.has_ref(branch):
        target = f"refs/heads/{task.base}"
        target_exists = repo.git.has_ref(target)
        if not target_exists or not repo.git.ok("merge-base", "--is-ancestor", branch, target):
            ahead = repo.git("rev-list", "--count", branch, "--not", target, "--") if target_exists else "some"
            reasons.append(f"its branch {task.branch} has {ahead} commit(s) not merged into {task.base}")
    return reasons


def remove_task(repo: Repo, task: Task, *, force: bool) -> None:
    """Stop the agent, remove worktree (or release its pool slot) and branch, forget the task."""
    if force and task.agent:
        agent.stop(task.pid, task.pid_start)
    slot = task.slot
    if not slot and not task.complete and task.worktree:
        # A record left half-written (no `created`) may lack its `slot`: never take the worktree
        # for the task's own when it is a pool slot; release the slot instead of deleting it.
        real = os.path.realpath(task.worktree)
        slot = next((s.name for s in pool.read_slots(repo).values() if os.path.realpath(s.path) == real), "")
    if slot:
        # Detaches the slot first, so the branch below is no longer checked out; a slot that
        # another claimer holds by now is left alone.
        pool.release(repo, slot, force=force, task=task.id)
    elif task.worktree and os.path.lexists(task.worktree):
        remove_worktree(repo, task.worktree, force=force)
    if task.branch and repo.git.has_ref(f"refs/heads/{task.branch}"):
        repo.git.run("branch", "-D", "--quiet", task.branch)
    release_ports(repo, task)
    delete_task(repo, task.id)
    shutil.rmtree(repo.task_dir(task.id), ignore_errors=True)


