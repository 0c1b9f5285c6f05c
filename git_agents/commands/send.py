"""git agent-send: type a follow-up into a running interactive agent."""

from __future__ import annotations

import argparse

from git_agents.core.errors import AgentError
from git_agents.core.repo import Repo
from git_agents.tasks import tmux, waiting
from git_agents.tasks.selection import select_tasks
from git_agents.tasks.status import agent_state

USAGE = "git agent-send [--no-enter] <id> <text>..."

DESCRIPTION = """\
Type <text> (the words joined by spaces) into the tmux window of the task's running
interactive agent (see git agent-spawn --tmux), then press Enter. The text is typed as it
is, character by character: words such as C-c or Enter, and shell syntax such as $(id), arrive
as text, never as tmux key names or commands.

Fails when the task's agent is not an interactive one or has ended; a finished task takes a
follow-up with git agent-continue. Refuses, typing nothing, while the agent shows a first-run
dialog (claude's trust-this-folder, custom API key or bypass-permissions dialog, codex's
trust dialog): text typed there would answer the dialog, whose default ends the agent. Answer
it once by hand (git agent-attach <id>); the message says how to make it go away for good.
"""

EXAMPLES = """\
git agent-send 48 "yes, also update the tests"
git agent-send --no-enter 48 "/compact"   # typed, not yet submitted
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare send's options."""
    p.add_argument("--no-enter", action="store_true", help="type the text without pressing Enter after it")
    p.add_argument("id", metavar="<id>", help="the task whose agent to type into")
    p.add_argument("text", nargs="+", metavar="<text>", help="what to type (words are joined by spaces)")


def run(args: argparse.Namespace) -> int:
    """Type the text into the task's window."""
    repo = Repo.discover()
    task = select_tasks(repo, [args.id])[0]
    state, code, _ = agent_state(repo, task, check_work=False)
    if tmux.Window.of(task) is not None and state != "running":
        ended = f"exited with status {code}" if code is not None else state
        raise AgentError(f"task {task.id}'s agent is not running ({ended})",
                         hint=f"give it a follow-up with: git agent-continue {task.id} --prompt <text>")
    window = tmux.live_window(task, "give a follow-up to")
    asks = waiting.detect(task, repo.task_dir(task.id))
    if asks is not None and asks.dialog:  # typed text would answer it, "No, exit" by default
        raise AgentError(f"task {task.id}'s agent shows a first-run dialog ({asks.dialog}): {asks.question}; "
                         "nothing was typed", hint=asks.hint.replace("<id>", task.id))
    tmux.send_text(window, " ".join(args.text), enter=not args.no_enter)
    return 0
