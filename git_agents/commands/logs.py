"""git agent-logs: show (or follow) a task's agent log."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import IO

from git_agents.core.errors import AgentError
from git_agents.core.repo import Repo
from git_agents.tasks import agent
from git_agents.tasks.selection import select_tasks
from git_agents.tasks.status import agent_state

USAGE = "git agent-logs [-f] <id>"

DESCRIPTION = """\
Print the log of a task's agent: everything it wrote to stdout and stderr, with the output
of agent.setup before it. With -f, keep printing what the agent writes until it exits.
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare logs' options."""
    p.add_argument("id", metavar="<id>", help="the task")
    p.add_argument("-f", "--follow", action="store_true", help="follow the log until the agent exits")
    p.add_argument("--interval", type=float, default=0.2, metavar="<seconds>", help=argparse.SUPPRESS)


def _copy(fh: IO[bytes], out: IO[bytes]) -> bool:
    chunk = fh.read()
    if chunk:
        out.write(chunk)
        out.flush()
    return bool(chunk)


def run(args: argparse.Namespace) -> int:
    """Print the log."""
    repo = Repo.discover()
    task = select_tasks(repo, [args.id])[0]
    path = agent.log_path(repo.task_dir(task.id))
    if not os.path.exists(path) and not args.follow:
        raise AgentError(f"task {task.id} has no log yet", hint="its agent has not been started")
    out = sys.stdout.buffer
    while args.follow and not os.path.exists(path):
        if agent_state(repo, task, check_work=False)[0] != "running":
            raise AgentError(f"task {task.id} has no log yet", hint="its agent has not been started")
        time.sleep(args.interval)
    with open(path, "rb") as fh:
        _copy(fh, out)
        while args.follow:
            if _copy(fh, out):
                continue
            if agent_state(repo, task, check_work=False)[0] != "running":
                _copy(fh, out)  # what it wrote just before it ended
                break
            time.sleep(args.interval)
    return 0
