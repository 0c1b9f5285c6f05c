"""The prompt an agent is given: a template around the task's own text."""

from __future__ import annotations

import re

DEFAULT_TEMPLATE = """\
You are working in a git worktree at: {worktree}

This is an isolated copy of the repository, on branch {branch}. You can freely edit
files without affecting other parallel agents.

When done:
1. Commit your changes to the {branch} branch
2. Do NOT merge - the orchestrator will handle that

Your task: {title}

{prompt}
"""

_PLACEHOLDER = re.compile(r"\{(id|title|branch|worktree|base|prompt)\}")


def render(template: str, values: dict[str, str]) -> str:
    """Fill the known {placeholders}; any other braces (code in a prompt) are left alone."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def default_title(task_id: str, text: str) -> str:
    """A title from the first line of the task text, or `Task <id>` when there is none."""
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line if len(line) <= 72 else line[:69] + "..."
    return f"Task {task_id}"


def prompt_hash(text: str) -> str:
    """A short, stable fingerprint of a rendered prompt, for the audit trail."""
    import hashlib  # ~5 ms (OpenSSL): not for `-h`

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
