"""git agent-stop: end running agents (their whole process groups)."""

from __future__ import annotations

import argparse
import time

from git_agents.core.errors import ExitCode, UsageError
from git_agents.core.repo import Repo
from git_agents.tasks import agent
from git_agents.tasks.selection import select_tasks

USAGE = "git agent-stop [--all] [<id>...]"

DESCRIPTION = """\
Send SIGTERM to the whole process group of each named task's agent (every task's, with
--all), wait for it to end, and report. The worktree, branch and log are kept; the agent's
exit status (143 for SIGTERM) is recorded as for any other exit. Exits 1 if an agent was
not running.
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare stop's options."""
    p.add_argument("ids", nargs="*", metavar="<id>", help="the tasks whose agents to stop")
    p.add_argument("--all", action="store_true", help="every running agent")
    p.add_argument("--timeout", type=float, default=10, metavar="<seconds>",
                   help="how long to wait for each to end before sending SIGKILL (default 10)")


def run(args: argparse.Namespace) -> int:
    """Stop the agents."""
    if bool(args.ids) == bool(args.all):
        raise UsageError("name the tasks whose agents to stop, or pass --all")
    repo = Repo.discover()
    tasks = select_tasks(repo, args.ids, all_tasks=args.all)
    not_running = 0
    for task in tasks:
        running = bool(task.agent) and agent.read_exit(repo.task_dir(task.id)) is None
        if not running or not agent.stop(task.pid, task.pid_start):
            if not args.all:
                print(f"Task {task.id}: agent not running")
                not_running += 1
            continue
        deadline = time.monotonic() + args.timeout
        while agent.is_alive(task.pid, task.pid_start) and time.monotonic() < deadline:
            time.sleep(0.05)
        if agent.is_alive(task.pid, task.pid_start):
            agent.stop(task.pid, task.pid_start, 9)
        print(f"Stopped task {task.id} (agent pid {task.pid})")
    return ExitCode.FAILED if not_running else ExitCode.OK
