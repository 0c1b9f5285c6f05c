"""git agent-clean: remove task worktrees, branches and live metadata, never losing work."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from git_agents.commands.options import add_verbosity
from git_agents.core.errors import ExitCode, UsageError
from git_agents.core.repo import Repo
from git_agents.core.worktrees import (
    describe_unsaved,
    prune_worktrees,
    remove_worktree,
    unsaved_work,
)
from git_agents.pool import slots as pool
from git_agents.tasks import agent
from git_agents.tasks.ports import release as release_ports
from git_agents.tasks.selection import select_tasks
from git_agents.tasks.store import Task, delete_task

USAGE = "git agent-clean [--force] (--merged | --all | <id>...)"

DESCRIPTION = """\
Remove each task's worktree, delete its branch, and forget its live metadata (the notes on
merge commits stay). Without --force, a task is kept, with what would be lost named, when its
worktree holds uncommitted or untracked work, when its branch has commits not merged into
its target branch, or when its agent is still running. --force stops a running agent (its
whole process group) and discards all of that. Worktrees whose directories were deleted by
hand are pruned. The task's port block (GIT_AGENT_PORT) is returned. A task that runs in a
pool slot (spawn --pool, git agent-pool claim --task) gives the slot back to the pool, reset
to the pool's base, instead of removing it.
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare clean's options."""
    p.add_argument("ids", nargs="*", metavar="<id>", help="tasks to remove")
    p.add_argument("--merged", action="store_true", help="every task whose branch is merged into its target")
    p.add_argument("--all", action="store_true", help="every task")
    p.add_argument("-f", "--force", action="store_true",
                   help="remove even with unsaved work, unmerged commits or a running agent")
    add_verbosity(p)


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
            count = repo.git("rev-list", "--count", branch, "--not", target, "--") if target_exists else "some"
            reasons.append(f"its branch {task.branch} has {count} commit(s) not merged into {task.base}")
    return reasons


def remove_task(repo: Repo, task: Task, *, force: bool) -> None:
    """Stop the agent, remove worktree (or release its pool slot) and branch, forget the task."""
    if force and task.agent:
        agent.stop(task.pid, task.pid_start)
    if task.slot:
        # Detaches the slot first, so the branch below is no longer checked out; a slot that
        # another claimer holds by now is left alone.
        pool.release(repo, task.slot, force=force, task=task.id)
    elif task.worktree and os.path.lexists(task.worktree):
        remove_worktree(repo, task.worktree, force=force)
    if task.branch and repo.git.has_ref(f"refs/heads/{task.branch}"):
        repo.git.run("branch", "-D", "--quiet", task.branch)
    release_ports(repo, task)
    delete_task(repo, task.id)
    shutil.rmtree(repo.task_dir(task.id), ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    """Remove the tasks that can be removed; report the rest."""
    if sum(bool(x) for x in (args.ids, args.merged, args.all)) != 1:
        raise UsageError("name the tasks to remove, or pass one of --merged and --all")
    repo = Repo.discover()
    prune_worktrees(repo)
    tasks = select_tasks(repo, args.ids, all_tasks=args.merged or args.all)
    if args.merged:
        tasks = [t for t in tasks if is_merged(repo, t)]
    kept = 0
    here = os.path.realpath(os.getcwd())
    for task in tasks:
        if task.worktree and (here + "/").startswith(os.path.realpath(task.worktree) + "/"):
            sys.stderr.write(f"error: not removing task {task.id}: you are inside its worktree\n"
                             f"hint: cd out of {task.worktree} first\n")
            kept += 1
            continue
        reasons = [] if args.force else what_would_be_lost(repo, task)
        if reasons:
            sys.stderr.write(f"error: not removing task {task.id}: {'; '.join(reasons)}\n"
                             f"hint: merge or save that work first, or pass --force to discard it\n")
            kept += 1
            continue
        remove_task(repo, task, force=args.force)
        if args.verbosity >= 0:
            print(f"Removed task {task.id}" + (f" (worktree {task.worktree}, branch {task.branch})"
                                               if args.verbosity > 0 else ""))
    if not tasks and args.verbosity >= 0:
        print("Nothing to clean.")
    return ExitCode.FAILED if kept else ExitCode.OK
