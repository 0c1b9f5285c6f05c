"""git agent-attach: show an interactive agent's tmux window."""

from __future__ import annotations

import argparse
import os
import sys

from git_agents.core.errors import AgentError
from git_agents.core.repo import Repo
from git_agents.tasks import tmux
from git_agents.tasks.selection import select_tasks

USAGE = "git agent-attach <id>"

DESCRIPTION = """\
Attach this terminal to the tmux window where the task's interactive agent runs (one started
with git agent-spawn --tmux), so you can read its screen and answer it; detach again with
tmux's prefix key and d (C-b d by default). Inside tmux (with $TMUX set to the same server)
the current client switches to the window instead of attaching a nested one.

Fails when the task's agent was not started in tmux, or when its window is gone because the
agent has ended (its output stays in git agent-logs).
"""

EXAMPLES = """\
git agent-spawn --tmux 48 --agent claude --prompt-file tasks/48.md
git agent-attach 48                 # answer its questions; C-b d detaches
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare attach's options."""
    p.add_argument("id", metavar="<id>", help="the task whose window to show")


def run(args: argparse.Namespace) -> int:
    """Replace this process with the tmux client that shows the task's window."""
    repo = Repo.discover()
    task = select_tasks(repo, [args.id])[0]
    window = tmux.live_window(task, "attach")
    argv = tmux.attach_argv(window, os.environ.get("TMUX"))
    if argv[3] == "attach-session" and not os.isatty(sys.stdin.fileno()):
        raise AgentError("git agent-attach needs a terminal: standard input is not one",
                         hint=f"run it in a terminal, or: {' '.join(argv)}")
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}  # attaching from another server is not nesting
    sys.stdout.flush()
    os.execve(argv[0], argv, env)
    return 0  # not reached
