"""git agent-stop: end running agents (their whole process groups)."""

from __future__ import annotations

import argparse

from git_agents.core.errors import ExitCode, UsageError
from git_agents.core.repo import Repo
from git_agents.tasks import agent
from git_agents.tasks.selection import select_tasks

USAGE = "git agent-stop [--all] [<id>...]"

DESCRIPTION = """\
Send SIGTERM to the whole process group of each named task's agent (every task's, with
--all), wait until every process of the group has ended (SIGKILL to what is left after
--timeout seconds), and report. An agent runs until the last process it started has ended,
not only its first one: a shell that ignores SIGTERM, or a child left in the background, is
waited for too. The worktree, branch and log are kept; the agent's exit status (143 for
SIGTERM, 137 when it had to be killed) is recorded as for any other exit. Exits 1 if an
agent was not running.
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare stop's options."""
    p.add_argument("ids", nargs="*", metavar="<id>", help="the tasks whose agents to stop")
    p.add_argument("--all", action="store_true", help="every running agent")
    p.add_argument("--timeout", type=float, default=agent.STOP_GRACE, metavar="<seconds>",
                   help="how long to wait for each to end before sending SIGKILL (default 10)")


def run(args: argparse.Namespace) -> int:
    """Stop the agents."""
    if bool(args.ids) == bool(args.all):
        raise UsageError("name the tasks whose agents to stop, or pass --all")
    if args.timeout < 0:
        raise UsageError("--timeout takes a number of seconds, 0 or more")
    repo = Repo.discover()
    tasks = select_tasks(repo, args.ids, all_tasks=args.all)
    not_running = 0
    stopped = agent.stop_tasks([(t, repo.task_dir(t.id)) for t in tasks], grace=args.timeout)
    for task in tasks:
        pid = stopped.get(task.id)
        if pid is None:
            if not args.all:
                print(f"Task {task.id}: agent not running")
                not_running += 1
            continue
        print(f"Stopped task {task.id} (agent pid {pid})")
    return ExitCode.FAILED if not_running else ExitCode.OK
