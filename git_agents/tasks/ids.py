"""Task ids: short names that are safe as a branch suffix, a directory name and a config subsection."""

from __future__ import annotations

import re

from git_agents.core.errors import AgentError

MAX_ID_LENGTH = 100
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def id_problem(task_id: str) -> str | None:
    """Why `task_id` is not a usable task id, or None when it is."""
    if not task_id:
        return "a task id cannot be empty"
    if len(task_id) > MAX_ID_LENGTH:
        return f"a task id is at most {MAX_ID_LENGTH} characters"
    if not _ID.fullmatch(task_id):
        return "a task id starts with a letter or digit and holds only letters, digits, '.', '_' and '-'"
    if ".." in task_id or task_id.endswith(".") or task_id.endswith(".lock"):
        return "a task id cannot contain '..' or end with '.' or '.lock'"
    return None


def check_id(task_id: str) -> str:
    """Return `task_id` if it is safe, else raise an AgentError that names it."""
    problem = id_problem(task_id)
    if problem:
        raise AgentError(f"invalid task id '{task_id}': {problem}",
                         hint="use something like 48, fix-login or issue-1234")
    return task_id


def sort_key(task_id: str) -> tuple[int, int | str, str]:
    """Numeric ids in numeric order first, then the rest by name (48 < 50 < 100 < abc)."""
    if task_id.isdigit():
        return (0, int(task_id), task_id)
    return (1, task_id, task_id)
