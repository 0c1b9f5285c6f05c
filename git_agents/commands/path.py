"""git agent-path: print the directory a task works in, for `cd "$(git agent-path 48)"`."""

from __future__ import annotations

import argparse
import os
import sys

from git_agents.core.errors import AgentError
from git_agents.core.output import printable
from git_agents.core.repo import Repo
from git_agents.tasks.selection import select_tasks

USAGE = "git agent-path <id>"

DESCRIPTION = """\
Print the absolute path of a task's worktree (the directory its agent works in) and nothing
else, so that `cd "$(git agent-path 48)"` takes you there, as `git rev-parse --show-toplevel`
does for the repository. A task whose worktree is gone (removed by hand) is an error
(exit 128) that says how to get rid of the task.
"""

EXAMPLES = """\
cd "$(git agent-path 48)"            # work in task 48's worktree
git -C "$(git agent-path 48)" log    # or run a command there
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare path's options."""
    p.add_argument("id", metavar="<id>", help="the task")


def run(args: argparse.Namespace) -> int:
    """Print the task's worktree."""
    repo = Repo.discover()
    task = select_tasks(repo, [args.id])[0]
    if not task.worktree or not os.path.isdir(task.worktree):
        raise AgentError(f"task {task.id} has no worktree" + (f" (it was at {printable(task.worktree)})"
                                                               if task.worktree else ""),
                         hint=f"remove the task with: git agent-clean {task.id}")
    sys.stdout.flush()
    sys.stdout.buffer.write(os.fsencode(task.worktree) + b"\n")  # exact bytes: `cd` needs the real name
    return 0
