"""git agent-clean: remove task worktrees, branches and live metadata, never losing work."""

from __future__ import annotations

import argparse
import os
import sys

from git_agents.commands.options import add_verbosity
from git_agents.core.errors import ExitCode, UsageError
from git_agents.core.repo import Repo
from git_agents.core.worktrees import (
    prune_worktrees,
)
from git_agents.lifecycle.remove import is_merged, remove_task, what_would_be_lost
from git_agents.tasks.selection import select_tasks

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
