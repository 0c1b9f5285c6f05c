"""git agent-wait: block until agents exit."""

from __future__ import annotations

import argparse
import time

from git_agents.commands.options import add_verbosity
from git_agents.core.errors import ExitCode, UsageError
from git_agents.core.repo import Repo
from git_agents.tasks import waiting
from git_agents.tasks.selection import select_tasks
from git_agents.tasks.status import NO_CHANGE, agent_state
from git_agents.tasks.store import Task

USAGE = "git agent-wait [--timeout <seconds>] [--until-input] (--all | <id>...)"

DESCRIPTION = """\
Wait until the agents of the named tasks (or of every task, with --all) have exited, printing
each as it finishes. Tasks without a running agent are reported at once. A task since whose
spawn the shared config, hooks/ or info/exclude changed gets a warning with the diff (an agent's
git can write them; see git agent-status). Exits 1 if any agent exited non-zero, died, could
not start, exited 0 without committing its work ("exited 0, work not committed"), or if the
timeout passed first. An agent that exited 0 having changed nothing at all is said ("exited 0,
no change": there is nothing to merge, whatever the agent said) without making the status 1.

--until-input also returns once every agent has either exited or is, at the same moment, an
interactive one (--tmux) waiting for you (a question, a permission, a first-run dialog: see git agent-status), printing
"task <id>: waiting: <question>"; an agent that waits does not make the exit status 1.
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare wait's options."""
    p.add_argument("ids", nargs="*", metavar="<id>", help="the tasks to wait for")
    p.add_argument("--all", action="store_true", help="wait for every task")
    p.add_argument("--timeout", type=float, metavar="<seconds>", help="give up after this many seconds")
    p.add_argument("--until-input", action="store_true",
                   help="also stop waiting for an interactive agent that waits for its user")
    p.add_argument("--interval", type=float, default=0.2, metavar="<seconds>", help="how often to look (default 0.2)")
    add_verbosity(p)


def run(args: argparse.Namespace) -> int:
    """Wait, then report."""
    if not args.ids and not args.all:
        raise UsageError("name the tasks to wait for, or pass --all")
    if args.timeout is not None and not args.timeout >= 0:  # also refuses nan
        raise UsageError(f"--timeout must be 0 or more seconds, not '{args.timeout:g}'")
    repo = Repo.discover()
    tasks = select_tasks(repo, args.ids, all_tasks=args.all)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    pending = {t.id: t for t in tasks}
    failed = False
    while True:
        asking: dict[str, str] = {}  # --until-input: the tasks whose agent waits for its user now
        for task in list(pending.values()):
            state, code, _ = agent_state(repo, task)
            if state == "running" and args.until_input and task.tmux_pane:
                asks = waiting.detect(task, repo.task_dir(task.id))
                if asks is not None:
                    asking[task.id] = f"task {task.id}: {asks.state}"
            if state == "running":
                continue
            del pending[task.id]
            if state == "exited":
                line, bad = f"task {task.id}: exited {code}", code != 0
            elif state == "not started":
                line, bad = f"task {task.id}: no agent", False
            elif state == NO_CHANGE:  # said, not a failure: a task may rightly need no change
                line, bad = f"task {task.id}: {state}", False
            else:
                line, bad = f"task {task.id}: {state}", True
            failed |= bad
            if bad or args.verbosity >= 0:  # -q: only the tasks that failed
                print(line, flush=True)
            _warn_changes(repo, task)
        if asking and set(asking) == set(pending):  # every agent left waits for you, all at once
            if args.verbosity >= 0:
                print("\n".join(asking.values()), flush=True)
            break
        if not pending:
            break
        if deadline is not None and time.monotonic() >= deadline:
            print(f"timed out; still running: {', '.join(pending)}")
            return ExitCode.FAILED
        time.sleep(args.interval)
    return ExitCode.FAILED if failed else ExitCode.OK


def _warn_changes(repo: Repo, task: Task) -> None:
    """Say on stderr what changed in the shared config, hooks/ and info/exclude since the task was spawned."""
    import sys

    from git_agents.core.output import printable
    from git_agents.tasks.guard import changes_warning

    changed = changes_warning(repo, task)
    if changed:
        sys.stderr.write(printable(f"warning: task {task.id}: {changed}") + "\n")
