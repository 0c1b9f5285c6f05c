"""What `git agent-top` shows, refreshed every second at a cost that stays small with 100 tasks.

A tick reads the configuration (one `git config --list`) and the branch tips (one
`for-each-ref`), each agent's exit record and process (files under .git and /proc, no git),
and the tail of each log that grew. Only when those changed does it recompute commits ahead
and files changed (`status.collect` without `git status`: a fixed handful of git calls) and,
when a branch tip moved, the predicted conflicts (`merging.predict`, as `git agent-conflicts`).
The expensive part, a `git status` per worktree for unsaved work, runs for a worktree only
when its index or HEAD changed (an mtime, read without git) or its last check is older than
`dirty_every` seconds, and at most `status_per_tick` of them per tick after the first.
Imports no Textual: the model is tested and usable on its own.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime

from git_agents.core.refs import Oid
from git_agents.core.repo import Repo
from git_agents.core.worktrees import git_dir_of, unsaved_work
from git_agents.merging.predict import fill_file_sets, predict_pairs, task_branches
from git_agents.tasks import agent, usage, waiting
from git_agents.tasks.status import NOT_COMMITTED, TaskStatus, agent_state, collect, parallel_map
from git_agents.tasks.store import Task, load_tasks

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class Row:
    """One task as the screen shows it."""

    id: str
    title: str
    state: str
    agent: str  # as TaskStatus.agent: running, exited, not started, ...
    started: str
    finished: str
    ahead: int | None
    files: int | None
    dirty: bool | None  # None: not checked yet, or no worktree
    conflicts: list[str] = field(default_factory=list)  # ids of tasks (or the target branch) it would conflict with
    log_line: str = ""
    worktree: str = ""
    branch: str = ""
    tokens: str = "-"  # tokens in/out and cost its CLI reported so far (tasks/usage.py)

    def elapsed(self, now: datetime | None = None) -> str:
        """Time since the agent started, until it finished (or now): `42s`, `3m05s`, `2h07m`."""
        seconds = agent.run_seconds(self.started, self.finished, now)
        if seconds is None:
            return "-"
        if seconds < 60:
            return f"{seconds}s"
        if seconds < 3600:
            return f"{seconds // 60}m{seconds % 60:02d}s"
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def last_line(path: str, limit: int = 8192) -> str:
    """The last non-empty line of a file (its last `limit` bytes), without escapes or control characters."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read()
    except OSError:
        return ""
    for line in reversed(data.replace(b"\r", b"\n").split(b"\n")):
        text = _CONTROL.sub("", line.decode("utf-8", "replace")).strip()
        if text:
            return text
    return ""


def _index_stamp(worktree: str) -> tuple[float, ...]:
    """mtimes of the worktree's index and HEAD: they change on add, commit, checkout, reset."""
    dot_git = os.path.join(worktree, ".git")
    git_dir = dot_git if os.path.isdir(dot_git) else git_dir_of(worktree)
    if git_dir is None:
        return ()
    stamps = []
    for name in ("index", "HEAD"):
        try:
            stamps.append(os.stat(os.path.join(git_dir, name)).st_mtime_ns / 1e9)
        except OSError:
            stamps.append(0.0)
    return tuple(stamps)


class Overview:
    """The live model behind `git agent-top`: call `refresh()` (from one thread at a time) for the rows."""

    def __init__(self, repo: Repo, *, dirty_every: float = 10.0, status_per_tick: int = 10,
                 clock: object = time.monotonic) -> None:
        self.repo = repo
        self.dirty_every = dirty_every
        self.status_per_tick = status_per_tick
        self._clock = clock
        self._signature: object = None
        self._heads: dict[str, Oid] = {}
        self._statuses: list[TaskStatus] = []
        self._tasks: dict[str, Task] = {}
        self._conflicts: dict[str, list[str]] = {}
        self._dirty: dict[str, bool] = {}
        self._checked: dict[str, tuple[float, tuple[float, ...]]] = {}  # worktree -> (when, index stamp)
        self._logs: dict[str, tuple[tuple[int, float], str]] = {}
        self._first = True

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def refresh(self) -> list[Row]:
        """Read what changed since the last call; the rows, in task id order."""
        repo = self.repo
        repo.reload_config()
        tasks = load_tasks(repo)
        heads = repo.git.tips()
        states = tuple((t.id, agent_state(repo, t, check_work=False)) for t in tasks.values())
        signature = (tuple(repr(t) for t in tasks.values()), heads, states)
        if signature != self._signature:
            self._statuses = collect(repo, list(tasks.values()), check_dirty=False)
            self._tasks = tasks
            self._signature = signature
        if heads != self._heads:
            self._conflicts = self._predict(tasks, heads)
            self._heads = heads
        self._check_dirty()
        return [self._row(s) for s in self._statuses]

    def _predict(self, tasks: dict[str, Task], heads: dict[str, Oid]) -> dict[str, list[str]]:
        """Task id -> what it would conflict with: other tasks' ids, or its target branch."""
        branches, target_tips = task_branches(tasks.values(), heads)
        if not branches:
            return {}
        fill_file_sets(self.repo.git, branches, target_tips)
        branches = [b for b in branches if b.files]
        found: dict[str, list[str]] = {}
        for pair in predict_pairs(self.repo.git, branches, target_tips):
            if not pair.conflict:
                continue
            found.setdefault(pair.a, []).append(pair.b)
            if pair.kind == "task":
                found.setdefault(pair.b, []).append(pair.a)
        return found

    def _check_dirty(self) -> None:
        """`git status` for the worktrees that are due: index/HEAD changed, or not checked for dirty_every."""
        now = self._now()
        live = [s for s in self._statuses if s.worktree_exists and s.worktree]
        due: list[tuple[int, str, tuple[float, ...]]] = []
        for s in live:
            stamp = _index_stamp(s.worktree)
            seen = self._checked.get(s.worktree)
            if seen is None:
                due.append((0, s.worktree, stamp))
            elif seen[1] != stamp:
                due.append((1, s.worktree, stamp))
            elif now - seen[0] >= self.dirty_every:
                due.append((2, s.worktree, stamp))
        due.sort(key=lambda d: (d[0], self._checked.get(d[1], (0.0,))[0]))
        if not self._first:
            due = due[:self.status_per_tick]
        self._first = False
        if not due:
            return
        results = parallel_map(lambda d: bool(unsaved_work(self.repo, d[1])), due, workers=4)
        for (_, path, stamp), dirty in zip(due, results):
            self._dirty[path] = dirty
            self._checked[path] = (now, stamp)

    def _log_line(self, task_id: str) -> str:
        path = agent.log_path(self.repo.task_dir(task_id))
        try:
            st = os.stat(path)
        except OSError:
            return ""
        key = (st.st_size, st.st_mtime)
        cached = self._logs.get(task_id)
        if cached is None or cached[0] != key:
            cached = (key, last_line(path))
            self._logs[task_id] = cached
        return cached[1]

    def _row(self, s: TaskStatus) -> Row:
        dirty = self._dirty.get(s.worktree) if s.worktree_exists else None
        state = s.state
        if s.agent == "exited" and s.exit_code == 0 and s.ahead == 0 and dirty and state == "exited 0":
            state = NOT_COMMITTED
        task = self._tasks.get(s.id)
        if s.agent == "running" and task is not None and task.tmux_pane and not task.state and task.complete:
            # statuses are recomputed only when something changed; whether it waits, every tick
            asks = waiting.detect(task, self.repo.task_dir(s.id))
            state = asks.state if asks is not None else "running"
        return Row(id=s.id, title=s.title, state=state, agent=s.agent, started=s.started, finished=s.finished,
                   ahead=s.ahead, files=s.files_changed, dirty=dirty, conflicts=self._conflicts.get(s.id, []),
                   log_line=self._log_line(s.id), worktree=s.worktree, branch=s.branch,
                   # read each tick (small files, no git): the figures grow while the agent runs
                   tokens=usage.short(usage.task_total(self.repo.task_dir(s.id))))
