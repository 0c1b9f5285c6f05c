"""git agent-spawn: create a worktree on a new branch per task, write the prompt, start the agent."""

from __future__ import annotations

import argparse
import os
import sys

from .. import agent
from ..errors import AgentError, ExitCode
from ..ids import check_id
from ..prompt import DEFAULT_TEMPLATE, default_title, prompt_hash, render
from ..repo import Repo
from ..selection import current_branch
from ..store import Task, create_task, delete_task, load_tasks, now_iso, write_task
from ..worktrees import add_worktree

USAGE = "git agent-spawn [<options>] <id>..."

DESCRIPTION = """\
For each <id>, create the worktree <root>/task-<id> on a new branch task-<id> that starts at
the base branch, write the agent's prompt to a file, and, when an agent command is given
(--agent or agent.command), start it detached in the worktree through the shell. spawn
returns at once; use git agent-status and git agent-wait to follow the agents.

The agent runs with GIT_AGENT_TASK, GIT_AGENT_BRANCH, GIT_AGENT_WORKTREE, GIT_AGENT_TITLE and
GIT_AGENT_PROMPT_FILE set; its output goes to agent.log in the task's directory inside the
repository's git directory. Without an agent command spawn only prepares the worktree.

The task text comes from --prompt, --prompt-file (a path may contain {id}; - reads standard
input). The prompt file is the template (agent.promptTemplate, or a built-in one telling the
agent where it works, to commit to its branch and not to merge) filled with the task text.
"""

EXAMPLES = """\
git agent-spawn 48 --title "free mixer channel on delete" --prompt "Free the mixer channel when ..." \\
        --agent 'claude -p "$(cat "$GIT_AGENT_PROMPT_FILE")"'
git agent-spawn 50 51 --prompt-file tasks/{id}.md --agent ./my-agent.sh
"""


def configure(p: argparse.ArgumentParser) -> None:
    """Declare spawn's options."""
    p.add_argument("ids", nargs="+", metavar="<id>", help="task ids: letters, digits, '.', '_' or '-'")
    p.add_argument("--title", metavar="<text>", help="short title (default: first line of the task text)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prompt", metavar="<text>", help="the task text")
    src.add_argument("--prompt-file", metavar="<file>",
                     help="read the task text from <file> ({id} is replaced by the id; - reads stdin)")
    p.add_argument("--agent", metavar="<command>", help="agent command line, run with the shell in the worktree")
    p.add_argument("--no-agent", action="store_true", help="do not start an agent, even if agent.command is set")
    p.add_argument("--base", metavar="<branch>",
                   help="branch to start from and merge back into (default: the main worktree's branch)")


def _task_text(args: argparse.Namespace, task_id: str, stdin_text: str | None) -> str:
    if args.prompt is not None:
        return args.prompt
    if args.prompt_file is None:
        return ""
    if args.prompt_file == "-":
        return stdin_text or ""
    path = args.prompt_file.replace("{id}", task_id)
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise AgentError(f"cannot read prompt file '{path}': {exc.strerror}") from exc


def _template(repo: Repo) -> str:
    path = repo.setting("agent.promptTemplate")
    if not path:
        return DEFAULT_TEMPLATE
    path = os.path.join(repo.main_worktree, os.path.expanduser(path))
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise AgentError(f"cannot read agent.promptTemplate '{path}': {exc.strerror}",
                         hint="fix the path with: git config agent.promptTemplate <file>") from exc


def plan_task(repo: Repo, task_id: str, base: str, base_commit: str) -> Task:
    """The task `spawn` would create, after checking that nothing is in its way."""
    check_id(task_id)
    branch = repo.branch_prefix + task_id
    worktree = os.path.join(repo.worktree_root, branch.replace("/", "-"))
    if task_id in load_tasks(repo):
        raise AgentError(f"task '{task_id}' already exists",
                         hint=f"pick another id, or remove it first with: git agent-clean {task_id}")
    if repo.git.ok("show-ref", "--verify", "--quiet", f"refs/heads/{branch}"):
        raise AgentError(f"a branch named '{branch}' already exists",
                         hint=f"delete or rename it (git branch -m {branch} <new>), or pick another id")
    if os.path.lexists(worktree):
        raise AgentError(f"'{worktree}' already exists", hint="move it away, or pick another id")
    return Task(task_id, branch=branch, worktree=worktree, base=base, base_commit=base_commit)


def resolve_base(repo: Repo, base: str | None) -> tuple[str, str]:
    """(branch name, commit) of the base: --base, or the main worktree's branch."""
    name = base or current_branch(repo, repo.main_worktree)
    res = repo.git.run("rev-parse", "--verify", "--quiet", f"refs/heads/{name}^{{commit}}", ok=(0, 1))
    if res.code != 0:
        raise AgentError(f"base branch '{name}' does not exist",
                         hint="name a local branch with --base (git branch lists them)")
    return name, res.out.strip()


def run(args: argparse.Namespace) -> int:
    """Spawn each task."""
    for task_id in args.ids:
        check_id(task_id)
    if len(set(args.ids)) != len(args.ids):
        raise AgentError("the same task id is given twice")
    repo = Repo.discover()
    base, base_commit = resolve_base(repo, args.base)
    command = "" if args.no_agent else (args.agent if args.agent is not None else repo.setting("agent.command"))
    command = agent.absolutise_program(command, os.getcwd()) if command else ""
    stdin_text = sys.stdin.read() if args.prompt_file == "-" else None
    template = _template(repo)
    texts = {task_id: _task_text(args, task_id, stdin_text) for task_id in args.ids}
    planned = [plan_task(repo, task_id, base, base_commit) for task_id in args.ids]

    failed = 0
    for task in planned:
        text = texts[task.id]
        task.title = args.title or default_title(task.id, text)
        task.agent = command
        task.created = now_iso()
        create_task(repo, task)
        try:
            add_worktree(repo, task.worktree, task.branch, base_commit)
        except BaseException:
            delete_task(repo, task.id)
            raise
        prompt = render(template, {"id": task.id, "title": task.title, "branch": task.branch,
                                   "worktree": task.worktree, "base": base, "prompt": text})
        task_dir = repo.task_dir(task.id)
        os.makedirs(task_dir, exist_ok=True)
        prompt_file = os.path.join(task_dir, "prompt.md")
        with open(prompt_file, "w", encoding="utf-8") as fh:
            fh.write(prompt)
        write_task(repo, task.id, prompt_hash=prompt_hash(prompt))
        where = os.path.relpath(task.worktree)
        if not command:
            print(f"Prepared task {task.id} on branch {task.branch} in {where}")
            continue
        missing = agent.missing_program(command, task.worktree)
        if missing:
            write_task(repo, task.id, state="failed", reason=f"agent command not found: {missing}")
            sys.stderr.write(f"error: task {task.id}: agent command not found: {missing}\n"
                             f"hint: the worktree is kept at {where}; fix the command and run the agent there,"
                             f" or remove the task with: git agent-clean {task.id}\n")
            failed += 1
            continue
        pid, pid_start = agent.launch(task, command, repo.setting("agent.shell"), task_dir, prompt_file)
        write_task(repo, task.id, pid=str(pid), pid_start=pid_start, started=now_iso())
        print(f"Spawned task {task.id} on branch {task.branch} in {where} (agent pid {pid})")
    return ExitCode.FAILED if failed else ExitCode.OK
