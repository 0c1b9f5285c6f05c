"""git agent-send: type a follow-up into a running interactive agent."""

from __future__ import annotations

import argparse

from git_agents.core.errors import AgentError, UsageError
from git_agents.core.repo import Repo
from git_agents.tasks import tmux, waiting
from git_agents.tasks.selection import select_tasks
from git_agents.tasks.status import agent_state

USAGE = """\
git agent-send [--no-enter] <id> <text>...
   or: git agent-send <id> --key <key>...
"""

DESCRIPTION = """\
Type <text> (the words joined by spaces) into the tmux window of the task's running
interactive agent (see git agent-spawn --tmux), then press Enter. The text is typed as it
is, character by character: words such as C-c or Enter, and shell syntax such as $(id), arrive
as text, never as tmux key names or commands. Text that holds a control character (a new
line, a raw Ctrl-C, ESC, ...) is refused and nothing is typed: in a terminal each would act as
a key (Ctrl-C interrupts the agent, a new line submits). Send each line with its own
git agent-send.

--key <key> (repeatable, instead of text) presses keys, named as tmux names them (C-c,
Escape, Enter, Tab, Up, F1, M-x, or one character), in order, and no Enter after them: the
one explicit way to send Ctrl-C or Escape to an agent.

Fails when the task's agent is not an interactive one or has ended; a finished task takes a
follow-up with git agent-continue. Refuses, typing nothing, while the agent shows a first-run
dialog (claude's trust-this-folder, custom API key or bypass-permissions dialog, codex's
trust dialog): text typed there would answer the dialog, whose default ends the agent. Answer
it once by hand (git agent-attach <id>); the message says how to make it go away for good.
"""

EXAMPLES = """\
git agent-send 48 "yes, also update the tests"
git agent-send --no-enter 48 "/compact"   # typed, not yet submitted
git agent-send 48 --key Escape            # press Escape (interrupts claude's current turn)
"""


INTERMIXED = True  # `send 48 --no-enter <text>` as well as `send 48 --key C-c` (no text)


def configure(p: argparse.ArgumentParser) -> None:
    """Declare send's options."""
    p.add_argument("--no-enter", action="store_true", help="type the text without pressing Enter after it")
    p.add_argument("--key", action="append", default=[], metavar="<key>",
                   help="press this key (tmux's name: C-c, Escape, Enter, Up, ...) instead of typing text; repeatable")
    p.add_argument("id", metavar="<id>", help="the task whose agent to type into")
    p.add_argument("text", nargs="*", metavar="<text>", help="what to type (words are joined by spaces)")


def run(args: argparse.Namespace) -> int:
    """Type the text (or press the keys) into the task's window."""
    if bool(args.text) == bool(args.key):
        raise UsageError("give either the text to type or --key, not both" if args.text
                         else "give the text to type, or --key <key>")
    for key in args.key:
        if problem := tmux.key_problem(key):
            raise UsageError(problem)
    text = " ".join(args.text)
    if where := tmux.control_character(text):
        raise AgentError(f"the text holds a control character ({where}); nothing was typed",
                         hint=f"text is typed as text: send a key with --key (e.g. git agent-send {args.id} "
                              "--key C-c), each line with its own git agent-send")
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
    if args.key:
        tmux.send_keys(window, args.key)
    else:
        tmux.send_text(window, text, enter=not args.no_enter)
    return 0
