"""Removing a task: what would be lost, and the removal itself (worktree, branch, slot, ports, record)."""

from __future__ import annotations

import os
import shutil

from git_agents.core.errors import AgentError, ExitCode
from git_agents.core.repo import Repo
from git_agents.core.worktrees import (
    describe_unsaved,
    remove_worktree,
    unsaved_work,
)
from git_agents.pool import slots as pool
from git_agents.tasks import agent
from git_agents.tasks.isolation import is_clone, remove_clone, sync, unfetched_commits
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


def commits_on_detached_head(repo: Repo, worktree: str, keep: list[str] | None = None) -> int:
    """Commits of a worktree's HEAD that no branch contains (nor any of `keep`): work that only
    a detached HEAD holds, which removing the worktree would leave dangling. 0 when HEAD is on
    a branch (that branch is judged on its own) or cannot be read."""
    res = repo.git.at(worktree).run("rev-list", "--count", "HEAD", "--not", "--branches", *(keep or []), "--",
                                    ok=(0, 128))
    return int(res.out.strip()) if res.code == 0 and res.out.strip().isdigit() else 0


def _changes_in(repo: Repo, branch: str, target: str) -> bool:
    """Whether merging `branch` into `target` would change nothing: its changes are in, as after a
    squash or rebase merge (--style), which leaves the branch's own commits out of the target.
    A commit made on the branch since would change the merge, so it still counts as unmerged."""
    from git_agents.merging.inmemory import merge_trees

    clean, result = merge_trees(repo.git, target, branch)
    return clean and result.tree == repo.git("rev-parse", f"{target}^{{tree}}")


def what_would_be_lost(repo: Repo, task: Task) -> list[str]:
    """Reasons a task cannot be removed without --force (empty: safe)."""
    reasons = []
    found = agent.running(task)
    if found is not None:
        reasons.append(f"its agent is still running (pid {found[0]})")
    if is_clone(task) and task.worktree and os.path.isdir(task.worktree) and found is None:
        sync(repo, task)
        elsewhere = unfetched_commits(repo, task)
        if elsewhere:
            reasons.append(f"its clone has {elsewhere} commit(s) on other branches or its HEAD that its branch"
                           f" {task.branch} does not contain")
    if task.worktree and os.path.isdir(task.worktree):
        entries = unsaved_work(repo, task.worktree)
        if entries:
            reasons.append(f"its worktree has uncommitted or untracked work ({describe_unsaved(entries)})")
        keep = [task.base_commit] if task.base_commit else []
        slot = pool.read_slots(repo, details=True).get(task.slot) if task.slot else None
        if slot and slot.claim and slot.claim.task == task.id and slot.claim.commit:
            keep.append(slot.claim.commit)
        detached = 0 if is_clone(task) else commits_on_detached_head(repo, task.worktree, keep)
        if detached:
            reasons.append(f"its slot {task.slot} has {detached} commit(s) that no branch contains" if task.slot else
                           f"its worktree has a detached HEAD with {detached} commit(s) that no branch contains")
    branch = f"refs/heads/{task.branch}"
    if task.branch and repo.git.has_ref(branch):
        target = f"refs/heads/{task.base}"
        target_exists = repo.git.has_ref(target)
        if (not target_exists or not repo.git.ok("merge-base", "--is-ancestor", branch, target)) \
                and not (target_exists and task.state == "merged" and _changes_in(repo, branch, target)):
            ahead = repo.git("rev-list", "--count", branch, "--not", target, "--") if target_exists else "some"
            reasons.append(f"its branch {task.branch} has {ahead} commit(s) not merged into {task.base}")
    return reasons


def remove_task(repo: Repo, task: Task, *, force: bool) -> None:
    """Stop the agent, remove worktree (or release its pool slot) and branch, forget the task.

    Without `force` the caller has checked what_would_be_lost; a removal never starts while a
    process of the task's agent runs (with `force`, it is stopped and waited for first).
    """
    if force:
        agent.stop_task(task, repo.task_dir(task.id))
    else:
        found = agent.running(task)
        if found is not None:
            raise AgentError(f"not removing task {task.id}: its agent is still running (pid {found[0]})",
                             hint=f"stop it first with: git agent-stop {task.id}", code=ExitCode.FAILED)
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
    elif task.worktree and os.path.lexists(task.worktree) and is_clone(task):
        remove_clone(task.worktree)
    elif task.worktree and os.path.lexists(task.worktree):
        remove_worktree(repo, task.worktree, force=force)
    if task.branch and repo.git.has_ref(f"refs/heads/{task.branch}"):
        repo.git.run("branch", "-D", "--quiet", task.branch)
    release_ports(repo, task)
    delete_task(repo, task.id)
    shutil.rmtree(repo.task_dir(task.id), ignore_errors=True)


