"""git agent-run: run every task of a task file, at most `jobs` at a time, then merge them."""

from __future__ import annotations

import argparse
import sys

from git_agents.core.repo import Repo
from git_agents.run.orchestrator import Run, describe, finish_interrupted_merge, interrupted_merge_note, plan
from git_agents.run.taskfile import load

USAGE = "git agent-run [--resume] [--dry-run] <taskfile>"

DESCRIPTION = """\
Read <taskfile> (TOML), then do what a careful person would do by hand: create a worktree
for each task (as git agent-spawn does, made ready with .worktreeinclude, agent.copy,
agent.link, submodules, a port block and agent.setup), run the agents at most `jobs` at a
time, starting the next as one finishes, and show one line per task with its state, elapsed
time and the last line of its log (redrawn in place on a terminal, appended when the output
is not one). When all have finished, the successful tasks (agent exited 0 with commits and
nothing left uncommitted) are merged into the base branch in task order as git agent-merge
does, merged tasks are cleaned up, and the rest are kept with the reason. Exits 1 if any task
did not succeed.

`check` gates the merges as git agent-merge --check does: each task's merged result (on top
of the tasks merged before it) is checked out in a scratch worktree and the command runs there
with agent.shell; a task whose result fails is not merged but marked check-failed with the
tail of the output (shown before the report), and the other tasks go on. It needs merge = true.

With pool = true each new task takes a slot of the worktree pool, as git agent-spawn --pool
does (growing the pool up to agent.poolMax when no slot is free; a task that finds it full
fails, and --resume tries it again); cleaning a merged task gives its slot back to the pool
at the new base. With an isolation (clone or sandbox) the task's clone is made from the slot's
checkout instead, and the slot leaves the pool (see git agent-pool claim).

resolve = true (or an agent: a preset or a command) merges as git agent-merge --resolve does: a
task that conflicts with the target is handed to a resolver agent in its worktree (its own agent
for true) and, if the resolution passes the checks, merged in the same run.

A task with after = ["48", "50"] waits: it is recorded (git agent-status shows "waiting for 48,
50") and starts only once those tasks have merged, from the target as it is then (its branch is
moved to the target's tip before its worktree is made ready). Tasks that others wait for are
merged as soon as their agents finish; the rest at the end, as without after. A task whose
prerequisite failed, conflicted (unresolved) or failed its check is blocked and not run, and so
are the tasks that wait for it; the report names the prerequisite. A prerequisite you merged
yourself with plain git (git merge task-48, while the run waits or before --resume) counts as
merged when its agent has finished, as git agent-clean --merged decides it (its branch's tip is
in the target): the tasks after it start, and the report says "merged outside the run (<commit>)".
Unknown ids and cycles are refused when the file is read. jobs still caps how many agents run at
once. --dry-run prints the schedule: which tasks start at once and which wait for what.
With tmux = true (or agent.tmux) each agent runs interactively in its own tmux window, as git
agent-spawn --tmux does: git agent-attach and git agent-send reach it while the run waits.

An agent that exits 0 leaving changes but no commit is reported as "exited 0, work not
committed" (with agent.autoCommit true, its work is committed with the task's title).

Ctrl-C stops the agents the run started (their whole process groups) and keeps every worktree
and branch; `git agent-run --resume <taskfile>` picks up where it stopped: tasks whose agents
finished are not run again, interrupted ones are run again in their worktrees. A merge the
stopped run left half-done (its journal, see git agent-merge) is finished first, as git
agent-merge --continue would (a resolver it left running is waited for, then its result is
checked); a task that merged is never run again, and the tasks waiting for it start.

The task file:

    agent = "claude"        # a preset (claude, codex, aider, gemini) or a shell command;
                            # default: agent.command
    base = "main"           # default: the branch of the main worktree
    jobs = 2                # agents at once (default 1)
    merge = true            # merge the successful tasks at the end (default true)
    check = "make test"     # each merged result must pass it (as git agent-merge --check)
    pool = false            # take worktrees from git agent-pool (as git agent-spawn --pool)
    resolve = true          # an agent resolves conflicting tasks (true: each task's own; or a name)
    sparse = ["src/mixer"]  # sparse task worktrees (as git agent-spawn --sparse); default: agent.sparse
    tmux = false            # agents interactive in tmux windows (as git agent-spawn --tmux;
                            # default: agent.tmux)
    isolation = "clone"     # worktree, clone or sandbox (as git agent-spawn --isolation;
                            # default: agent.isolation)

    [[task]]
    id = "48"
    title = "free mixer channel on delete"          # default: the prompt's first line
    prompt = "Free the mixer channel when ..."      # or prompt_file = "tasks/48.md"
    agent = "codex"                                 # optional, for this task only
    after = ["47"]                                  # optional: start once task 47 has merged
    sparse = ["src/mixer", "docs"]                  # optional, for this task only ([]: a full checkout)

A relative prompt_file, and an agent command starting with ./, are taken from the task
file's directory.
"""

EXAMPLES = """\
git agent-run --dry-run tasks.toml
git agent-run tasks.toml
git agent-run --resume tasks.toml
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare run's options."""
    p.add_argument("taskfile", metavar="<taskfile>", help="the task file (TOML)")
    p.add_argument("--resume", action="store_true",
                   help="continue an earlier run of this task file: finished tasks are not run again")
    p.add_argument("--dry-run", action="store_true", help="print the plan and do nothing")


def run(args: argparse.Namespace) -> int:
    """Run the task file."""
    from git_agents.lifecycle.start import pool_request
    from git_agents.tasks.selection import resolve_base

    tf = load(args.taskfile)
    repo = Repo.discover()
    request = pool_request(repo, True, None) if tf.pool else None  # as spawn --pool: grows up to agent.poolMax
    base, base_commit = resolve_base(repo, tf.base or None)
    if args.resume and not args.dry_run:  # what a killed run left half-merged is finished first
        sys.stdout.write(finish_interrupted_merge(repo))
    jobs = plan(repo, tf, base, base_commit, resume=args.resume)
    if args.dry_run:
        print(interrupted_merge_note(repo) if args.resume else "", end="")
        print(describe(tf, jobs, base))
        return 0
    return Run(repo, tf, jobs, base, base_commit, request=request).execute()
