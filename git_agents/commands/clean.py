"""git agent-clean: remove task worktrees, branches and live metadata, never losing work."""

from __future__ import annotations

import argparse
import os
import sys
import time

from git_agents.commands.options import add_verbosity
from git_agents.core.errors import ExitCode, UsageError
from git_agents.core.refs import HEADS, branch_ref
from git_agents.core.repo import Repo
from git_agents.core.worktrees import newest_mtime, prune_worktrees
from git_agents.lifecycle.remove import (
    finish_removals,
    is_merged,
    ref_facts,
    remove_worktree_of,
    what_would_be_lost,
)
from git_agents.tasks import ports
from git_agents.tasks.selection import select_tasks
from git_agents.tasks.store import Task

USAGE = "git agent-clean [--force] [--dry-run] (--merged | --stale[=<days>] | --all | <id>...)"

DESCRIPTION = """\
Remove each task's worktree, delete its branch, and forget its live metadata (the notes on
merge commits stay). Without --force, a task is kept, with what would be lost named, when its
worktree holds uncommitted or untracked work, when its branch has commits not merged into
its target branch, or when its agent is still running. --force stops a running agent (its
whole process group) and discards all of that. Worktrees whose directories were deleted by
hand are pruned. The task's port block (GIT_AGENT_PORT) is returned; every clean also takes
back the port blocks and lease holds (refs/agents/port-holds/) of tasks that no longer exist,
as a lease killed midway leaves them. A task that runs in a pool slot (spawn --pool, git
agent-pool claim --task) gives the slot back to the pool, reset to the pool's base, instead of
removing it. A clone task (--isolation) that a command killed while making it from a pool
slot left half-made is finished first, with a warning.

--stale[=<days>] picks every task that is merged, or whose worktree has not changed for
<days> days (default 7; its newest file, directory or index modification) and whose commits
are all contained in some branch other than its own (or that has none): its branch is
deleted, but no commit is lost. The other rules still hold: a stale task whose worktree holds
uncommitted or untracked work, or whose agent still runs, is kept. --dry-run (-n) removes
nothing and lists what would be removed.
"""

STALE_DAYS = 7.0


def configure(p: argparse.ArgumentParser) -> None:
    """Declare clean's options."""
    p.add_argument("ids", nargs="*", metavar="<id>", help="tasks to remove")
    p.add_argument("--merged", action="store_true", help="every task whose branch is merged into its target")
    p.add_argument("--stale", nargs="?", type=float, const=STALE_DAYS, metavar="<days>",
                   help="every task that is merged, or whose worktree has not changed for <days> days "
                        f"(default {STALE_DAYS:g}) and whose commits another branch contains")
    p.add_argument("--all", action="store_true", help="every task")
    p.add_argument("-n", "--dry-run", action="store_true", help="remove nothing; list what would be removed")
    p.add_argument("-f", "--force", action="store_true",
                   help="remove even with unsaved work, unmerged commits or a running agent")
    add_verbosity(p)


def run(args: argparse.Namespace) -> int:
    """Remove the tasks that can be removed; report the rest."""
    stale = args.stale is not None
    if sum(bool(x) for x in (args.ids, args.merged, args.all, stale)) != 1:
        raise UsageError("name the tasks to remove, or pass one of --merged, --stale and --all")
    if stale and args.stale < 0:
        raise UsageError("--stale takes a number of days, 0 or more")
    repo = Repo.discover()
    if not args.dry_run:
        prune_worktrees(repo)
    tasks = select_tasks(repo, args.ids, all_tasks=args.merged or args.all or stale)
    contained: set[str] = set()  # stale tasks whose commits another branch holds
    if args.merged:
        tasks = [t for t in tasks if is_merged(repo, t)]
    elif stale:
        tasks, contained = _stale(repo, tasks, args.stale)
    kept = 0
    here = os.path.realpath(os.getcwd())
    facts = ref_facts(repo, tasks) if tasks else None
    removed: list[Task] = []
    try:
        for task in tasks:
            if task.worktree and (here + "/").startswith(os.path.realpath(task.worktree) + "/"):
                sys.stderr.write(f"error: not removing task {task.id}: you are inside its worktree\n"
                                 f"hint: cd out of {task.worktree} first\n")
                kept += 1
                continue
            reasons = [] if args.force else what_would_be_lost(repo, task, facts)
            if task.id in contained:  # its commits are in another branch: deleting its branch loses none
                reasons = [r for r in reasons if not r.startswith(f"its branch {task.branch} has ")]
            if reasons:
                sys.stderr.write(f"error: not removing task {task.id}: {'; '.join(reasons)}\n"
                                 f"hint: merge or save that work first, or pass --force to discard it\n")
                kept += 1
                continue
            if args.dry_run:
                print(f"Would remove task {task.id}" + (f" (worktree {task.worktree}, branch {task.branch})"
                                                        if args.verbosity > 0 else ""))
                continue
            # The worktrees one by one; then the branches, port blocks and records of all the tasks
            # at once (a git call per task would parse a config file that grows with the tasks).
            remove_worktree_of(repo, task, force=args.force)
            removed.append(task)
    finally:  # even when one removal fails: the tasks removed so far are finished
        finish_removals(repo, removed)
    if not args.dry_run:  # port blocks and holds left to tasks that no longer exist (a lease killed midway)
        ports.sweep(repo)
    for task in removed:
        if args.verbosity >= 0:
            print(f"Removed task {task.id}" + (f" (worktree {task.worktree}, branch {task.branch})"
                                               if args.verbosity > 0 else ""))
    if not tasks and args.verbosity >= 0:
        print("Nothing to clean.")
    return ExitCode.FAILED if kept else ExitCode.OK


def _stale(repo: Repo, tasks: list[Task], days: float) -> tuple[list[Task], set[str]]:
    """The tasks `--stale` picks, and which of them are picked because another branch holds their
    commits (not because they are merged)."""
    cutoff = time.time() - days * 86400
    picked: list[Task] = []
    contained: set[str] = set()
    for task in tasks:
        if is_merged(repo, task):
            picked.append(task)
            continue
        if task.worktree and os.path.isdir(task.worktree) and newest_mtime(task.worktree) > cutoff:
            continue  # changed lately: still in use
        if _held_elsewhere(repo, task):
            picked.append(task)
            contained.add(task.id)
    return picked, contained


def _held_elsewhere(repo: Repo, task: Task) -> bool:
    """Whether every commit of the task's branch is in some other branch (true when it has no branch)."""
    ref = branch_ref(task.branch)
    if not task.branch or not repo.git.has_ref(ref):
        return True
    others = repo.git.run("for-each-ref", "--format=%(refname)", "--contains", ref, HEADS).out.split()
    return any(other != ref for other in others)
