"""Starting an agent detached in its worktree, and telling whether it is still running.

The agent runs under a tiny shell supervisor that writes the agent's exit status and end
time to `<task-dir>/exit` (atomically, by rename) when it ends, so the exit code is known
even if it ends while no git-agents process is watching.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from git_agents.tasks.store import Task

# $1: the agent command line; $2: the exit record; $3: the shell to run the command with.
# A trapped (not ignored) TERM lets the agent receive the signal while the supervisor lives
# on to record how it ended.
SUPERVISOR = r"""
trap 'echo "git-agents: agent stopped by a signal" >&2' TERM INT HUP
"$3" -c "$1"
rc=$?
printf '%s %s\n' "$rc" "$(date +%s)" > "$2.tmp" && mv -f "$2.tmp" "$2"
exit "$rc"
"""

# Variables that would point the agent's git at this repository instead of its worktree.
_REPO_LOCAL_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_COMMON_DIR",
                   "GIT_OBJECT_DIRECTORY", "GIT_IMPLICIT_WORK_TREE")


@dataclass(frozen=True)
class ExitRecord:
    """How an agent ended: its exit status and when."""

    code: int
    finished: str


def exit_path(task_dir: str) -> str:
    """The supervisor's exit record for a task."""
    return os.path.join(task_dir, "exit")


def log_path(task_dir: str) -> str:
    """The agent's combined stdout and stderr."""
    return os.path.join(task_dir, "agent.log")


def read_exit(task_dir: str) -> ExitRecord | None:
    """The exit record, or None while the agent has not ended (or never ran)."""
    try:
        with open(exit_path(task_dir), encoding="utf-8") as fh:
            code, _, finished = fh.read().strip().partition(" ")
        when = datetime.fromtimestamp(int(finished), UTC).astimezone()
        return ExitRecord(int(code), when.isoformat(timespec="seconds"))
    except (OSError, ValueError):
        return None


def missing_program(command: str, cwd: str) -> str | None:
    """The agent's program when it can be seen not to exist, else None (shell syntax passes)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return None
    program = words[0] if words else ""
    if not re.fullmatch(r"[\w./+~-]+", program) or program in _SHELL_WORDS:
        return None
    program = os.path.expanduser(program)
    if "/" in program:
        path = os.path.join(cwd, program)
        return None if os.path.isfile(path) and os.access(path, os.X_OK) else words[0]
    return None if shutil.which(program) else words[0]


_SHELL_WORDS = {"cd", "exec", "export", "if", "for", "while", "case", "set", "eval", ".", "source",
                "command", "env", "time", "nohup", "{", "(", "!", "true", "false", "echo", "printf",
                "test", "[", "exit", "sleep", "trap", "umask", "ulimit", "unset", "read"}


def absolutise_program(command: str, invoked_from: str) -> str:
    """Make a leading `./script` absolute when it exists where the user typed it.

    The agent runs in its worktree, but a user who types `--agent ./my-agent.sh` means the
    script beside them, which may be untracked and so absent from a new worktree.
    """
    stripped = command.lstrip()
    word = stripped.split(None, 1)[0] if stripped else ""
    if word.startswith(("./", "../")) and os.path.exists(os.path.join(invoked_from, word)):
        return shlex.quote(os.path.normpath(os.path.join(invoked_from, word))) + stripped[len(word):]
    return command


def agent_env(task: Task, prompt_file: str) -> dict[str, str]:
    """The environment an agent runs with."""
    env = {k: v for k, v in os.environ.items() if k not in _REPO_LOCAL_ENV}
    env.update(GIT_AGENT_TASK=task.id, GIT_AGENT_BRANCH=task.branch, GIT_AGENT_WORKTREE=task.worktree,
               GIT_AGENT_PROMPT_FILE=prompt_file, GIT_AGENT_TITLE=task.title)
    if task.port:
        env.update(GIT_AGENT_PORT=task.port, GIT_AGENT_INDEX=task.index)
    return env


def launch(task: Task, command: str, shell: str, task_dir: str, prompt_file: str,
           extra_env: dict[str, str] | None = None) -> tuple[int, str]:
    """Start `command` detached in the task's worktree (with `extra_env` over its environment);
    return (pid, process start stamp)."""
    os.makedirs(task_dir, exist_ok=True)
    for stale in (exit_path(task_dir), exit_path(task_dir) + ".tmp"):
        if os.path.exists(stale):
            os.unlink(stale)
    with open(log_path(task_dir), "ab") as log, _sigint_unblocked():
        proc = subprocess.Popen(
            ["/bin/sh", "-c", SUPERVISOR, "git-agent-supervisor", command, exit_path(task_dir), shell],
            cwd=task.worktree, env={**agent_env(task, prompt_file), **(extra_env or {})}, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    return proc.pid, process_start(proc.pid) or ""


@contextlib.contextmanager
def _sigint_unblocked() -> Iterator[None]:
    """Unblock SIGINT while forking an agent: a caller that blocks it (git agent-run) must not
    hand an agent a blocked SIGINT, which it would keep for its whole life."""
    old = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if signal.SIGINT in old:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the program name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()


def process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (to tell a reused pid apart), or None if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    if fields and fields[0] in ("Z", "X"):
        return None  # a zombie has ended; nobody reaped it yet
    return fields[19] if len(fields) > 19 else None


def parent_pid(pid: int) -> int | None:
    """The parent of `pid` (from /proc), or None when it is gone or /proc is missing."""
    fields = _stat_fields(pid) or []
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def program_name(pid: int) -> str:
    """The short program name of `pid` (/proc/<pid>/comm), or "" when unknown."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def is_alive(pid: str, start: str) -> bool:
    """Whether the recorded process still runs (the same process, not a reused pid)."""
    if not pid.isdigit():
        return False
    if os.path.isdir("/proc"):
        now = process_start(int(pid))
        return now is not None and (not start or now == start)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(pid: str, start: str, sig: int = signal.SIGTERM) -> bool:
    """Signal the agent's whole process group; False if it had already ended."""
    if not is_alive(pid, start):
        return False
    try:
        os.killpg(int(pid), sig)
    except ProcessLookupError:
        return False
    return True
