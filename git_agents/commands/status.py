"""git agent-status: one row per task."""

from __future__ import annotations

import argparse
import os

from git_agents.commands.options import add_verbosity
from git_agents.core.git import quote_paths
from git_agents.core.output import table, use_colour
from git_agents.core.repo import Repo
from git_agents.tasks.selection import select_tasks
from git_agents.tasks.status import collect

USAGE = "git agent-status [--json] [<id>...]"

DESCRIPTION = """\
Show one row per task (or only the tasks named): its id, state, commits ahead of its target
branch, files changed, whether its worktree holds uncommitted or untracked work, its branch,
worktree and title. The state is one of: not started (no agent was run), running, exited <n>,
exited 0, work not committed (the agent left changes but no commit), died (the agent ended
without recording an exit status), failed (spawn could not start it, or its setup failed),
interrupted (git agent-run was stopped while it ran), worktree missing, conflict (the last
merge attempt conflicted), check-failed, merged, incomplete (the record was left half-written
by an interrupted command: nothing acts on it as on a whole one; clean removes it). An agent
is running while any process it started is alive. A worktree whose HEAD was detached and
holds commits that no branch contains adds ", detached HEAD with <n> commit(s) not on any
branch" to the state: that work is on no branch, and git agent-clean keeps the task until it is.
"""

JSON_VERSION = 1

JSON = """\
With --json, status prints one object: {"version": 1, "tasks": [...]}, one entry per task with
the fields id, title, branch, worktree, base (the target branch), state (as in the STATE
column), agent (not started, running, exited, died or failed to start), exit_code, pid,
started, finished, ahead (commits not in the target branch), files_changed, uncommitted
(true, false or null when the worktree is missing), worktree_exists, conflicts (paths),
reason, slot, detached_commits (commits only the worktree's detached HEAD holds, 0 when
its HEAD is on a branch, null when the worktree is missing) and disk_bytes (bytes its
worktree takes on disk, its .git file left out; null when the worktree is missing).
"version" changes only when a field is removed or changes meaning.
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare status's options."""
    p.add_argument("ids", nargs="*", metavar="<id>", help="only these tasks")
    p.add_argument("--json", action="store_true", help="print a JSON object (see git-agents(7))")
    add_verbosity(p, quiet="print only each task's id and state",
                  verbose="also print each agent's pid, when it started and finished, and its worktree's size on disk")


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def human_size(size: int | None) -> str:
    """Bytes as `du -h` shows them (1K = 1024): 512, 4.0K, 12M, 3.1G; "-" for unknown."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            break
        value /= 1024
    if not unit:
        return str(size)
    return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"


def run(args: argparse.Namespace) -> int:
    """Print the status of the tasks."""
    repo = Repo.discover()
    tasks = select_tasks(repo, args.ids)
    rows = collect(repo, tasks, sizes=args.json or args.verbosity > 0)
    if args.json:
        import json

        print(json.dumps({"version": JSON_VERSION, "tasks": [r.to_json() for r in rows]}, indent=2))
        return 0
    if not rows:
        print("No tasks. Start one with: git agent-spawn <id> --prompt <text> --agent <command>")
        return 0
    headers = ["ID", "STATE", "AHEAD", "FILES", "DIRTY", "BRANCH", "WORKTREE", "TITLE"]
    if args.verbosity > 0:
        headers[-1:-1] = ["PID", "STARTED", "FINISHED", "SIZE"]
    cells = []
    for r in rows:
        state = r.state
        if r.state == "conflict" and r.conflicts:
            state += f": {quote_paths(r.conflicts, repo.config)}"
        where = os.path.relpath(r.worktree) if r.worktree else "-"
        row = [r.id, state, "-" if r.ahead is None else str(r.ahead),
               "-" if r.files_changed is None else str(r.files_changed), _yes_no(r.uncommitted), r.branch, where]
        if args.verbosity > 0:
            row += [str(r.pid or "-"), r.started or "-", r.finished or "-", human_size(r.disk_bytes)]
        cells.append(row + [r.title])
    if args.verbosity < 0:
        headers, cells = headers[:2], [row[:2] for row in cells]
    print(table(headers, cells, colour=use_colour(args.color, config=repo.config), state_column=1))
    return 0
