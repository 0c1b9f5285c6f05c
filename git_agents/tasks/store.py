"""Live task metadata, kept in the repository's git config as `agent-task.<id>.<key>`.

Reads take the whole configuration in one git call (see Repo.config). A write edits the
config file in one step, no git process (core.configfile: git's own config.lock protocol, under
the repository lock), so concurrent `git agent-*` processes never lose a write, `git config`
running beside them never sees half a record, and a new record appears whole. A record without
`created` (left by an older git-agents killed between two keys) is incomplete: `Task.complete`
is False and nothing acts on it as on a complete one.

A process reads the configuration once: its own writes update that copy without another git
call (Repo.config_written), which also reads it again when another process changed the file
meanwhile. Code that must see other processes' writes asks for it (Repo.reload_config).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from git_agents.core.configfile import edit_config_file, has_subsection
from git_agents.core.errors import AgentError
from git_agents.core.git import quote_path, unquote_path
from git_agents.core.lock import RepoLock
from git_agents.core.refs import HEADS, branch_ref
from git_agents.core.repo import Repo
from git_agents.tasks.ids import sort_key

SECTION = "agent-task"

# Task attribute -> config key name (git config key names are case-insensitive on read).
_KEYS = {
    "title": "title", "branch": "branch", "worktree": "worktree", "base": "base",
    "base_commit": "baseCommit", "agent": "agent", "pid": "pid", "pid_start": "pidStart",
    "created": "created", "started": "started", "state": "state", "reason": "reason",
    "conflicts": "conflicts", "merge_commit": "mergeCommit", "slot": "slot",
    "prompt_hash": "promptHash", "merged_at": "mergedAt", "port": "port", "index": "index",
    "after": "after",
    # interactive agents (tasks/tmux.py) and follow-up rounds (git agent-continue)
    "tmux_socket": "tmuxSocket", "tmux_session": "tmuxSession", "tmux_window": "tmuxWindow",
    "tmux_pane": "tmuxPane", "round": "round", "round_prompt_hash": "roundPromptHash", "rounds": "rounds",
    "launch": "launch",
    "isolation": "isolation",
}


class TaskState(StrEnum):
    """A task's recorded state (its `state`; NONE while nothing has ended it). A merge attempt's
    outcome is named by the same words for the states it leaves a task in."""

    NONE = ""
    FAILED = "failed"
    CONFLICT = "conflict"
    MERGED = "merged"
    CHECK_FAILED = "check-failed"
    INTERRUPTED = "interrupted"
    BLOCKED = "blocked"


@dataclass
class Task:
    """One task's live metadata."""

    id: str
    title: str = ""
    branch: str = ""
    worktree: str = ""
    base: str = ""  # the target branch (short name) the task forked from and merges into
    base_commit: str = ""  # the commit the task branch started at
    agent: str = ""  # the agent command line, empty when spawn started none
    pid: str = ""
    pid_start: str = ""
    created: str = ""
    started: str = ""
    state: str = ""  # a TaskState
    reason: str = ""
    conflicts: str = ""  # newline-separated paths
    merge_commit: str = ""
    slot: str = ""  # pool slot name when the worktree came from the pool
    prompt_hash: str = ""
    merged_at: str = ""
    port: str = ""  # first port of the task's leased block (GIT_AGENT_PORT)
    index: str = ""  # GIT_AGENT_INDEX: 1, 2, ... (the leased block's number)
    after: str = ""  # space-separated ids of the tasks it waits for (git agent-run's `after`)
    tmux_socket: str = ""  # the tmux server of an interactive agent's window (tasks/tmux.py)
    tmux_session: str = ""
    tmux_window: str = ""  # window id, @N
    tmux_pane: str = ""  # pane id, %N
    round: str = ""  # the agent's current round: "" for the first, 2, 3, ... after git agent-continue
    round_prompt_hash: str = ""  # the prompt hash of the current round when it is not the first
    rounds: str = ""  # the finished earlier rounds, one line each (tasks/rounds.py)
    launch: str = ""  # the id of the agent's latest launch (see tasks.agent), written before it forks
    isolation: str = ""  # "" (a worktree), "clone" or "sandbox" (a clone of its own; tasks/isolation.py)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether the record was written whole (`created` is written with, or after, every other key)."""
        return bool(self.created)

    @property
    def conflict_files(self) -> list[str]:
        """The paths that conflicted at the last merge attempt (exact: see join_paths)."""
        return [unquote_path(p) for p in self.conflicts.split("\n") if p]


def join_paths(paths: list[str]) -> str:
    """Paths as one `conflicts` value: one a line, a path holding a newline, a quote or a byte that is
    not UTF-8 quoted as git quotes it, so `Task.conflict_files` gives back the exact paths."""
    return "\n".join(quote_path(p, quote_non_ascii=False) for p in paths)


def now_iso() -> str:
    """The current time as ISO 8601 with the local offset, as git prints dates (`--date=iso-strict`)."""
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def load_tasks(repo: Repo) -> dict[str, Task]:
    """Every task recorded in the repository, in id order."""
    by_key = {v.lower(): k for k, v in _KEYS.items()}
    tasks: dict[str, Task] = {}
    prefix = SECTION + "."
    for key, values in repo.config.items():
        if not key.startswith(prefix):
            continue
        sub, _, name = key[len(prefix):].rpartition(".")
        if not sub:
            continue
        task = tasks.setdefault(sub, Task(sub))
        attr = by_key.get(name)
        if attr:
            setattr(task, attr, values[-1])
        else:
            task.extra[name] = values[-1]
    return {k: tasks[k] for k in sorted(tasks, key=sort_key)}


def write_config(repo: Repo, values: dict[str, str | None]) -> None:
    """Set (or, for None, unset) repository config keys in one step, under the repository lock."""
    with RepoLock(repo.common_dir):
        before, after = edit_config_file(os.path.join(repo.common_dir, "config"), values)
    repo.config_written(before, after, values)


def write_task(repo: Repo, task_id: str, **values: str | None) -> None:
    """Set (or, for None, unset) some of a task's keys (one write of the config file)."""
    write_tasks(repo, {task_id: values})


def write_tasks(repo: Repo, values: Mapping[str, Mapping[str, str | None]]) -> None:
    """Set (or, for None, unset) keys of many tasks, {task id: {attribute: value}}, in one write
    of the config file (each write takes the lock and an fsync: a merge of 100 tasks wrote 100)."""
    write_config(repo, {f"{SECTION}.{task_id}.{_KEYS[attr]}": value
                        for task_id, attrs in values.items() for attr, value in attrs.items()})


class TaskExists(AgentError):
    """create_task found its id taken (by another process, in a race)."""


def next_number(repo: Repo) -> int:
    """The number after every numeric task id and every numeric task branch (task-<n>): what
    `git agent-spawn` without ids tries first. Read afresh: another spawn may have just taken one."""
    repo.reload_config()
    prefix = repo.branch_prefix
    branches = repo.git("for-each-ref", "--format=%(refname)", f"{branch_ref(prefix)}*").split("\n")
    taken = [int(i) for i in [*load_tasks(repo), *(b.removeprefix(f"{HEADS}{prefix}") for b in branches)]
             if i.isascii() and i.isdigit()]
    return max(taken, default=0) + 1


def create_task(repo: Repo, task: Task) -> None:
    """Record a new task in one write; fail if its id is already taken (checked under the lock, so races are safe).

    The record carries `created`: a reader that sees a record without it (left by an older
    git-agents killed half-way) knows it is incomplete (Task.complete)."""
    config_file = os.path.join(repo.common_dir, "config")
    with RepoLock(repo.common_dir):
        if has_subsection(config_file, SECTION, task.id):
            raise TaskExists(f"task '{task.id}' already exists",
                             hint=f"pick another id, or remove it first with: git agent-clean {task.id}")
        values: dict[str, str | None] = {f"{SECTION}.{task.id}.{_KEYS[attr]}": getattr(task, attr)
                                         for attr in _KEYS if getattr(task, attr) and attr != "created"}
        values[f"{SECTION}.{task.id}.created"] = task.created or now_iso()
        before, after = edit_config_file(config_file, values)
    repo.config_written(before, after, values)


def delete_task(repo: Repo, task_id: str) -> None:
    """Forget a task's live metadata (its durable history stays in the notes)."""
    delete_tasks(repo, [task_id])


def delete_tasks(repo: Repo, task_ids: list[str]) -> None:
    """Forget many tasks' live metadata in one write of the config file."""
    sections: list[tuple[str, str | None]] = [(SECTION, task_id) for task_id in task_ids]
    with RepoLock(repo.common_dir):
        before, after = edit_config_file(os.path.join(repo.common_dir, "config"), {}, remove_sections=sections)
    repo.config_written(before, after, {}, sections)
