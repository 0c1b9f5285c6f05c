"""git agent-prompt: print the prompt a task's agent was given."""

from __future__ import annotations

import argparse
import os
import sys

from git_agents.core.errors import AgentError
from git_agents.core.repo import Repo
from git_agents.tasks.selection import select_tasks

USAGE = "git agent-prompt <id>"

DESCRIPTION = """\
Print the rendered prompt of a task: the prompt template filled with the task's text, exactly
as its agent reads it from $GIT_AGENT_PROMPT_FILE.
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare prompt's options."""
    p.add_argument("id", metavar="<id>", help="the task")
    p.add_argument("--path", action="store_true", help="print the prompt file's path instead of its text")


def run(args: argparse.Namespace) -> int:
    """Print the prompt (or its path)."""
    repo = Repo.discover()
    task = select_tasks(repo, [args.id])[0]
    path = os.path.join(repo.task_dir(task.id), "prompt.md")
    if args.path:
        print(path)
        return 0
    try:
        with open(path, encoding="utf-8") as fh:
            sys.stdout.write(fh.read())
    except OSError as exc:
        raise AgentError(f"task '{task.id}' has no prompt file ({exc.strerror})") from exc
    return 0
