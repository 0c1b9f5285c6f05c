"""git agent-top: a full-screen view of every task, refreshed live, with keys that act on them."""

from __future__ import annotations

import argparse
import sys

from git_agents.core.errors import AgentError, ExitCode
from git_agents.core.repo import Repo

USAGE = "git agent-top [--interval <seconds>]"

DESCRIPTION = """\
A full-screen terminal view of the repository's tasks: one row per task with its id, state (as
in git agent-status), elapsed time, commits ahead of its target, files changed, whether its
worktree holds unsaved work, the tasks (or the target branch) it is predicted to conflict with
(as git agent-conflicts), its title (cut at 30 characters) and the last line of its log. It
refreshes every second at a cost that does not grow with the number of tasks: the
configuration, the branch tips, the agents' exit records and the logs' tails are read each
time; commits and files are counted again only when a branch or task changed, and a worktree's
`git status` runs only when its index or HEAD changed, or every 10 seconds (at most 10 a
second).

Keys: Up/Down, PgUp/PgDn, Home/End choose a task. Enter or l opens its log,
followed as it grows (Esc goes back); d shows git agent-diff of it in a scrollable view; a
attaches to an interactive agent's tmux session (git agent-attach); s asks for a follow-up
message and sends it (git agent-send); k stops its agent (git agent-stop) after asking; m
merges it and M merges every finished task (git agent-merge --all), each after showing the
git agent-merge --dry-run prediction and asking; c removes it (git agent-clean, which refuses
to lose work and says why); n asks for a new task's text and starts it (git agent-spawn
--prompt <text>: the next free id, with agent.command); q quits. A question is shown once, with
y (yes) and n (no) as its answers. Each action runs the matching command and shows its
output. It needs a terminal; in a log or a pipe use git agent-status --watch.
"""

EXAMPLES = """\
git agent-top                   # watch and steer every task
git agent-top --interval 5      # refresh every 5 seconds
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare top's options."""
    p.add_argument("--interval", type=float, default=1.0, metavar="<seconds>",
                   help="seconds between two refreshes (default 1)")


def run(args: argparse.Namespace) -> int:
    """Run the full-screen view until q."""
    repo = Repo.discover()
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise AgentError("git agent-top needs a terminal",
                         hint="in a log or a pipe, use `git agent-status --watch`")
    try:
        from git_agents.tui.app import TopApp  # Textual: imported by this command only
    except ImportError as error:
        raise AgentError(f"git agent-top needs Textual ({error})",
                         hint="install it: pip install 'textual>=8.0'") from None
    TopApp(repo, interval=max(0.1, args.interval)).run()
    return ExitCode.OK
