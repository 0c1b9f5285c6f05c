"""A minimal reader of the TOML task file (the format of `git agent-run`), for `git agent-queue push`.

Top level: `agent`, `base` (and `jobs`, `merge`, `check`, `pool`, which the queue ignores);
then `[[task]]` tables with `id`, `title`, `prompt` or `prompt_file`, and an optional `agent`.
Only what the queue needs is read here; when git_agents/taskfile.py (issue 5) exists this
module should become a thin call into it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import AgentError
from .ids import check_id
from .prompt import default_title


@dataclass(frozen=True)
class TaskSpec:
    """One task as the task file describes it."""

    id: str
    title: str
    prompt: str
    agent: str  # "" = whatever the worker uses
    base: str  # "" = the publisher's current branch


def read_taskfile(path: str) -> list[TaskSpec]:
    """The tasks of a TOML task file, in file order; an AgentError naming the problem otherwise."""
    import tomllib  # only `queue push` pays for it

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise AgentError(f"cannot read task file '{path}': {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise AgentError(f"task file '{path}' is not valid TOML: {exc}") from exc
    tasks = data.get("task")
    if not isinstance(tasks, list) or not tasks:
        raise AgentError(f"task file '{path}' has no [[task]] tables", hint="add one per task: [[task]] id = \"1\" ...")
    default_agent = _string(data, "agent", path)
    base = _string(data, "base", path)
    here = os.path.dirname(os.path.abspath(path))
    specs: list[TaskSpec] = []
    seen: set[str] = set()
    for n, entry in enumerate(tasks, 1):
        where = f"{path}: task #{n}"
        if not isinstance(entry, dict):
            raise AgentError(f"{where} is not a table")
        task_id = check_id(str(entry.get("id", "")).strip())
        if task_id in seen:
            raise AgentError(f"{where}: task id '{task_id}' appears twice")
        seen.add(task_id)
        text = _prompt(entry, where, here, task_id)
        title = _string(entry, "title", where) or default_title(task_id, text)
        specs.append(TaskSpec(task_id, title, text, _string(entry, "agent", where) or default_agent, base))
    return specs


def _string(table: dict[str, object], key: str, where: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise AgentError(f"{where}: '{key}' must be a string")
    return value


def _prompt(entry: dict[str, object], where: str, here: str, task_id: str) -> str:
    if "prompt" in entry and "prompt_file" in entry:
        raise AgentError(f"{where}: give either 'prompt' or 'prompt_file', not both")
    if "prompt_file" not in entry:
        return _string(entry, "prompt", where)
    name = _string(entry, "prompt_file", where).replace("{id}", task_id)
    full = os.path.join(here, os.path.expanduser(name))
    try:
        with open(full, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise AgentError(f"{where}: cannot read prompt_file '{name}': {exc.strerror}") from exc
