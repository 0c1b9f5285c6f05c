"""Removing a task: what would be lost, and the removal itself (worktree, branch, slot, ports, record)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from git_agents.core.errors import AgentError, ExitCode
from git_agents.core.refs import HEADS, branch_name, branch_ref
from git_agents.core.repo import Repo
from git_agents.core.worktrees import (
    describe_unsaved,
    remove_worktree,
    unsaved_work,
)
from git_agents.pool import slots as pool
from git_agents.tasks import agent, seal
from git_agents.tasks.isolation import is_clone, remove_clone, sync, unfetched_commits
from git_agents.tasks.ports import release_all as release_ports
from git_agents.tasks.store import Task, TaskState, delete_tasks


@dataclass(frozen=True)
class RefFacts:
    """What removing many tasks asks about their branches, read with one git call per target
    instead of three per task (each git call also parses the config, which grows with the tasks)."""

    tips: dict[str, str]  # every branch -> its commit
    merged: dict[str, set[str]]  # target branch -> the branches merged into it


def ref_facts(repo: Repo, tasks: list[Task]) -> RefFacts:
    """RefFacts for `tasks`: one for-each-ref of the branches, one `--merged` list per target."""
    from git_agents.tasks.status import branch_tips

    tips = branch_tips(repo)
    merged: dict[str, set[str]] = {}
    for target in sorted({t.base for t in tasks if t.base and t.base in tips}):
        out = repo.git.run("for-each-ref", "--format=%(refname)", f"--merged={branch_ref(target)}", HEADS).out
        merged[target] = {branch_name(ref) for ref in out.splitlines()}
    return RefFacts(tips, merged)


def _has_branch(repo: Repo, name: str, facts: RefFacts | None) -> bool:
    return name in facts.tips if facts is not None else repo.git.has_branch(name)


def _merged_into(repo: Repo, branch: str, target: str, facts: RefFacts | None) -> bool:
    if facts is not None:
        return branch in facts.merged.get(target, set())
    return repo.git.ok("merge-base", "--is-ancestor", branch_ref(branch), branch_ref(target))


def is_merged(repo: Repo, task: Task) -> bool:
    """Whether the task's work is in its target branch (or it had none and was merged)."""
    if task.state == TaskState.MERGED:
        return True
    branch, target = branch_ref(task.branch), branch_ref(task.base)
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


def what_would_be_lost(repo: Repo, task: Task, facts: RefFacts | None = None) -> list[str]:
    """Reasons a task cannot be removed without --force (empty: safe). `facts`: the branches as
    ref_facts read them just before (for many tasks), else asked here."""
    reasons = []
    found = agent.running(task)
    if found is not None:
        reasons.append(f"its agent is still running (pid {found[0]})")
    if is_clone(task) and found is None:
        pool.repair_clone(repo, task)  # a clone a killed command left half-made: judged once whole
    if is_clone(task) and task.worktree and os.path.isdir(task.worktree) and found is None:
        sync(repo, task)
        facts = None  # the sync may have moved its branch since the facts were read
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
        head = seal.head_of(task.worktree)
        # On a branch, HEAD's commits are that branch's, judged below: no walk needed.
        detached = 0 if is_clone(task) or (head is not None and head.startswith("ref: ")) else \
            commits_on_detached_head(repo, task.worktree, keep)
        if detached:
            reasons.append(f"its slot {task.slot} has {detached} commit(s) that no branch contains" if task.slot else
                           f"its worktree has a detached HEAD with {detached} commit(s) that no branch contains")
    branch = branch_ref(task.branch)
    if task.branch and _has_branch(repo, task.branch, facts):
        target = branch_ref(task.base)
        target_exists = _has_branch(repo, task.base, facts)
        if (not target_exists or not _merged_into(repo, task.branch, task.base, facts)) \
                and not (target_exists and task.state == TaskState.MERGED and _changes_in(repo, branch, target)):
            ahead = repo.git("rev-list", "--count", branch, "--not", target, "--") if target_exists else "some"
            reasons.append(f"its branch {task.branch} has {ahead} commit(s) not merged into {task.base}")
    return reasons


def remove_task(repo: Repo, task: Task, *, force: bool) -> None:
    """Stop the agent, remove worktree (or release its pool slot) and branch, forget the task.

    Without `force` the caller has checked what_would_be_lost; a removal never starts while a
    process of the task's agent runs (with `force`, it is stopped and waited for first).
    """
    remove_worktree_of(repo, task, force=force)
    finish_removals(repo, [task])


def remove_worktree_of(repo: Repo, task: Task, *, force: bool) -> None:
    """The first half of remove_task: the agent stopped (with `force`) and the worktree removed
    or its pool slot released. finish_removals does the rest, for many tasks at once."""
    if force:
        agent.stop_task(task, repo.task_dir(task.id))
    else:
        found = agent.running(task)
        if found is not None:
            raise AgentError(f"not removing task {task.id}: its agent is still running (pid {found[0]})",
                             hint=f"stop it first with: git agent-stop {task.id}", code=ExitCode.FAILED)
    pool.repair_clone(repo, task)  # removed whole, with nothing left aside and its slot's claim dropped
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


def finish_removals(repo: Repo, tasks: list[Task]) -> None:
    """The second half of remove_task for tasks whose worktrees are gone: their branches deleted
    (one git call), their port blocks returned and their records forgotten (one write each)."""
    if not tasks:
        return
    from git_agents.tasks.status import branch_tips

    tips = branch_tips(repo, {t.branch for t in tasks if t.branch})
    branches = [t.branch for t in tasks if t.branch in tips]
    if branches:
        repo.git.run("branch", "-D", "--quiet", *branches)
    release_ports(repo, tasks)
    delete_tasks(repo, [t.id for t in tasks])
    for task in tasks:
        shutil.rmtree(repo.task_dir(task.id), ignore_errors=True)


