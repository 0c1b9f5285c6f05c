"""git agent-continue: run a finished task's agent again, in its worktree, with a follow-up."""

from __future__ import annotations

import argparse
import os

from git_agents.core.errors import AgentError, UsageError
from git_agents.core.lock import RepoLock
from git_agents.core.repo import Repo
from git_agents.core.settings import parse_bool
from git_agents.lifecycle import start as starting
from git_agents.tasks import agent, rounds
from git_agents.tasks.presets import expand, preset_for, resume_command
from git_agents.tasks.prompt import prompt_hash, read_task_texts
from git_agents.tasks.selection import select_tasks
from git_agents.tasks.status import agent_state
from git_agents.tasks.store import Task, TaskState, load_tasks
from git_agents.tasks.tmux import Window, tmux_program

USAGE = "git agent-continue [<options>] <id> (--prompt <text> | --prompt-file <file>)"

DESCRIPTION = """\
Run the task's agent again in its existing worktree and on its branch, with a follow-up:
a new round. Where the agent is a preset with a resume form (claude's is claude -p
--continue: the last session of the worktree), the follow-up goes to the tool's own session,
which keeps its context, and the round's prompt file holds the follow-up alone; any other agent command runs
again as given, on a prompt file that holds the task's previous prompt followed by the
follow-up. The round's prompt is the file named by GIT_AGENT_PROMPT_FILE, prompt-<n>.md in
the task's directory.

The task's agent must not be running (answer a running interactive agent with git
agent-send), and the task must not be merged. Each round is recorded in the task: its
number, prompt hash, start, end and exit code; git agent-status and git agent-wait follow
the new round as any agent, and the merge note lists every round with its exit code.

A task whose agent never ran (spawn --no-agent, git agent-pool claim --task) has no round to
continue: its first agent starts (--agent, else agent.command) on the task's prompt followed by
the text, and continue says so ("Started the first agent of task 20").
"""

EXAMPLES = """\
git agent-continue 48 --prompt "The tests in test_mixer.py fail; fix them and commit."
git agent-continue 48 --tmux --prompt-file review-48.md   # watch it: git agent-attach 48
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare continue's options."""
    p.add_argument("id", metavar="<id>", help="the task to continue")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prompt", metavar="<text>", help="the follow-up")
    src.add_argument("--prompt-file", metavar="<file>",
                     help="read the follow-up from <file> ({id} is replaced by the id; - reads stdin)")
    p.add_argument("--agent", metavar="<command>",
                   help="run this agent command line or preset instead of the task's own agent")
    p.add_argument("--tmux", action=argparse.BooleanOptionalAction, default=None,
                   help="run the round in a tmux window (default: as the previous round ran)")


def run(args: argparse.Namespace) -> int:
    """Start the next round of the task's agent."""
    if args.prompt is None and args.prompt_file is None:
        raise UsageError("give the follow-up with --prompt or --prompt-file")
    repo = Repo.discover()
    task = select_tasks(repo, [args.id])[0]
    text = read_task_texts([task.id], args.prompt, args.prompt_file)[task.id]
    if not text.strip():
        raise UsageError("the follow-up is empty")
    # One continue at a time per task: two would both see the agent ended and start two rounds.
    with RepoLock(repo.common_dir, f"continue-{task.id}", timeout=30):
        repo.reload_config()
        task = load_tasks(repo).get(task.id, task)
        first = not task.agent  # no agent ever ran (spawn --no-agent, pool claim --task): nothing to continue
        pid = _start_round(repo, task, text, args)
    n = rounds.number(task)
    where = os.path.relpath(task.worktree)
    tail = f", tmux window {task.tmux_session}:{task.id}" if task.tmux_pane else ""
    what = f"Started the first agent of task {task.id}" if first else f"Continued task {task.id} (round {n})"
    print(f"{what} on branch {task.branch} in {where} (agent pid {pid}{tail})")
    return 0


def _start_round(repo: Repo, task: Task, text: str, args: argparse.Namespace) -> int:
    """Check that the task can take a follow-up, write the round's prompt, start the agent."""
    if task.state == TaskState.MERGED:
        raise AgentError(f"task {task.id} is already merged",
                         hint="spawn a new task for further work: git agent-spawn <new-id> --prompt <text>")
    if not task.worktree or not os.path.isdir(task.worktree):
        raise AgentError(f"task {task.id} has no worktree any more", hint="spawn a new task for further work")
    state, _, _ = agent_state(repo, task, check_work=False)
    if state == "running":
        hint = (f"type into it with: git agent-send {task.id} <text>" if Window.of(task) is not None
                else f"wait for it (git agent-wait {task.id}) or stop it (git agent-stop {task.id})")
        raise AgentError(f"task {task.id}'s agent is still running", hint=hint)
    if args.agent is not None:
        command = agent.absolutise_program(expand(repo, args.agent), os.getcwd())
    elif task.agent:
        command = resume_command(repo, task.agent)
    else:
        command = repo.setting("agent.command")
        if not command:
            raise AgentError(f"task {task.id} never ran an agent, so there is none to continue",
                             hint=f"name one: git agent-continue {task.id} --agent <command> --prompt <text>")
        command = agent.absolutise_program(expand(repo, command), os.getcwd())
    in_tmux = args.tmux if args.tmux is not None else (bool(task.tmux_pane) if task.agent
                                                       else parse_bool(repo.setting("agent.tmux")))
    if in_tmux:
        tmux_program()
    missing = agent.missing_program(command, task.worktree)
    if missing:
        raise AgentError(f"agent command not found: {missing}")

    task_dir = repo.task_dir(task.id)
    previous = rounds.current(task, task_dir) if task.agent else None
    n = rounds.number(task) + 1 if task.agent else 1
    preset = preset_for(repo, command)
    resumed = preset is not None and bool(preset.resume) and command.strip() == preset.resume
    if resumed:
        prompt = text if text.endswith("\n") else text + "\n"
    else:  # a fresh run of the tool: the task as it was given, then the follow-up
        try:
            with open(rounds.prompt_path(task_dir, n - 1), encoding="utf-8") as fh:
                before = fh.read()
        except OSError:
            before = ""
        follows = f"Follow-up (round {n}):\n\n" if task.agent else ""  # a first run: the task, then the text
        prompt = f"{before.rstrip()}\n\n{follows}{text.rstrip()}\n"
    prompt_file = rounds.prompt_path(task_dir, n)
    with open(prompt_file, "w", encoding="utf-8") as fh:
        fh.write(prompt)
    history = task.rounds + ("\n" if task.rounds else "") + previous.line() if previous else task.rounds
    with open(agent.log_path(task_dir), "a", encoding="utf-8") as log:
        log.write(f"\ngit-agents: round {n} of task {task.id}: {command}\n")
    record: dict[str, str | None] = {"round": str(n), "round_prompt_hash": prompt_hash(prompt),
                                     "rounds": history or None}
    task.round, task.round_prompt_hash, task.rounds = str(n), prompt_hash(prompt), history
    return starting.start(repo, task, command, in_tmux=in_tmux, prompt_file=prompt_file, record=record)
