"""What `git agent-status` shows: each task's state, computed with a fixed number of git calls.

One config read (the tasks), one `for-each-ref` (branch tips), one `rev-list` per target
branch (commits ahead and fork points), one `diff-tree --stdin` (files changed), and one
`git status` per live worktree, run in parallel (none for a worktree sealed when its agent
exited and unchanged since: tasks/seal.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TypeVar

from git_agents.core.refs import branch_ref
from git_agents.core.repo import Repo
from git_agents.core.settings import parse_bool
from git_agents.core.worktrees import list_worktrees, unsaved_work, worktree_size
from git_agents.tasks import agent, seal, usage, waiting
from git_agents.tasks.store import Task, TaskState

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class TaskStatus:
    """A task as `status` reports it."""

    id: str
    title: str
    branch: str
    worktree: str
    base: str
    state: str  # the one word or phrase shown in the STATE column
    agent: str  # not started | running | exited | exited 0, work not committed | exited 0, no change | died
    #             | failed to start
    exit_code: int | None
    pid: int | None
    started: str
    finished: str
    ahead: int | None
    files_changed: int | None
    uncommitted: bool | None
    worktree_exists: bool
    conflicts: list[str]
    reason: str
    slot: str
    detached_commits: int | None  # commits only the worktree's detached HEAD holds
    disk_bytes: int | None = None  # bytes its worktree takes on disk (collect(sizes=True) only)
    tokens_in: int | None = None  # tokens its CLI reported sent to the model, over all runs (None: none reported)
    tokens_out: int | None = None
    cost_usd: float | None = None  # the cost its CLI reported (None: not reported)
    runs: list[dict[str, object]] = field(default_factory=list)  # each run's figures (tasks/usage.py)
    waiting: str | None = None  # an interactive agent waiting for its user: the question ("" unknown)
    dialog: str | None = None  # ... at a first-run dialog: its name (tasks/waiting.py DIALOGS)

    @property
    def spent(self) -> usage.Usage | None:
        """The task's token figures over all its runs, or None when its CLI reported none."""
        if self.tokens_in is None or self.tokens_out is None:
            return None
        return usage.Usage(self.tokens_in, self.tokens_out, self.cost_usd, reported=True)

    def to_json(self) -> dict[str, object]:
        """The task as a JSON object (see git-agent-status(1))."""
        return asdict(self)


NOT_COMMITTED = "exited 0, work not committed"
NO_CHANGE = "exited 0, no change"  # committed nothing, changed nothing: an agent that did nothing (or says it did)


def exited_0_outcome(repo: Repo, task: Task, tips: Mapping[str, str] | None = None) -> str:
    """What an agent that exited 0 left: NOT_COMMITTED (no commit of its own, changes in its
    worktree), NO_CHANGE (neither), else "exited" (commits of its own, or nothing to look at).

    `tips` (branch_tips, as the caller read them) saves reading the branch again."""
    if not task.worktree or not os.path.isdir(task.worktree) or not task.base_commit:
        return "exited"
    if tips is None:
        tips = {task.branch: repo.git.rev_parse(branch_ref(task.branch)) or ""}
    if tips.get(task.branch) != task.base_commit:
        return "exited"
    if unsaved_by_task(repo, [task], tips)[task.id]:
        return NOT_COMMITTED
    # commits on a detached HEAD are work too (shown as such by status), not "no change"
    head = repo.git.at(task.worktree).rev_parse("HEAD")
    return NO_CHANGE if head == task.base_commit else "exited"


def agent_state(repo: Repo, task: Task, *, check_work: bool = True,
                tips: Mapping[str, str] | None = None) -> tuple[str, int | None, str]:
    """(agent state, exit code, finish time) of a task's agent.

    An agent that exited 0 without a commit of its own is NOT_COMMITTED when it left changes in
    its worktree, NO_CHANGE when it left none, rather than "exited" (with `check_work`; it costs
    up to two git calls, one fewer with the branch `tips` the caller has read, none when the
    worktree is sealed).
    """
    if task.state == TaskState.FAILED and not task.pid and not task.launch:
        return "failed to start", None, ""
    if not task.agent and not task.launch:
        return "not started", None, ""
    # Running while any process of the launch's group is alive, even after its supervisor has
    # written an exit record (a child that ignored SIGTERM, or one left in the background).
    pid, start = agent.locate(task)
    if pid and agent.is_alive(pid, start):
        return "running", None, ""
    record = agent.read_exit(repo.task_dir(task.id), task.launch)
    if record is not None:
        if tips is None:
            from git_agents.tasks.isolation import sync

            sync(repo, task)  # a clone task's work, fetched back (with `tips`, branch_tips did)
        if check_work and record.code == 0:
            return exited_0_outcome(repo, task, tips), 0, record.finished
        return "exited", record.code, record.finished
    if task.state == TaskState.FAILED and not task.pid:
        return "failed to start", None, ""
    if task.launch and not pid:
        return "not started", None, ""  # recorded as about to start, but no process of it was ever found
    return "died", None, ""


def branch_tips(repo: Repo, names: set[str] | None = None) -> dict[str, str]:
    """Branch name -> commit of the branches `names` (None: every branch), in one for-each-ref
    (after fetching back the branches of clone tasks whose agents ended: tasks.isolation.sync)."""
    if names is not None and not names:
        return {}
    from git_agents.tasks.isolation import sync_all

    sync_all(repo)  # the branches of clone tasks whose agents ended, fetched back first
    return dict(repo.git.tips(names))


def _ahead_and_forks(repo: Repo, target_tip: str, tips: list[str]) -> dict[str, tuple[int, str]]:
    """For each tip: (commits not in the target, one fork point) from one rev-list walk."""
    out = repo.git.run("rev-list", "--boundary", "--parents", *tips, "--not", target_tip).out
    parents: dict[str, list[str]] = {}
    boundary: set[str] = set()
    for line in out.splitlines():
        if line.startswith("-"):
            boundary.add(line[1:].split()[0])
            continue
        sha, *ps = line.split()
        parents[sha] = ps
    result = {}
    for tip in tips:
        if tip not in parents:
            result[tip] = (0, tip)
            continue
        seen: set[str] = set()
        fork = ""
        stack = [tip]
        while stack:
            sha = stack.pop()
            if sha in seen:
                continue
            if sha in boundary or sha not in parents:
                fork = fork or sha
                continue
            seen.add(sha)
            stack.extend(parents[sha])
        result[tip] = (len(seen), fork)
    return result


def _files_changed(repo: Repo, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Number of files that differ for each (old, new) pair, from one `diff-tree --stdin` call."""
    pairs = [p for p in pairs if p[0] and p[0] != p[1]]
    counts = {p: 0 for p in pairs}
    if not pairs:
        return counts
    unique = list(dict.fromkeys(pairs))
    # diff-tree prints nothing for an empty diff, so leave out pairs with equal trees: then
    # every pair left prints its old side's id first, in order.
    commits = list(dict.fromkeys(c for p in unique for c in p))
    trees = dict(zip(commits, repo.git("rev-parse", *(f"{c}^{{tree}}" for c in commits)).split()))
    unique = [p for p in unique if trees[p[0]] != trees[p[1]]]
    if not unique:
        return counts
    out = repo.git.run("diff-tree", "-r", "--name-only", "-z", "--stdin",
                       input="".join(f"{a} {b}\n" for a, b in unique)).out
    pending = iter(unique)
    expected: tuple[str, str] | None = next(pending)
    current: tuple[str, str] | None = None
    for name in out.split("\0"):
        if not name:
            continue
        if expected is not None and name == expected[0]:
            current = expected
            expected = next(pending, None)
        elif current is not None:
            counts[current] += 1
    return counts


def parallel_map(fn: Callable[[T], R], items: list[T], workers: int | None = None) -> list[R]:
    """`[fn(x) for x in items]` on a few threads (each waits on its own git process); the first
    exception is re-raised. Plain threading: concurrent.futures imports logging (~15 ms).

    `workers` defaults to the number of CPUs: each git call keeps one busy, and more at once only
    queue for the same cores (measured by benchmarks/status.py)."""
    workers = workers or os.cpu_count() or 2
    if len(items) < 2:
        return [fn(x) for x in items]
    import threading

    results: list[R | None] = [None] * len(items)
    errors: list[BaseException] = []
    pending = iter(range(len(items)))
    lock = threading.Lock()

    def work() -> None:
        while not errors:
            with lock:
                i = next(pending, None)
            if i is None:
                return
            try:
                results[i] = fn(items[i])
            except BaseException as exc:  # noqa: B036 - handed to the calling thread
                errors.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, len(items)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]


def unsaved_by_task(repo: Repo, tasks: list[Task], tips: Mapping[str, str],
                    unsealed: list[str] | None = None) -> dict[str, list[str]]:
    """Each task's uncommitted-work entries (give only tasks whose worktree exists): from its seal
    when that is trusted (tasks/seal.py), else from `git status`, those run in parallel.

    `tips`: branch_tips, as read by the caller. With `unsealed`, the reason is appended for each
    exited agent's worktree checked in full for a known reason (seal.why_unsealed). Not for
    removal, which always checks in full."""
    found: dict[str, list[str]] = {}
    todo = []
    watcher = seal.sync(repo.state_dir) if any(t.launch for t in tasks) else seal.Watcher(why_not="no agent ran")
    for t in tasks:
        task_dir = repo.task_dir(t.id)
        sealed = seal.trusted_entries(task_dir, t.worktree, t.launch, tips, watcher)
        if sealed is None:
            todo.append(t)
            if unsealed is not None and t.launch and agent.read_exit(task_dir, t.launch) is not None:
                why = seal.why_unsealed(task_dir, t.launch, watcher)
                if why is None and not parse_bool(repo.setting("agent.sealWorktrees"), True):
                    why = "seals are off (agent.sealWorktrees=false)"
                if why is not None:
                    unsealed.append(why)
        else:
            found[t.id] = list(sealed)
    for t, entries in zip(todo, parallel_map(lambda t: unsaved_work(repo, t.worktree), todo)):
        found[t.id] = entries
    return found


def collect(repo: Repo, tasks: list[Task], *, check_dirty: bool = True, sizes: bool = False) -> list[TaskStatus]:
    """The status of each task (with `sizes`, also the bytes each worktree takes on disk: a walk
    of every worktree, so only `status -v`/`--json` ask for it)."""
    if not tasks:
        return []
    listed = [w for w in list_worktrees(repo) if not w.prunable]
    live_worktrees = {os.path.realpath(w.path) for w in listed}
    from git_agents.tasks.isolation import is_clone

    live_worktrees |= {os.path.realpath(t.worktree) for t in tasks
                       if is_clone(t) and t.worktree and os.path.isdir(os.path.join(t.worktree, ".git"))}
    detached_heads = {os.path.realpath(w.path): w.head for w in listed if not w.branch and w.head}
    tips = branch_tips(repo, {t.branch for t in tasks if t.branch} | {t.base for t in tasks if t.base})
    ahead: dict[str, tuple[int, str]] = {}
    by_target: dict[str, list[str]] = {}
    for t in tasks:
        tip = tips.get(t.branch)
        target = tips.get(t.base) or t.base_commit
        if tip and target:
            by_target.setdefault(target, []).append(tip)
    for target, group in by_target.items():
        for tip, value in _ahead_and_forks(repo, target, sorted(set(group))).items():
            ahead[f"{target} {tip}"] = value
    pairs = {}
    for t in tasks:
        tip = tips.get(t.branch)
        target = tips.get(t.base) or t.base_commit
        if tip and target and f"{target} {tip}" in ahead:
            pairs[t.id] = (ahead[f"{target} {tip}"][1], tip)
    changed = _files_changed(repo, list(pairs.values()))

    exists = {t.id: bool(t.worktree) and os.path.realpath(t.worktree) in live_worktrees
              and os.path.isdir(t.worktree) for t in tasks}
    dirty: dict[str, bool] = {}
    if check_dirty:
        unsaved = unsaved_by_task(repo, [t for t in tasks if exists[t.id]], tips)
        dirty = {tid: bool(entries) for tid, entries in unsaved.items()}

    # A detached HEAD is rare: one rev-list for each task whose worktree has one.
    detached: dict[str, int] = {}
    for t in tasks:
        head = detached_heads.get(os.path.realpath(t.worktree)) if exists[t.id] else None
        if head:
            keep = [t.base_commit] if t.base_commit else []
            res = repo.git.run("rev-list", "--count", head, "--not", "--branches", *keep, "--", ok=(0, 128))
            detached[t.id] = int(res.out.strip()) if res.code == 0 and res.out.strip().isdigit() else 0
    disk: dict[str, int] = {}
    if sizes:
        todo = [t for t in tasks if exists[t.id]]
        disk = dict(zip((t.id for t in todo), parallel_map(lambda t: worktree_size(t.worktree), todo)))

    result = []
    for t in tasks:
        state_word, code, finished = agent_state(repo, t, check_work=False)
        tip = tips.get(t.branch)
        target = tips.get(t.base) or t.base_commit
        n_ahead = ahead.get(f"{target} {tip}", (None, ""))[0] if tip else None
        files = changed.get(pairs[t.id], 0) if t.id in pairs else None
        if not t.complete:  # written half-way by an interrupted command (no `created`)
            shown = "incomplete"
        elif t.state in (TaskState.MERGED, TaskState.CONFLICT, TaskState.CHECK_FAILED, TaskState.INTERRUPTED):
            shown = t.state
        elif t.state == TaskState.FAILED:
            shown = "failed" + (f": {t.reason}" if t.reason else "")
        elif t.state == TaskState.BLOCKED:
            shown = "blocked" + (f": {t.reason}" if t.reason else "")
        elif not exists[t.id]:
            shown = "worktree missing"
        elif state_word == "exited" and code == 0 and n_ahead == 0 and dirty.get(t.id):
            shown = state_word = NOT_COMMITTED
        elif (state_word == "exited" and code == 0 and tip == t.base_commit and dirty.get(t.id) is False
              and not detached.get(t.id)):  # commits on a detached HEAD are a change
            shown = state_word = NO_CHANGE
        elif state_word == "exited":
            shown = f"exited {code}"
        elif state_word == "not started" and t.after:  # git agent-run starts it once these merged
            shown = f"waiting for {', '.join(t.after.split())}"
        else:
            shown = state_word
        asks = waiting.detect(t, repo.task_dir(t.id)) if state_word == "running" and t.tmux_pane else None
        if asks is not None and t.complete and not t.state:
            shown = asks.state
        n_detached = detached.get(t.id, 0) if exists[t.id] else None
        if n_detached and t.state != TaskState.MERGED:
            shown += f", detached HEAD with {n_detached} commit{'s' if n_detached > 1 else ''} not on any branch"
        spent = usage.runs(repo.task_dir(t.id))
        whole = usage.total(spent)
        result.append(TaskStatus(
            id=t.id, title=t.title, branch=t.branch, worktree=t.worktree, base=t.base, state=shown,
            agent=state_word, exit_code=code, pid=int(t.pid) if t.pid.isdigit() else None,
            started=t.started, finished=finished, ahead=n_ahead, files_changed=files,
            uncommitted=dirty.get(t.id), worktree_exists=exists[t.id], conflicts=t.conflict_files,
            reason=t.reason, slot=t.slot, detached_commits=n_detached, disk_bytes=disk.get(t.id),
            tokens_in=whole.tokens_in if whole else None, tokens_out=whole.tokens_out if whole else None,
            cost_usd=whole.cost if whole else None, runs=[u.to_json() for u in spent],
            waiting=asks.question if asks else None, dialog=(asks.dialog or None) if asks else None))
    return result
