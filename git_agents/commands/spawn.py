"""git agent-spawn: create a worktree on a new branch per task, write the prompt, start the agent."""

from __future__ import annotations

import argparse
import os
import sys

from git_agents.commands.options import add_isolation_option, add_sparse_option, add_task_text_options, add_verbosity
from git_agents.core.errors import AgentError, ExitCode, UsageError
from git_agents.core.repo import Repo
from git_agents.core.settings import parse_bool
from git_agents.lifecycle import start as starting
from git_agents.tasks import agent
from git_agents.tasks.ids import check_id, id_problem
from git_agents.tasks.isolation import mode as isolation_mode
from git_agents.tasks.presets import expand as expand_preset
from git_agents.tasks.presets import expand_interactive
from git_agents.tasks.selection import resolve_base
from git_agents.tasks.tmux import tmux_program

USAGE = "git agent-spawn [<options>] [<id>...]"

DESCRIPTION = """\
Without an <id>, spawn takes the next free number (one above every numeric task id and
task-<n> branch there is) and says which in its message (--porcelain: the `id` line); two
spawns at once never take the same number. `git agent-path <id>` prints the task's worktree,
for `cd "$(git agent-path 12)"`.

For each <id>, create the worktree <root>/task-<id> on a new branch task-<id> that starts at
the base branch (with --pool: switch a free slot of the worktree pool to that branch instead,
see git agent-pool), write the agent's prompt to a file, and, when an agent command is given
(--agent or agent.command), start it detached in the worktree through the shell. spawn
returns at once; use git agent-status and git agent-wait to follow the agents. Several new
worktrees are made side by side (their branches in one transaction, their checkouts at once),
each agent starting as soon as its own worktree is ready; a task that cannot be made is named
with the reason, leaves nothing behind, and the others are made all the same (exit 1).

The agent runs with GIT_AGENT_TASK, GIT_AGENT_BRANCH, GIT_AGENT_WORKTREE, GIT_AGENT_TITLE and
GIT_AGENT_PROMPT_FILE set, and GIT_AGENT_PORT (the first of a block of ports leased to the
task alone, returned by git agent-clean), GIT_AGENT_INDEX (1, 2, ...) and GIT_AGENT_LAUNCH
(an id of this start of the agent, by which git-agents finds its processes); its output goes to
agent.log in the task's directory inside the repository's git directory. Without an agent
command spawn only prepares the worktree. With --tmux (or agent.tmux) each agent runs
interactively in its own window, named after the task, of one tmux session per repository
(started detached when missing): a preset's interactive form, the tool's own UI with the prompt
as its first message. Its output still goes to agent.log and its exit is still recorded; git
agent-attach shows the window, git agent-send types into it. --agent claude, codex, gemini,
aider or opencode runs that tool unattended on the prompt file (git config
agent.preset.<name> adds or overrides
a preset).

A new worktree (not a pool slot) runs the post-checkout hook as `git worktree add` does
(<null id> <commit> 1, its output on stderr; its exit status does not undo the spawn).

Each new worktree is made ready before its agent starts: the ignored files listed in
.worktreeinclude and the agent.copy globs are copied from the main worktree, agent.link
paths are symlinked, the submodules initialised in the main worktree are initialised
(cloned from the main worktree's own submodule repositories, without network; one that
fails is a warning in the task's log unless agent.submodules is required), and agent.setup
runs there. If setup fails, the task fails with its output shown and the agent is not
started.

With --sparse <dir>... (or agent.sparse) the worktree is a cone-mode sparse checkout: only
those directories and the files at the top level are written to disk. Merging is unchanged
(merges are built in memory, not in the worktree), and the agent can widen its checkout with
git sparse-checkout add <dir>.

The agent's git is guarded (agent.guard): it may move only its task branch and its worktree's
own refs; a stash, tag, note, another branch or a push is refused with what to do instead,
and the user's hooks still run. The worktree is locked (git worktree lock). With
--isolation=clone (or agent.isolation) the task's directory is instead a self-contained local
clone of the repository, its branch fetched back into the repository when the agent has
ended; with --isolation=sandbox the agent also runs under bubblewrap, everything read-only but
its clone, a private temp directory and its tool's own state (agent.sandboxNetwork,
agent.sandboxWritable). With --pool such a clone is made from a free pool slot's checkout,
which then leaves the pool (see git agent-pool claim).

The task text comes from --prompt, --prompt-file (a path may contain {id}; - reads standard
input). The prompt file is the template (agent.promptTemplate, or a built-in one telling the
agent where it works, to commit to its branch and not to merge) filled with the task text.
"""

PORCELAIN = """\
With --porcelain, spawn prints one block per task, blocks separated by a blank line, each line
a key and a value separated by one space: `id <id>`, `branch <branch>`, `worktree <absolute
path>`, then `pid <pid>` when its agent started (and `tmux <session>:<window>` with --tmux),
or `error <reason>` when it could not start. New keys may be added; existing ones keep their
meaning.
"""

EXAMPLES = """\
git agent-spawn 48 --title "free mixer channel on delete" --prompt "Free the mixer channel when ..." \\
        --agent 'claude -p "$(cat "$GIT_AGENT_PROMPT_FILE")"'
git agent-spawn 50 51 --prompt-file tasks/{id}.md --agent ./my-agent.sh
git agent-spawn --prompt "Fix the typo in the README"    # the next free number, e.g. task 52
git agent-spawn --porcelain 52 --prompt "..." | sed -n 's/^worktree //p'   # where task 52 works
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare spawn's options."""
    p.add_argument("ids", nargs="*", metavar="<new-id>",
                   help="task ids: letters, digits, '.', '_' or '-' (none: the next free number)")
    add_task_text_options(p)
    p.add_argument("--agent", metavar="<command>",
                   help="agent command line, run with the shell in the worktree, or a preset: claude, codex, gemini, "
                        "aider, opencode (see agent.preset.<name>)")
    p.add_argument("--no-agent", action="store_true", help="do not start an agent, even if agent.command is set")
    p.add_argument("--tmux", action=argparse.BooleanOptionalAction, default=None,
                   help="run each agent interactively in its own window of the repository's tmux session "
                        "(a preset's interactive form; see git agent-attach, git agent-send; default: agent.tmux)")
    p.add_argument("--base", metavar="<branch>",
                   help="branch to start from and merge back into (default: the main worktree's branch)")
    p.add_argument("--pool", action=argparse.BooleanOptionalAction, default=None,
                   help="take a free slot of the worktree pool instead of creating a worktree, adding a slot "
                        "when none is free (default: agent.pool)")
    p.add_argument("--pool-max", type=int, metavar="<n>",
                   help="take a pool slot, never growing the pool beyond <n> slots "
                        "(default: agent.poolMax; 0: no limit)")
    add_sparse_option(p)
    add_isolation_option(p)
    p.add_argument("--porcelain", action="store_true",
                   help="print `key value` lines (id, branch, worktree, pid) per task, for scripts")
    add_verbosity(p)


def run(args: argparse.Namespace) -> int:
    """Spawn each task."""
    for task_id in args.ids:
        check_id(task_id)
    if len(set(args.ids)) != len(args.ids):
        raise AgentError("the same task id is given twice")
    repo = Repo.discover()
    slots = starting.pool_request(repo, args.pool, args.pool_max)
    isolated = isolation_mode(repo, args.isolation)
    command = "" if args.no_agent else (args.agent if args.agent is not None else repo.setting("agent.command"))
    in_tmux = args.tmux if args.tmux is not None else parse_bool(repo.setting("agent.tmux"))
    if in_tmux and command:
        tmux_program()  # fail before any task is created
    expanded = expand_interactive(repo, command) if in_tmux else expand_preset(repo, command)
    if not args.ids and args.sparse:
        _refuse_ids_taken_as_directories(repo, resolve_base(repo, args.base)[1], args.sparse)
    request = starting.StartRequest(
        tuple(args.ids), prompt=args.prompt, prompt_file=args.prompt_file, title=args.title or "", base=args.base,
        command=agent.absolutise_program(expanded, os.getcwd()) if command else "", in_tmux=in_tmux,
        pool=slots, sparse=args.sparse, isolation=isolated)
    failed = 0
    for n, outcome in enumerate(starting.start_tasks(repo, request)):
        if outcome.error is not None and len(args.ids) <= 1:
            raise outcome.error
        failed += _report(args, repo, request, outcome, first=n == 0)
    return ExitCode.FAILED if failed else ExitCode.OK


def _report(args: argparse.Namespace, repo: Repo, request: starting.StartRequest, outcome: starting.Started, *,
            first: bool) -> int:
    """Say what became of one task; 1 when it failed."""
    task, why = outcome.task, outcome.why
    where = os.path.relpath(task.worktree) if task.worktree else ""
    facts = {"id": task.id, "branch": task.branch, "worktree": task.worktree}
    message = ""
    if outcome.error is not None:
        sys.stderr.write(f"error: task {task.id}: {outcome.error.message}\n" +
                         (f"hint: {outcome.error.hint}\n" if outcome.error.hint else ""))
        facts["error"] = outcome.error.message
    elif why is not None and why.setup is not None:
        sys.stderr.write(starting.setup_failure_text(task, why.setup) +
                         f"hint: the worktree is kept at {where}; fix the setup and run the agent there,"
                         f" or remove the task with: git agent-clean {task.id}\n")
        facts["error"] = why.reason
    elif not request.command:
        message = f"Prepared task {task.id} on branch {task.branch} in {where}"
    elif why is not None:
        sys.stderr.write(f"error: task {task.id}: {why.reason}\n"
                         f"hint: the worktree is kept at {where}; fix the command and run the agent there,"
                         f" or remove the task with: git agent-clean {task.id}\n")
        facts["error"] = why.reason
    else:
        facts["pid"] = str(outcome.pid)
        message = f"Spawned task {task.id} on branch {task.branch} in {where} (agent pid {outcome.pid})"
        if request.in_tmux:
            facts["tmux"] = f"{task.tmux_session}:{task.id}"
            message = (f"Spawned task {task.id} on branch {task.branch} in {where} (agent pid {outcome.pid},"
                       f" tmux window {facts['tmux']}: git agent-attach {task.id})")
    _say(args, repo, facts, message, first=first)
    return 1 if "error" in facts else 0


def _refuse_ids_taken_as_directories(repo: Repo, base_commit: str, sparse: list[str] | None) -> None:
    """`spawn --sparse src 86`: --sparse took 86 as a directory; with no ids left, spawn would
    invent one. Refuse when the last directories are ids the base has no directory for."""
    taken: list[str] = []
    for entry in reversed(sparse or []):
        there = repo.git.run("cat-file", "-t", f"{base_commit}:{entry.strip('/')}", ok=range(0, 256))
        if id_problem(entry) is not None or (there.code == 0 and there.out.strip() == "tree"):
            break
        taken.insert(0, entry)
    if taken:
        dirs = [d for d in sparse or [] if d not in taken]
        raise UsageError(f"--sparse took {', '.join(repr(t) for t in taken)} as director"
                         f"{'ies' if len(taken) > 1 else 'y'} (the base has none of that name), so no id was given",
                         hint=f"put the ids first: git agent-spawn {' '.join(taken)} --sparse {' '.join(dirs)}, "
                              "or end the directories with --")


def _say(args: argparse.Namespace, repo: Repo, facts: dict[str, str], message: str, *, first: bool) -> None:
    """One task's outcome: `key value` lines with --porcelain, else the message (-q: none; -v: paths)."""
    if args.porcelain:
        print(("" if first else "\n") + "".join(f"{key} {value}\n" for key, value in facts.items()), end="")
    elif message and args.verbosity >= 0:
        print(message)
        if args.verbosity > 0:
            print(f"  prompt: {starting.prompt_path(repo, facts['id'])}")
            if "pid" in facts:
                print(f"  log:    {os.path.join(repo.task_dir(facts['id']), 'agent.log')}")
