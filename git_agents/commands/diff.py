"""git agent-diff: a task's change against the point where it left its target, for review before merging."""

from __future__ import annotations

import argparse
import sys

from git_agents.core.errors import ExitCode, UsageError
from git_agents.core.output import printable
from git_agents.core.refs import branch_ref
from git_agents.core.repo import Repo
from git_agents.tasks.selection import select_tasks
from git_agents.tasks.status import agent_state
from git_agents.tasks.store import Task, TaskState

USAGE = """\
git agent-diff [--stat] <id> [--] [<pathspec>...]
git agent-diff --all [--stat]
"""

DESCRIPTION = """\
Show the change a task's branch makes against the point where it left its target branch
(`git diff <target>...<branch>`: the merge base of the two, so later commits on the target are
not shown as undone). A merged task shows what it merged (from the commit it started at).
Git's own pager and colour rules apply (core.pager, color.diff, --color passed through); with
pathspecs only those paths are shown.

--all shows, one after the other, the diffstat of every finished task that has not been
merged: its agent has exited (or it has none) and its branch has commits. Use it to review a
run before `git agent-merge --all`.
"""

EXAMPLES = """\
git agent-diff 48                  # the whole change of task 48, in git's pager
git agent-diff --stat 48           # which files it changes, and how much
git agent-diff 48 -- src/mixer/    # only under src/mixer/
git agent-diff --all               # every finished task's diffstat, before git agent-merge --all
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare diff's options."""
    p.add_argument("id", nargs="?", metavar="<id>", help="the task")
    p.add_argument("pathspecs", nargs="*", metavar="<pathspec>", help="limit the diff to these paths")
    p.add_argument("--all", action="store_true", help="the diffstat of every finished task not yet merged")
    p.add_argument("--stat", action="store_true", help="show a diffstat instead of the patch")


def _range(task: Task) -> str:
    """The commits a task brings: from where it left its target (or, once merged, where it started) to its tip."""
    if task.state == TaskState.MERGED and task.base_commit:
        return f"{task.base_commit}..{branch_ref(task.branch)}"
    return f"{branch_ref(task.base)}...{branch_ref(task.branch)}"


def _colour(args: argparse.Namespace) -> list[str]:
    color = getattr(args, "color", None)
    return [f"--color={color}"] if color else []


def run(args: argparse.Namespace) -> int:
    """Show the diff (or diffstats)."""
    if bool(args.id) == bool(args.all):
        raise UsageError("name one task, or pass --all")
    if args.all and args.pathspecs:
        raise UsageError("--all takes no pathspecs")
    repo = Repo.discover()
    if not args.all:
        task = select_tasks(repo, [args.id])[0]
        stat = ["--stat"] if args.stat else []
        return repo.git.passthrough("diff", *_colour(args), *stat, _range(task), "--", *args.pathspecs)
    failed = 0
    shown = 0
    for task in select_tasks(repo, [], all_tasks=True):
        state = agent_state(repo, task, check_work=False)[0]
        if task.state == TaskState.MERGED or state == "running" or not repo.git.has_branch(task.branch):
            continue
        ahead = repo.git.run("rev-list", "--count", _range(task).replace("...", ".."), ok=(0, 128)).out.strip()
        if not ahead.isdigit() or int(ahead) == 0:
            continue  # no commits yet
        sys.stdout.write(("\n" if shown else "") + printable(f"task {task.id}: {task.title} ({task.branch})") + "\n")
        sys.stdout.flush()
        shown += 1
        if repo.git.passthrough("--no-pager", "diff", *_colour(args), "--stat", _range(task)) != 0:
            failed += 1
    if not shown:
        print("No finished task with commits to show.")
    return ExitCode.FAILED if failed else ExitCode.OK
