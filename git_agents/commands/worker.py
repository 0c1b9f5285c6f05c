"""git agent-worker: run tasks from the queue on a shared remote, on this machine."""

from __future__ import annotations

import argparse
import os

from git_agents.commands.options import add_isolation_option, add_verbosity
from git_agents.core.errors import UsageError
from git_agents.core.repo import Repo
from git_agents.remote.queue import RemoteQueue
from git_agents.remote.worker import Worker, default_name
from git_agents.tasks import agent
from git_agents.tasks.isolation import mode as isolation_mode

USAGE = ("git agent-worker [--remote <remote>] [--jobs <n>] [--agent <command>] [--isolation <mode>]"
         " [--lease <seconds>] [--once]")

DESCRIPTION = """\
Run tasks published with git agent-queue push, on this machine, in this clone. The worker
fetches the queue (refs/agents/* on the remote), claims a task by creating
refs/agents/claims/<id> on the remote with a push that succeeds only if no claim exists (so
exactly one worker wins each task), and runs it as git agent-run does: a worktree on branch
task-<id> from the remote's base branch, the prompt, the worktree made ready (agent.copy,
agent.link, a port block, agent.setup), and the agent (a preset name is expanded with this
machine's presets). --isolation (or agent.isolation) makes each task a clone of its own or
runs its agent in the bubblewrap sandbox, and agent.pool takes worktrees (or, isolated, clones)
from the pool, exactly as for git agent-run; a clone task's branch is fetched back from its
clone before it is published. A failing setup or a missing agent program is published as a failed
result (exit 125 or 127) with the output. While the agent works the
worker renews its claim every lease/3 seconds (a heartbeat). A claim whose heartbeat is older
than the lease (agent.lease, default 600 s) is taken over by another worker, again by
compare-and-swap on the claim's value.

When the agent exits, one atomic push publishes the task branch and refs/agents/results/<id>
(exit code, times, the last lines of the log) and deletes the claim; it succeeds only while the
claim is still this worker's, so a worker presumed dead can never publish over its successor.
The local worktree and branch are then removed (unless they hold uncommitted work).

The agent command is --agent, else the task's own agent from the task file, else agent.command.
A task's own agent is a command line written by whoever pushed the task: it runs only if it
names one of this machine's presets (claude, codex, ... or agent.preset.<name>) or
agent.trustQueueCommands is true; otherwise the worker says why and leaves the task unclaimed
for a worker that can run it. A queue entry that cannot be used (spec.json not a JSON object,
a NUL byte, no base) is published as a failed result at once, so no worker tries it again; one
written by a newer git-agents, or with a claim a newer git-agents wrote, is left alone. Each
such record gets one warning line naming the task and the problem. An agent that dies without
recording its exit (killed, out of memory) is published as failed (exit null) at once.

With a signing key (user.signingkey; gpg.format=ssh for SSH keys) the worker signs each result
commit (git commit-tree -S), so that git agent-merge --remote --verify-signatures can tell its
results from forged ones.
SIGTERM or Ctrl-C: take no new tasks, finish the ones in hand, exit; a second signal stops the
agents in hand and hands their tasks back to the queue. --once exits when every task in the
queue has a result instead of waiting for new ones (exit 1 if a task it ran failed or one
it could not start was left to other workers).
"""

EXAMPLES = """\
git agent-worker --jobs 4
git agent-worker --remote origin --agent 'claude -p "$(cat "$GIT_AGENT_PROMPT_FILE")"' --once
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare worker's options."""
    p.add_argument("--remote", metavar="<remote>", help="the shared remote (default: agent.remote, origin)")
    p.add_argument("--jobs", "-j", type=int, metavar="<n>", help="tasks run at once (default: agent.workerJobs)")
    p.add_argument("--agent", metavar="<command>", help="agent command for every task (overrides the task file)")
    add_isolation_option(p)
    p.add_argument("--lease", type=float, metavar="<seconds>",
                   help="a claim without a heartbeat for this long may be taken over (default: agent.lease)")
    p.add_argument("--poll", type=float, metavar="<seconds>",
                   help="how often to look for new tasks (default: agent.pollInterval)")
    p.add_argument("--name", metavar="<name>", help="this worker's name in the queue (default: agent.workerName,"
                   " else host:pid)")
    p.add_argument("--once", action="store_true", help="exit when every queued task has a result")
    add_verbosity(p, quiet="print only failures, take-overs and hand-backs", verbose="also print each heartbeat")


def _positive(value: float, what: str) -> float:
    if not value > 0:
        raise UsageError(f"{what} must be a positive number")
    return value


def run(args: argparse.Namespace) -> int:
    """Work the queue."""
    repo = Repo.discover()
    queue = RemoteQueue(repo, args.remote)
    # An option is checked as an option (usage error); a setting as a setting, naming its key.
    jobs = int(_positive(args.jobs, "--jobs")) if args.jobs is not None else \
        repo.setting_int("agent.workerJobs", positive=True, meaning="tasks")
    lease = _positive(args.lease, "--lease") if args.lease is not None else \
        repo.setting_number("agent.lease", positive=True, meaning="seconds")
    poll = _positive(args.poll, "--poll") if args.poll is not None else \
        repo.setting_number("agent.pollInterval", positive=True, meaning="seconds")
    name = args.name or repo.setting("agent.workerName") or default_name()
    command = agent.absolutise_program(args.agent, os.getcwd()) if args.agent else None
    isolated = isolation_mode(repo, args.isolation)  # refused before any task is claimed
    worker = Worker(repo, queue, jobs=jobs, agent_command=command, lease=lease, poll=poll, once=args.once,
                    name=name, verbosity=args.verbosity, isolation=isolated)
    return worker.run()
