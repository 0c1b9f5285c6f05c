"""Live task metadata, kept in the repository's git config as `agent-task.<id>.<key>`.

Reads take the whole configuration in one git call (see Repo.config). Writes happen under
the repository lock and retry when something outside git-agents holds git's own config lock,
so concurrent `git agent-*` processes never lose a write.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from git_agents.core.errors import AgentError, GitError
from git_agents.core.lock import RepoLock
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
}


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
    state: str = ""  # "", "failed", "conflict", "merged", "check-failed", "interrupted", "blocked"
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
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def conflict_files(self) -> list[str]:
        """The paths that conflicted at the last merge attempt."""
        return [p for p in self.conflicts.split("\n") if p]


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


def _config(repo: Repo, *args: str, ok: tuple[int, ...] = (0,)) -> int:
    """Run one `git config` write, retrying while another program holds git's config lock."""
    config_file = os.path.join(repo.common_dir, "config")
    deadline = time.monotonic() + 10
    while True:
        res = repo.git.run("config", "--file", config_file, *args, ok=range(0, 256))
        if res.code in ok:
            return res.code
        if "could not lock config file" not in res.err:
            raise GitError(["git", "config", *args], res.code, res.out, res.err)
        if time.monotonic() > deadline:
            # Every git-agents writer holds our own lock here, so a config.lock that stays this
            # long was left by a git process that was killed, or is held by another program.
            raise AgentError(f"could not lock {config_file}: {config_file}.lock has existed for over 10 seconds",
                             hint=f"if no other git process is running, remove {config_file}.lock")
        time.sleep(0.01)


def write_config(repo: Repo, values: dict[str, str | None]) -> None:
    """Set (or, for None, unset) repository config keys, under the repository lock."""
    with RepoLock(repo.common_dir):
        for key, value in values.items():
            if value is None:
                _config(repo, "--unset-all", key, ok=(0, 5))
            else:
                _config(repo, "--replace-all", key, str(value))
    repo.reload_config()


def write_task(repo: Repo, task_id: str, **values: str | None) -> None:
    """Set (or, for None, unset) some of a task's keys."""
    write_config(repo, {f"{SECTION}.{task_id}.{_KEYS[attr]}": value for attr, value in values.items()})


def create_task(repo: Repo, task: Task) -> None:
    """Record a new task; fail if its id is already taken (checked under the lock, so races are safe)."""
    with RepoLock(repo.common_dir):
        repo.reload_config()
        if task.id in load_tasks(repo):
            raise AgentError(f"task '{task.id}' already exists",
                             hint=f"pick another id, or remove it first with: git agent-clean {task.id}")
        values = {attr: getattr(task, attr) for attr in _KEYS if getattr(task, attr)}
        # `created` goes last: a reader that sees it knows the record is complete.
        values.pop("created", None)
        write_task(repo, task.id, **values, created=task.created or now_iso())


def delete_task(repo: Repo, task_id: str) -> None:
    """Forget a task's live metadata (its durable history stays in the notes)."""
    with RepoLock(repo.common_dir):
        _config(repo, "--remove-section", f"{SECTION}.{task_id}", ok=(0, 128))
    repo.reload_config()
