"""The task file `git agent-run` reads: TOML with global settings and a list of [[task]] tables.

    agent = "claude"          # preset or shell command (default: agent.command)
    base = "main"             # branch to start from and merge into (default: the main worktree's)
    jobs = 2                  # agents running at once
    merge = true              # merge the successful tasks at the end
    check = "make test"       # each merged result must pass it (as git agent-merge --check)
    pool = false              # take worktrees from git agent-pool (as git agent-spawn --pool)
    tmux = false              # each agent interactive in a tmux window (as git agent-spawn --tmux)

    [[task]]
    id = "48"
    title = "free mixer channel on delete"
    prompt = "Free the mixer channel when ..."   # or prompt_file = "tasks/48.md"
    agent = "codex"                              # optional, overrides the global agent
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from git_agents.core.errors import AgentError
from git_agents.tasks.ids import id_problem
from git_agents.tasks.prompt import default_title

_GLOBAL_KEYS = {"agent", "base", "jobs", "merge", "check", "pool", "tmux", "task"}
_TASK_KEYS = {"id", "title", "prompt", "prompt_file", "agent"}


@dataclass
class TaskSpec:
    """One [[task]] of the file."""

    id: str
    title: str
    text: str
    agent: str  # as written (a preset name or a command); empty: the global one


@dataclass
class TaskFile:
    """A parsed task file."""

    path: str
    agent: str = ""
    base: str = ""
    jobs: int = 1
    merge: bool = True
    check: str = ""
    pool: bool = False
    tmux: bool | None = None  # None: agent.tmux decides
    tasks: list[TaskSpec] = field(default_factory=list)


def _fail(path: str, message: str) -> AgentError:
    return AgentError(f"{path}: {message}", hint="the format is in git help agent-run (DESCRIPTION) and the README")


def _typed(path: str, table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise _fail(path, f"{where}'{key}' must be {'a string' if kind is str else 'an integer' if kind is int else 'true or false'}")
    return value


def load(path: str) -> TaskFile:
    """Read and check a task file; every problem is an AgentError naming the file."""
    import tomllib  # only `git agent-run` pays for it

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise AgentError(f"cannot read task file '{path}': {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - _GLOBAL_KEYS)
    if unknown:
        raise _fail(path, f"unknown setting '{unknown[0]}' (known: {', '.join(sorted(_GLOBAL_KEYS - {'task'}))})")
    result = TaskFile(path)
    result.agent = _typed(path, data, "agent", str, "") or ""
    result.base = _typed(path, data, "base", str, "") or ""
    result.check = _typed(path, data, "check", str, "") or ""
    jobs = _typed(path, data, "jobs", int, "")
    result.jobs = 1 if jobs is None else jobs
    if result.jobs < 1:
        raise _fail(path, "'jobs' must be at least 1")
    merge = _typed(path, data, "merge", bool, "")
    result.merge = True if merge is None else merge
    result.pool = bool(_typed(path, data, "pool", bool, ""))
    result.tmux = _typed(path, data, "tmux", bool, "")
    if result.check and not result.merge:
        raise _fail(path, "'check' gates the merges, and merge = false makes none "
                          "(drop check, or check later with git agent-merge --check)")
    tasks = data.get("task", [])
    if not isinstance(tasks, list) or not tasks:
        raise _fail(path, "no tasks: add at least one [[task]] table with an id and a prompt")
    here = os.path.dirname(os.path.abspath(path))
    for n, table in enumerate(tasks, start=1):
        result.tasks.append(_task(path, here, n, table))
    seen: set[str] = set()
    for spec in result.tasks:
        if spec.id in seen:
            raise _fail(path, f"task id '{spec.id}' is used twice")
        seen.add(spec.id)
    return result


def _task(path: str, here: str, n: int, table: Any) -> TaskSpec:
    if not isinstance(table, dict):
        raise _fail(path, f"task {n} is not a table (write it as [[task]])")
    unknown = sorted(set(table) - _TASK_KEYS)
    if unknown:
        raise _fail(path, f"task {n}: unknown key '{unknown[0]}' (known: {', '.join(sorted(_TASK_KEYS))})")
    task_id = table.get("id")
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)
    if not isinstance(task_id, str):
        raise _fail(path, f"task {n} has no id")
    problem = id_problem(task_id)
    if problem:
        raise _fail(path, f"task {n}: invalid id '{task_id}': {problem}")
    where = f"task {task_id}: "
    prompt = _typed(path, table, "prompt", str, where)
    prompt_file = _typed(path, table, "prompt_file", str, where)
    if (prompt is None) == (prompt_file is None):
        raise _fail(path, f"task {task_id}: give exactly one of 'prompt' and 'prompt_file'")
    if prompt_file is not None:
        file = os.path.join(here, os.path.expanduser(prompt_file))
        try:
            with open(file, encoding="utf-8") as fh:
                prompt = fh.read()
        except OSError as exc:
            raise _fail(path, f"task {task_id}: cannot read prompt_file '{prompt_file}': {exc.strerror}") from exc
    title = _typed(path, table, "title", str, where) or default_title(task_id, prompt or "")
    return TaskSpec(task_id, title, prompt or "", _typed(path, table, "agent", str, where) or "")
