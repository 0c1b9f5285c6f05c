"""Starting an agent detached in its worktree, and telling whether it is still running.

The agent runs under a tiny shell supervisor that writes the agent's exit status, end time
and launch id to `<task-dir>/exit` (atomically, by rename) when it ends, so the exit code is
known even if it ends while no git-agents process is watching.

The supervisor leads a new session and process group; everything the agent starts stays in
that group (unless it leaves it on purpose with setsid). An agent is running while any process
of its group is alive, not only while the supervisor is: a shell that ignores SIGTERM, or a
background child that writes later, keeps its worktree in use after the supervisor has ended.

Each launch has an id, written to the task record before the agent is forked, passed to the
supervisor (in its argv, so /proc shows it, and as GIT_AGENT_LAUNCH in every descendant's
environment) and written into the exit record. An exit record belongs to the launch whose id
it holds, and a launch whose pid was never recorded (its starter was killed) is found again
by that id.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from git_agents.core.procs import argvs
from git_agents.core.procs import process_start as process_start  # re-exported: callers ask agent
from git_agents.core.procs import stat_fields as _stat_fields
from git_agents.tasks.seal import bootstrap as seal_bootstrap
from git_agents.tasks.store import Task

# $1: the agent command line; $2: the exit record; $3: the shell to run the command with;
# $4: the launch id; $5: the worktree; $6 and $7: the Python and program that seal the worktree
# once the agent has exited (tasks/seal.py; empty: no seal). A trapped (not ignored) TERM lets
# the agent receive the signal while the supervisor lives on to record how it ended. The
# watcher starts before the exit record is written, through `setsid -f`: by the time the
# agent is seen to have ended, the watcher is in a session of its own, not in the agent's group.
# It is not traced (GIT_AGENTS_TRACE): its calls would land in the trace of whatever started the
# agent, at any time after.
SUPERVISOR = r"""
trap 'echo "git-agents: agent stopped by a signal" >&2' TERM INT HUP
"$3" -c "$1"
rc=$?
if [ -n "$6" ]; then
  (unset GIT_AGENT_LAUNCH GIT_AGENTS_TRACE
   exec setsid -f "$6" -E -c "$7" "$5" "${2%/*}" "$4" </dev/null >/dev/null 2>&1) 2>/dev/null
fi
printf '%s %s %s\n' "$rc" "$(date +%s)" "$4" > "$2.tmp" && mv -f "$2.tmp" "$2"
exit "$rc"
"""
SUPERVISOR_NAME = "git-agent-supervisor"  # its $0
LAUNCH_ENV = "GIT_AGENT_LAUNCH"
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL when stopping an agent

# Variables that would point the agent's git at this repository instead of its worktree.
_REPO_LOCAL_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_COMMON_DIR",
                   "GIT_OBJECT_DIRECTORY", "GIT_IMPLICIT_WORK_TREE")


@dataclass(frozen=True)
class ExitRecord:
    """How an agent ended: its exit status and when."""

    code: int
    finished: str


def run_seconds(started: str, finished: str, now: datetime | None = None) -> int | None:
    """How long an agent ran, from the stamps its task and exit record keep (the merge note's
    started and finished): until `finished`, or `now` while it runs; None without a start."""
    if not started:
        return None
    try:
        start = datetime.fromisoformat(started)
        end = datetime.fromisoformat(finished) if finished else (now or datetime.now(start.tzinfo))
    except ValueError:
        return None
    return max(0, int((end - start).total_seconds()))


def exit_path(task_dir: str) -> str:
    """The supervisor's exit record for a task."""
    return os.path.join(task_dir, "exit")


def log_path(task_dir: str) -> str:
    """The agent's combined stdout and stderr."""
    return os.path.join(task_dir, "agent.log")


def read_exit(task_dir: str, launch_id: str = "") -> ExitRecord | None:
    """The exit record, or None while the agent has not ended (or never ran).

    With `launch_id`, only a record of that launch counts: one left by an earlier launch of
    the task (or by another copy) is not this launch's end.
    """
    try:
        with open(exit_path(task_dir), encoding="utf-8") as fh:
            code, finished, *rest = fh.read().split()
        if launch_id and rest[:1] != [launch_id]:
            return None
        when = datetime.fromtimestamp(int(finished), UTC).astimezone()
        return ExitRecord(int(code), when.isoformat(timespec="seconds"))
    except (OSError, ValueError):
        return None


def write_exit(task_dir: str, code: int, launch_id: str) -> None:
    """Record an end the supervisor could not record (it was killed with its group)."""
    path = exit_path(task_dir)
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        fh.write(f"{code} {int(time.time())} {launch_id}\n")
    os.replace(path + ".tmp", path)


def new_launch_id() -> str:
    """A fresh launch id (random: two launches, even in two repositories, never share one)."""
    return os.urandom(8).hex()


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


def supervisor_argv(command: str, task_dir: str, shell: str, launch_id: str, worktree: str,
                    seal: bool) -> list[str]:
    """The supervisor's command line (see SUPERVISOR); with `seal`, it seals the worktree after the agent."""
    watcher = [sys.executable, seal_bootstrap()] if seal else ["", ""]
    return ["/bin/sh", "-c", SUPERVISOR, SUPERVISOR_NAME, command, exit_path(task_dir), shell, launch_id, worktree,
            *watcher]


def launch(task: Task, command: str, shell: str, task_dir: str, prompt_file: str,
           extra_env: dict[str, str] | None = None, launch_id: str = "", *, seal: bool = False,
           usage: tuple[str, str, str] | None = None) -> tuple[int, str]:
    """Start `command` detached in the task's worktree (with `extra_env` over its environment)
    as launch `launch_id`; return (pid, process start stamp). With `seal`, the worktree is
    sealed when the agent exits (tasks/seal.py). With `usage` (usage file, round, kind), the
    command's output is read by tasks/usage.py's filter, which keeps its token figures there."""
    os.makedirs(task_dir, exist_ok=True)
    if usage is not None:
        from git_agents.tasks.usage import wrap

        command = wrap(command, *usage, shell)
    for stale in (exit_path(task_dir), exit_path(task_dir) + ".tmp"):
        if os.path.exists(stale):
            os.unlink(stale)
    with open(log_path(task_dir), "ab") as log, _sigint_unblocked():
        proc = subprocess.Popen(
            supervisor_argv(command, task_dir, shell, launch_id, task.worktree, seal),
            cwd=task.worktree, env={**agent_env(task, prompt_file), **(extra_env or {}), LAUNCH_ENV: launch_id},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    # Read even from a zombie: not reaped yet (proc is ours), the pid cannot have been reused.
    fields = _stat_fields(proc.pid) or []
    return proc.pid, fields[19] if len(fields) > 19 else ""


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


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`, from /proc."""
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat_fields(int(name))
            if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                members.append(int(name))
    return members


def is_alive(pid: str, start: str) -> bool:
    """Whether the recorded process, or any process of the group it leads, still runs.

    `start` tells a reused pid apart: a process with that pid but another start stamp means
    the group has ended (the kernel does not reuse a process group's id while it has
    members). The stamp "gone" records a leader that had ended when its group was found.
    """
    if not pid.isdigit() or int(pid) <= 1:
        return False
    n = int(pid)
    if not os.path.isdir("/proc"):
        try:
            os.killpg(n, 0)
        except ProcessLookupError:
            try:
                os.kill(n, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        except PermissionError:
            return True
        return True
    fields = _stat_fields(n)
    if fields and fields[0] not in ("Z", "X"):
        return not start or (len(fields) > 19 and fields[19] == start)
    if fields and start and len(fields) > 19 and fields[19] != start:
        return False  # a zombie of another process: the pid was reused, so our group is gone
    try:
        os.killpg(n, 0)  # cheap first answer: no such group at all
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return bool(group_members(n))  # killpg also counts zombies nobody has reaped


def wait_gone(pid: str, start: str, seconds: float) -> bool:
    """Wait until nothing of the recorded process group runs; False if it still does after `seconds`."""
    deadline = time.monotonic() + seconds
    while is_alive(pid, start):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def signal_group(pid: str, start: str, sig: int) -> bool:
    """Send `sig` to the recorded process group (or the process, if it leads none); False if nothing runs."""
    if not is_alive(pid, start):
        return False
    try:
        os.killpg(int(pid), sig)
    except ProcessLookupError:
        try:
            os.kill(int(pid), sig)
        except ProcessLookupError:
            return False
    return True


def stop(pid: str, start: str, *, grace: float = STOP_GRACE, task_dir: str = "", launch_id: str = "") -> bool:
    """Stop the agent's whole process group and wait until every process of it is gone.

    SIGTERM first; whatever still runs after `grace` seconds gets SIGKILL. With `task_dir`,
    an end the supervisor could not record (it was killed too) is recorded as 137 for
    `launch_id`. False if nothing of it was running.
    """
    if not signal_group(pid, start, signal.SIGTERM):
        return False
    if not wait_gone(pid, start, grace):
        signal_group(pid, start, signal.SIGKILL)
        wait_gone(pid, start, 10)
    if task_dir and read_exit(task_dir, launch_id) is None:
        write_exit(task_dir, 128 + signal.SIGKILL, launch_id)
    return True


def find_launch(launch_id: str) -> tuple[str, str] | None:
    """(pid, start stamp) of the process group running launch `launch_id`, found in /proc.

    The supervisor has the id in its argv; every other process of the launch has it in its
    environment (the supervisor may have been killed). The stamp is "gone" when only the
    group's other processes are left.
    """
    if not launch_id or not os.path.isdir("/proc"):
        return None
    needle = f"{LAUNCH_ENV}={launch_id}".encode()
    member = None
    for pid, argv in argvs():
        name = str(pid)
        if SUPERVISOR_NAME.encode() in argv[:4] and launch_id.encode() in argv:
            start = process_start(pid)
            if start is not None:
                return name, start
            continue
        if member is None:
            try:
                with open(f"/proc/{name}/environ", "rb") as fh:
                    found = needle in fh.read().split(b"\0")
            except OSError:
                continue
            fields = _stat_fields(int(name))
            if found and fields and len(fields) > 2 and fields[0] not in ("Z", "X"):
                member = fields[2]
    return (member, "gone") if member else None


def locate(task: Task) -> tuple[str, str]:
    """(pid, start stamp) of the task's latest launch: as recorded, or found by its launch id
    when its starter was killed before recording the pid ("", "" when unknown)."""
    if task.launch and not task.pid:
        return find_launch(task.launch) or ("", "")
    return task.pid, task.pid_start


def running(task: Task) -> tuple[str, str] | None:
    """(pid, start stamp) of the task's agent while any process of its latest launch runs, else None."""
    if not task.agent and not task.launch:
        return None
    pid, start = locate(task)
    return (pid, start) if pid and is_alive(pid, start) else None


def stop_tasks(tasks: list[tuple[Task, str]], grace: float = STOP_GRACE) -> dict[str, str]:
    """Stop the agents of (task, task dir) pairs at once (see stop): SIGTERM to every group,
    one shared grace period, SIGKILL to what is left. Returns task id -> pid for those that ran."""
    found = {task.id: (task, task_dir, pids) for task, task_dir in tasks if (pids := running(task))}
    signalled = {tid: entry for tid, entry in found.items() if signal_group(*entry[2], signal.SIGTERM)}
    deadline = time.monotonic() + grace
    for _, _, pids in signalled.values():
        if not wait_gone(*pids, max(0.0, deadline - time.monotonic())):
            signal_group(*pids, signal.SIGKILL)
    for task, task_dir, pids in signalled.values():
        wait_gone(*pids, 10)
        if read_exit(task_dir, task.launch) is None:
            write_exit(task_dir, 128 + signal.SIGKILL, task.launch)
    return {tid: entry[2][0] for tid, entry in signalled.items()}


def stop_task(task: Task, task_dir: str, grace: float = STOP_GRACE) -> str | None:
    """Stop the task's agent (its whole process group, see stop); the pid it had, or None if none ran."""
    return stop_tasks([(task, task_dir)], grace).get(task.id)
