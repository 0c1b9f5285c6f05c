"""Every `git config` key git-agents reads, with its default and meaning: the one table.

The man page git-agents(7) and the README's table are generated from `SETTINGS`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    """One configuration key."""

    key: str
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("agent.worktreeRoot", "../<repo>-worktrees",
            "Directory that holds the task worktrees; a relative path is taken from the main worktree."),
    Setting("agent.branchPrefix", "task-", "Prefix of task branch names: task 48 works on branch task-48."),
    Setting("agent.command", "",
            "Agent command run in each new worktree when spawn is given no --agent (a shell command line)."),
    Setting("agent.shell", "/bin/sh", "Shell that runs agent commands (as `<shell> -c <command>`)."),
    Setting("agent.promptTemplate", "",
            "Path of a file that replaces the built-in prompt template; placeholders {id}, {title}, "
            "{branch}, {worktree}, {base} and {prompt}."),
    Setting("agent.mergeMessage", "feat: Task {id} - {title}",
            "Message of each task's merge commit; placeholders {id}, {title}, {branch}."),
)

DEFAULTS = {s.key.lower(): s.default for s in SETTINGS}


def parse_bool(value: str | None, default: bool = False) -> bool:
    """git's boolean spelling: yes/on/true/1 and no/off/false/0 (an empty or missing value: default)."""
    if value is None or value == "":
        return default
    return value.strip().lower() in ("yes", "on", "true", "1")
