"""The task file `git agent-run` reads: TOML with global settings and a list of [[task]] tables.

    agent = "claude"          # preset or shell command (default: agent.command)
    base = "main"             # branch to start from and merge into (default: the main worktree's)
    jobs = 2                  # agents running at once
    merge = true              # merge the successful tasks at the end
    check = "make test"       # each merged result must pass it (as git agent-merge --check)
    pool = false              # take worktrees from git agent-pool (as git agent-spawn --pool)
    resolve = true            # an agent resolves a task that conflicts (true: its own; or an agent name)
    style = "merge"           # merge, squash or rebase (as git agent-merge --style; default: agent.mergeStyle)
    sparse = ["src/mixer"]    # sparse task worktrees (as git agent-spawn --sparse; default: agent.sparse)
    tmux = false              # each agent interactive in a tmux window (as git agent-spawn --tmux)
    isolation = "clone"       # worktree, clone or sandbox (as git agent-spawn --isolation; default: agent.isolation)

    [[task]]
    id = "48"
    title = "free mixer channel on delete"
    prompt = "Free the mixer channel when ..."   # or prompt_file = "tasks/48.md"
    agent = "codex"                              # optional, overrides the global agent
    after = ["47"]                               # start once these tasks have merged
    sparse = ["src/mixer", "docs"]               # optional, overrides the global sparse ([]: full)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from git_agents.core.errors import AgentError
from git_agents.tasks.ids import id_problem
from git_agents.tasks.prompt import check_no_nul, decode_text, default_title

_GLOBAL_KEYS = {"agent", "base", "jobs", "merge", "check", "pool", "resolve", "sparse", "style", "tmux", "task",
                "isolation"}
_TASK_KEYS = {"id", "title", "prompt", "prompt_file", "agent", "after", "sparse"}


@dataclass
class TaskSpec:
    """One [[task]] of the file."""

    id: str
    title: str
    text: str
    agent: str  # as written (a preset name or a command); empty: the global one
    after: list[str] = field(default_factory=list)  # ids of the tasks that must merge before it starts
    sparse: list[str] | None = None  # directories of a sparse worktree; None: the global setting


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
    resolve: str | None = None  # None: no resolving; "": each task's own agent; else the resolver
    style: str = ""  # "": agent.mergeStyle decides
    sparse: list[str] | None = None  # None: agent.sparse
    tmux: bool | None = None  # None: agent.tmux decides
    isolation: str | None = None  # None: agent.isolation decides
    tasks: list[TaskSpec] = field(default_factory=list)


def _fail(path: str, message: str) -> AgentError:
    return AgentError(f"{path}: {message}", hint="the format is in git help agent-run (DESCRIPTION) and the README")


def _no_nul(path: str, value: Any, where: str) -> None:
    """Refuse a string holding NUL (TOML's \\u0000): no argument, environment variable or config value
    can carry one."""
    if isinstance(value, str):
        check_no_nul(value, f"{path}: {where or 'a value'}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(path, item, f"'{key}'")
    elif isinstance(value, list):
        for item in value:
            _no_nul(path, item, where)


def _typed(path: str, table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        wanted = "a string" if kind is str else "an integer" if kind is int else "true or false"
        raise _fail(path, f"{where}'{key}' must be {wanted}")
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
    except UnicodeDecodeError as exc:
        raise AgentError(f"{path}: not UTF-8 text: an invalid byte at offset {exc.start}",
                         hint="save the task file as UTF-8, e.g. with: iconv -f latin1 -t utf-8") from None
    _no_nul(path, data, "")
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
    result.sparse = _sparse(path, data, "")
    result.tmux = _typed(path, data, "tmux", bool, "")
    result.isolation = _typed(path, data, "isolation", str, "")
    if result.isolation is not None and result.isolation not in ("worktree", "clone", "sandbox"):
        raise _fail(path, "'isolation' must be \"worktree\", \"clone\" or \"sandbox\"")
    result.style = _typed(path, data, "style", str, "") or ""
    if result.style not in ("", "merge", "squash", "rebase"):
        raise _fail(path, f"'style' must be merge, squash or rebase, not '{result.style}'")
    if result.style == "rebase" and data.get("resolve") not in (None, False):
        raise _fail(path, "'resolve' commits a merge on the task's branch, which style = \"rebase\" would drop "
                          "(use style = \"merge\" or \"squash\")")
    if result.check and not result.merge:
        raise _fail(path, "'check' gates the merges, and merge = false makes none "
                          "(drop check, or check later with git agent-merge --check)")
    resolve = data.get("resolve")
    if resolve is not None and not isinstance(resolve, (bool, str)):
        raise _fail(path, "'resolve' must be true, false or an agent (a preset or a command)")
    result.resolve = None if resolve is False or resolve is None else ("" if resolve is True else resolve)
    if result.resolve is not None and not result.merge:
        raise _fail(path, "'resolve' resolves conflicts while merging, and merge = false makes no merges")
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
    _check_after(path, result)
    return result


def _check_after(path: str, tf: TaskFile) -> None:
    """Refuse `after` naming unknown tasks or making a cycle (naming them), or with merge = false."""
    ids = {spec.id for spec in tf.tasks}
    for spec in tf.tasks:
        unknown = [a for a in spec.after if a not in ids]
        if unknown:
            raise _fail(path, f"task {spec.id}: 'after' names unknown task(s): {', '.join(unknown)}")
    if any(spec.after for spec in tf.tasks) and not tf.merge:
        raise _fail(path, "'after' waits for tasks to merge, and merge = false merges none")
    after = {spec.id: spec.after for spec in tf.tasks}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in after:
        stack: list[tuple[str, int]] = [(start, 0)]
        path_ids: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                if state.get(node) == 2:
                    continue
                if state.get(node) == 1:
                    cycle = path_ids[path_ids.index(node):] + [node]
                    raise _fail(path, f"'after' makes a cycle: {' -> '.join(cycle)}")
                state[node] = 1
                path_ids.append(node)
            if i < len(after[node]):
                stack.append((node, i + 1))
                stack.append((after[node][i], 0))
            else:
                state[node] = 2
                path_ids.pop()


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
            with open(file, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise _fail(path, f"task {task_id}: cannot read prompt_file '{prompt_file}': {exc.strerror}") from exc
        prompt = decode_text(data, f"{path}: task {task_id}: prompt_file '{prompt_file}'")
    title = _typed(path, table, "title", str, where) or default_title(task_id, prompt or "")
    after = table.get("after", [])
    if not isinstance(after, list) or not all(isinstance(a, (str, int)) and not isinstance(a, bool) for a in after):
        raise _fail(path, f"task {task_id}: 'after' must be a list of task ids, e.g. after = [\"48\", \"50\"]")
    after = list(dict.fromkeys(str(a) for a in after))
    return TaskSpec(task_id, title, prompt or "", _typed(path, table, "agent", str, where) or "", after,
                    _sparse(path, table, where))


def _sparse(path: str, table: dict[str, Any], where: str) -> list[str] | None:
    value = table.get("sparse")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, f"{where}'sparse' must be a list of directories (strings)")
    return list(value)
