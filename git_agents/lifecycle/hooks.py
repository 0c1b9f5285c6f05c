"""git-agents as the worktree provider of Claude Code: its WorktreeCreate and WorktreeRemove hooks.

Claude Code (checked with 2.1.328) runs a WorktreeCreate command hook with JSON on stdin:
{"session_id", "transcript_path", "cwd", "hook_event_name": "WorktreeCreate", "name"}, where
cwd is the directory claude was started in; the hook creates the worktree itself and prints
its path as the last non-empty line of stdout (a failure or no output fails the creation).
WorktreeRemove gets the same fields and "worktree_path". Create records a task as spawn does
(taking a pool slot when a pool exists) without starting an agent, claude being the agent;
remove follows git agent-clean's never-lose-work rules.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from git_agents.core.errors import AgentError
from git_agents.core.repo import Repo
from git_agents.lifecycle import start as starting
from git_agents.lifecycle.remove import remove_task, what_would_be_lost
from git_agents.pool import slots as pool
from git_agents.tasks.ids import MAX_ID_LENGTH, check_id
from git_agents.tasks.store import load_tasks

CREATE_COMMAND = "git agent hook claude-worktree-create"
REMOVE_COMMAND = "git agent hook claude-worktree-remove"


def read_payload(text: str, event: str) -> dict[str, Any]:
    """The hook's JSON object; AgentError when it is not one, or is another event's."""
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise AgentError(f"the {event} hook's input is not JSON: {exc}",
                         hint="Claude Code passes a JSON object on standard input") from None
    if not isinstance(payload, dict):
        raise AgentError(f"the {event} hook's input is not a JSON object")
    name = payload.get("hook_event_name")
    if name not in (None, event):
        raise AgentError(f"this handler is for {event}, not {name}",
                         hint=f"point the {name} hook at its own handler (git agent hook install claude)")
    return payload


def task_id_for(name: str) -> str:
    """The task id for a Claude Code worktree name: characters an id cannot hold become '-'."""
    candidate = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    candidate = re.sub(r"\.{2,}", ".", candidate)[:MAX_ID_LENGTH].rstrip(".")
    if candidate.endswith(".lock"):
        candidate = candidate[:-len(".lock")]
    return check_id(candidate or name)


def _repo_at(payload: dict[str, Any]) -> Repo:
    cwd = payload.get("cwd")
    if not isinstance(cwd, str) or not os.path.isdir(cwd):
        raise AgentError("the hook's input has no usable \"cwd\"")
    return Repo.discover(cwd)


def create_worktree(payload: dict[str, Any]) -> str:
    """WorktreeCreate: a ready task worktree for `payload["name"]`; its path."""
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        raise AgentError("the WorktreeCreate hook's input has no \"name\"")
    repo = _repo_at(payload)
    # A pool slot when a pool exists (or agent.pool says so): a branch switch, not a checkout.
    slots = starting.pool_request(repo, True if pool.read_slots(repo) else None, None)
    text = f"Claude Code session {payload.get('session_id', '')} works here (worktree '{name}')."
    request = starting.StartRequest((task_id_for(name),), prompt=text, title=f"Claude Code worktree {name}",
                                    pool=slots, until=starting.READY)
    outcome = starting.start_task(repo, request)
    task = outcome.task
    if outcome.why is not None and outcome.why.setup is not None:
        raise AgentError(starting.setup_failure_text(task, outcome.why.setup).removeprefix("error: ").rstrip("\n"),
                         hint=f"fix agent.setup, then remove the task with: git agent-clean --force {task.id}")
    return task.worktree


def remove_worktree(payload: dict[str, Any]) -> str:
    """WorktreeRemove: remove the task whose worktree is `payload["worktree_path"]`, as git agent-clean
    would (AgentError, naming what would be lost, instead); the task's id."""
    path = payload.get("worktree_path")
    if not isinstance(path, str) or not path:
        raise AgentError("the WorktreeRemove hook's input has no \"worktree_path\"")
    repo = _repo_at(payload) if os.path.isdir(str(payload.get("cwd", ""))) else Repo.discover(path)
    wanted = os.path.realpath(path)
    tasks = [t for t in load_tasks(repo).values() if t.worktree and os.path.realpath(t.worktree) == wanted]
    if not tasks:
        raise AgentError(f"'{path}' is not the worktree of a git-agents task",
                         hint="`git agent-status` lists the tasks and their worktrees")
    task = tasks[0]
    reasons = what_would_be_lost(repo, task)
    if reasons:
        raise AgentError(f"not removing task {task.id}: {'; '.join(reasons)}",
                         hint=f"merge it first (git agent-merge {task.id}), or discard it with "
                              f"git agent-clean --force {task.id}")
    remove_task(repo, task, force=False)
    return task.id


def _entry(command: str) -> dict[str, Any]:
    return {"hooks": [{"type": "command", "command": command}]}


def _has(entries: list[Any], command: str) -> bool:
    return any(isinstance(e, dict) and any(isinstance(h, dict) and h.get("command") == command
                                           for h in e.get("hooks", []) or []) for e in entries)


def install_claude(repo: Repo) -> tuple[str, str, str]:
    """The repository's .claude/settings.local.json with the two hooks merged in: (path, old text, new text)."""
    path = os.path.join(repo.main_worktree, ".claude", "settings.local.json")
    try:
        with open(path, encoding="utf-8") as fh:
            old = fh.read()
    except FileNotFoundError:
        old = ""
    try:
        settings = json.loads(old) if old.strip() else {}
    except ValueError as exc:
        raise AgentError(f"{path} is not valid JSON: {exc}", hint="fix or remove it, then run this again") from None
    if not isinstance(settings, dict) or not isinstance(settings.setdefault("hooks", {}), dict):
        raise AgentError(f"{path} does not hold a JSON object with a \"hooks\" object")
    for event, command in (("WorktreeCreate", CREATE_COMMAND), ("WorktreeRemove", REMOVE_COMMAND)):
        entries = settings["hooks"].setdefault(event, [])
        if not isinstance(entries, list):
            raise AgentError(f"{path}: hooks.{event} is not a list")
        if not _has(entries, command):
            entries.append(_entry(command))
    new = json.dumps(settings, indent=2) + "\n"
    return path, old, new


def save_claude(repo: Repo, path: str, text: str) -> None:
    """Write the settings install_claude made, and keep the file out of the repository's
    untracked work (info/exclude): it is this clone's own, as Claude Code means it."""
    from git_agents.tasks.presets import exclude_tool_files

    write_settings(path, text)
    exclude_tool_files(repo, ("/" + os.path.relpath(path, repo.main_worktree),))


def write_settings(path: str, text: str) -> None:
    """Write `text` to `path` atomically (a reader never sees half a file)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
