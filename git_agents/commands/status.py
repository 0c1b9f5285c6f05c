"""git agent-status: one row per task."""

from __future__ import annotations

import argparse
import os

from git_agents.commands.options import add_verbosity
from git_agents.core.errors import AgentError, ExitCode, UsageError
from git_agents.core.git import quote_paths
from git_agents.core.output import table, use_colour
from git_agents.core.repo import Repo
from git_agents.tasks import usage
from git_agents.tasks.selection import select_tasks
from git_agents.tasks.status import TaskStatus, collect
from git_agents.tasks.store import TaskState, load_tasks

USAGE = """\
git agent-status [--json] [<id>...]
git agent-status --watch[=<seconds>] [--exit-when-done] [<id>...]
"""

DESCRIPTION = """\
Show one row per task (or only the tasks named): its id, state, commits ahead of its target
branch, files changed, whether its worktree holds uncommitted or untracked work, its branch,
worktree and title. The state is one of: not started (no agent was run), running, exited <n>,
exited 0, work not committed (the agent left changes but no commit), exited 0, no change (it
committed nothing and left its worktree as it found it: it did nothing, whatever it said), died (the agent ended
without recording an exit status), failed (spawn could not start it, or its setup failed),
interrupted (git agent-run was stopped while it ran), worktree missing, conflict (the last
merge attempt conflicted), check-failed, merged, incomplete (the record was left half-written
by an interrupted command: nothing acts on it as on a whole one; clean removes it). An agent
is running while any process it started is alive. A worktree whose HEAD was detached and
holds commits that no branch contains adds ", detached HEAD with <n> commit(s) not on any
branch" to the state: that work is on no branch, and git agent-clean keeps the task until it is.
After the table, a warning on stderr for each task whose agent's git changed what the tasks
share (its target moved to its commit, its branch rewritten or moved back, its HEAD off its
branch, the shared config, hooks/ or info/exclude changed since spawn), with how to recover.

An interactive agent (--tmux) that waits for you shows as waiting, with the question's first
line where it can be had (waiting: Do you want to proceed?), or as waiting: first-run dialog
(<name>) at one of claude's one-time dialogs (trust-folder, api-key, bypass-permissions) or
codex's (codex-trust): answer those once by hand (git agent-attach <id>). Claude Code and
codex say themselves when they wait (hooks, notify); for the others the window is read.

When an agent's CLI reports what it used (the claude, codex, gemini, opencode and aider
presets do), a TOKENS column shows the tokens sent and received over all its runs (rounds
and conflict resolvers) and the cost in dollars where the CLI gives one: 12.3k/1.1k $0.04.

--watch redraws the table every <seconds> (default 2) until Ctrl-C (exit 130, as for any
command Ctrl-C ends), for a terminal or a log
where the full-screen `git agent-top` does not fit: on a terminal the screen is cleared and
the table drawn again under a line with the time; when the output is not a terminal (a CI
log, a file) a new table is printed only when something in it changed. --exit-when-done
ends the watch once no agent is running (exit 0). The interval is taken only after '=':
`--watch 5` watches task 5 (and if there is none, says to write --watch=5).
"""

EXAMPLES = """\
git agent-status                         # every task, once
git agent-status --watch                 # redraw every 2 seconds until Ctrl-C
git agent-status --watch=10 --exit-when-done > run.log   # a new table on each change, until all ended
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
worktree takes on disk, its .git file left out; null when the worktree is missing),
tokens_in, tokens_out and cost_usd (over all its runs, as its CLI reported them; null when
it reported none) and runs (each run's figures: round, kind (agent or resolve), tokens_in,
tokens_out, cost_usd; for codex also session and session_tokens, its session's totals),
waiting (the question an interactive agent waits on, "" when it
waits but the question is not known, null when it does not wait) and dialog (the first-run
dialog it shows, or null); and "warnings": {task id: [lines]}, what an agent's git did to
what the tasks share (a target moved, a branch rewritten or moved back, a HEAD off its
branch, the shared config, hooks/ or info/exclude changed since spawn, as a diff), also
printed after the table on stderr.
"version" changes only when a field is removed or changes meaning.
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare status's options."""
    p.add_argument("ids", nargs="*", metavar="<id>", help="only these tasks")
    p.add_argument("--json", action="store_true", help="print a JSON object (see git-agents(7))")
    p.add_argument("--watch", nargs="?", const=2.0, type=_seconds, metavar="<seconds>",
                   help="redraw the table every <seconds> (default 2) until Ctrl-C")
    p.add_argument("--exit-when-done", action="store_true", help="with --watch: stop once no agent is running")
    add_verbosity(p, quiet="print only each task's id and state",
                  verbose="also print each agent's pid, when it started and finished, and its worktree's size on disk")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not value > 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds above 0: '{text}'")
    return value


def _is_seconds(text: str) -> bool:
    """Whether `text` would do as --watch's interval."""
    try:
        return _seconds(text) > 0
    except argparse.ArgumentTypeError:
        return False


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
    """Print the status of the tasks (once, or --watch: again and again)."""
    if args.watch is not None:
        if args.json:
            raise UsageError("--watch cannot be combined with --json")
        return _watch(args)
    if args.exit_when_done:
        raise UsageError("--exit-when-done needs --watch")
    repo = Repo.discover()
    tasks = select_tasks(repo, args.ids)
    rows = collect(repo, tasks, sizes=args.json or args.verbosity > 0)
    from git_agents.tasks.integrity import warnings

    found = warnings(repo, tasks)
    if args.json:
        import json

        print(json.dumps({"version": JSON_VERSION, "tasks": [r.to_json() for r in rows], "warnings": found},
                         indent=2))
        return 0
    print(render(repo, rows, args))
    _print_warnings(found)
    return 0


def _print_warnings(found: dict[str, list[str]]) -> None:
    """What an agent did to what the tasks share (tasks.integrity.warnings), on stderr."""
    import sys

    from git_agents.core.output import printable

    for task_id, lines in found.items():
        for line in lines:
            sys.stderr.write(printable(f"warning: task {task_id}: {line}") + "\n")


def render(repo: Repo, rows: list[TaskStatus], args: argparse.Namespace) -> str:
    """The status table of `rows` (or the hint to spawn a first task), as status prints it."""
    if not rows:
        return "No tasks. Start one with: git agent-spawn <id> --prompt <text> --agent <command>"
    headers = ["ID", "STATE", "AHEAD", "FILES", "DIRTY", "BRANCH", "WORKTREE", "TITLE"]
    counted = any(r.tokens_in is not None for r in rows)  # only where some agent's CLI reported usage
    if counted:
        headers[5:5] = ["TOKENS"]
    if args.verbosity > 0:
        headers[-1:-1] = ["PID", "STARTED", "FINISHED", "SIZE"]
    cells = []
    for r in rows:
        state = r.state
        if r.state == TaskState.CONFLICT and r.conflicts:
            state += f": {quote_paths(r.conflicts, repo.config)}"
        where = os.path.relpath(r.worktree) if r.worktree else "-"
        row = [r.id, state, "-" if r.ahead is None else str(r.ahead),
               "-" if r.files_changed is None else str(r.files_changed), _yes_no(r.uncommitted), r.branch, where]
        if counted:
            row[5:5] = [usage.short(r.spent)]
        if args.verbosity > 0:
            row += [str(r.pid or "-"), r.started or "-", r.finished or "-", human_size(r.disk_bytes)]
        cells.append(row + [r.title])
    if args.verbosity < 0:
        headers, cells = headers[:2], [row[:2] for row in cells]
    return table(headers, cells, colour=use_colour(args.color, config=repo.config), state_column=1)


def _watch(args: argparse.Namespace) -> int:
    """--watch: the table every args.watch seconds; on a terminal redrawn in place, elsewhere
    printed again only when it changed. Ctrl-C ends it with exit 130, quietly."""
    import signal
    import sys
    import time

    repo = Repo.discover()
    try:
        select_tasks(repo, args.ids)  # unknown ids are an error at once, not a silently empty table
    except AgentError as error:
        number = next((i for i in args.ids if i not in load_tasks(repo) and _is_seconds(i)), None)
        if number is None:
            raise
        raise AgentError(error.message, hint=f"--watch takes its interval only after '=': to redraw every "
                                                  f"{number} seconds, write --watch={number}") from None
    wanted = set(args.ids)
    tty = sys.stdout.isatty()
    last = None
    try:
        while True:
            repo = Repo.discover()  # the config (tasks, colour) as it is now
            tasks = [t for t in load_tasks(repo).values() if not wanted or t.id in wanted]
            rows = collect(repo, tasks)
            text = render(repo, rows, args)
            if tty:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                head = f"Every {args.watch:g}s: git agent-status"
                sys.stdout.write(f"\x1b[H\x1b[2J{head}{stamp.rjust(max(1, _width() - len(head)))}\n\n{text}\n")
                sys.stdout.flush()
            elif text != last:
                sys.stdout.write(("\n" if last is not None else "") + f"{time.strftime('%H:%M:%S')}\n{text}\n")
                sys.stdout.flush()
            last = text
            if args.exit_when_done and not any(r.agent == "running" for r in rows):
                return ExitCode.OK
            time.sleep(args.watch)
    except KeyboardInterrupt:
        # Through `git`, a second SIGINT follows: git, dying of the first, passes it on to its child.
        # Caught again at exit it would print a traceback ("Exception ignored in ... threading"): ignore it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # 130, as for `watch` or `tail -f` ended by Ctrl-C, and as `git agent-status` gives anyway
        # (git itself dies of the SIGINT the terminal sends it): the same code either way.
        if tty:
            sys.stdout.write("\n")
        return ExitCode.INTERRUPTED


def _width() -> int:
    """The terminal's width (80 when unknown)."""
    import shutil

    return shutil.get_terminal_size((80, 24)).columns
