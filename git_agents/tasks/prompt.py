"""The prompt an agent is given: a template around the task's own text."""

from __future__ import annotations

import re
from collections.abc import Sequence

from git_agents.core.errors import AgentError

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


def decode_text(data: bytes, what: str) -> str:
    """`data` as text, or an AgentError naming `what` ("prompt file 'x'") when it is not UTF-8 or
    holds a NUL byte (which no environment variable, argument or config value can carry)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AgentError(f"{what} is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}",
                         hint="save it as UTF-8, e.g. with: iconv -f latin1 -t utf-8") from None
    check_no_nul(text, what)
    return text


def check_no_nul(text: str, what: str) -> None:
    """An AgentError naming `what` when `text` holds a NUL byte."""
    at = text.find("\0")
    if at >= 0:
        offset = len(text[:at].encode("utf-8", "surrogateescape"))
        raise AgentError(f"{what} holds a NUL byte (at offset {offset})",
                         hint="a NUL cannot be passed to an agent: remove it (for a file: tr -d '\\000')")


def read_text_file(path: str, what: str) -> str:
    """The text of the file at `path`, checked as decode_text does; an AgentError if it cannot be read."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise AgentError(f"cannot read {what}: {exc.strerror}") from exc
    return decode_text(data, what)


def read_task_texts(ids: Sequence[str], prompt: str | None, prompt_file: str | None) -> dict[str, str]:
    """Each task's text: `prompt`, or the file `prompt_file` ({id} replaced by the task's id; `-`
    reads standard input once, as bytes); "" when neither is given. An AgentError names a text
    that is not UTF-8 or holds a NUL, before anything is created."""
    if prompt is not None or prompt_file is None:
        return {task_id: prompt or "" for task_id in ids}
    if prompt_file == "-":
        import sys

        text = decode_text(sys.stdin.buffer.read(), "the prompt on standard input")
        return {task_id: text for task_id in ids}
    paths = {task_id: prompt_file.replace("{id}", task_id) for task_id in ids}
    return {task_id: read_text_file(path, f"prompt file '{path}'") for task_id, path in paths.items()}


def render(template: str, values: dict[str, str]) -> str:
    """Fill the known {placeholders}; any other braces (code in a prompt) are left alone."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def render_prompt(template: str, values: dict[str, str]) -> str:
    """The prompt file: `template` filled in; a task text that is only its title (a one-line
    --prompt, whose first line became the title) is not said twice when the template has both."""
    text = values.get("prompt", "")
    if text.strip() and text.strip() == values.get("title", "").strip() and "{title}" in template \
            and "{prompt}" in template:
        return render(template, {**values, "prompt": ""}).rstrip() + "\n"
    return render(template, values)


def default_title(task_id: str, text: str) -> str:
    """A title from the first line of the task text, or `Task <id>` when there is none."""
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line if len(line) <= 72 else line[:69] + "..."
    return f"Task {task_id}"


def prompt_hash(text: str) -> str:
    """A short, stable fingerprint of a rendered prompt, for the audit trail."""
    data = text.encode("utf-8")
    try:  # CPython's own SHA-256: the same digest as hashlib's, without loading OpenSSL (3-5 ms)
        import _sha256  # type: ignore[import-not-found,unused-ignore]

        digest: str = _sha256.sha256(data).hexdigest()
    except ImportError:  # another Python (3.12 calls it _sha2)
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
    return digest[:16]
