"""Interactive agents: each in its own window of one tmux session per repository.

The window runs the same supervisor as a detached agent (agent.SUPERVISOR), so its exit is
recorded in the task's exit file; `tmux pipe-pane` copies what the window shows into the task's
agent.log; the pid recorded is the pane's process (the supervisor), so status, wait, stop and
clean work unchanged. The window opens on a tiny launcher that waits until pipe-pane is set up
and then execs the supervisor (same pid) with the spawner's exact environment, read from a file:
a tmux server gives new panes its own global environment, and a tmux command is too small
(about 16 KB) to carry a whole environment as `-e` options.

Sessions live on the user's default tmux server (so a plain `tmux attach` finds them), or on
the server named by GIT_AGENT_TMUX_SOCKET (`tmux -L <name>`); TMUX_TMPDIR is honoured by tmux
itself. Each task records its server's socket path, so later commands reach the same server
whatever their environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from git_agents.core.errors import AgentError
from git_agents.core.repo import Repo
from git_agents.tasks import agent
from git_agents.tasks.store import Task

# Variables tmux sets itself in each pane (or that describe the spawner's terminal, not the pane's).
_PANE_OWN_ENV = ("TMUX", "TMUX_PANE", "TERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "COLUMNS", "LINES")

# Runs in the new pane: wait for the spec file (written once pipe-pane copies the pane to the log),
# then become the supervisor (exec keeps the pid that tmux reports as #{pane_pid}).
_LAUNCHER = r"""
import json, os, sys, time
spec = sys.argv[1]
deadline = time.monotonic() + 60
while not os.path.exists(spec):
    if time.monotonic() > deadline:
        sys.stderr.write("git-agents: the agent's start was abandoned\n")
        sys.exit(127)
    time.sleep(0.01)
with open(spec) as fh:
    data = json.load(fh)
os.unlink(spec)
os.chdir(data["cwd"])
os.execve(data["argv"][0], data["argv"], data["env"])
"""


@dataclass(frozen=True)
class Window:
    """Where an interactive agent runs: the tmux server (socket path), session, window and pane."""

    socket: str
    session: str
    window: str  # window id, @N (a task id may contain '.', which tmux targets would misread)
    pane: str  # pane id, %N

    @classmethod
    def of(cls, task: Task) -> Window | None:
        """The window recorded for a task, or None when its agent was not started in tmux."""
        if not task.tmux_socket or not task.tmux_pane:
            return None
        return cls(task.tmux_socket, task.tmux_session, task.tmux_window, task.tmux_pane)


def record_keys(window: Window | None) -> dict[str, str | None]:
    """The task keys that record `window` (None: unset them, the agent is not in tmux)."""
    if window is None:
        return {"tmux_socket": None, "tmux_session": None, "tmux_window": None, "tmux_pane": None}
    return {"tmux_socket": window.socket, "tmux_session": window.session, "tmux_window": window.window,
            "tmux_pane": window.pane}


def tmux_program() -> str:
    """The tmux executable, or an AgentError telling how to get it."""
    path = shutil.which("tmux")
    if not path:
        raise AgentError("tmux is not installed; interactive agents run in tmux windows",
                         hint="install it (e.g. apt-get install tmux), or spawn without --tmux")
    return path


def server_args() -> list[str]:
    """The tmux options that choose the server new sessions go to."""
    name = os.environ.get("GIT_AGENT_TMUX_SOCKET", "")
    return ["-L", name] if name else []


def _tmux(args: Sequence[str], *, socket: str | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    where = ["-S", socket] if socket else server_args()
    run_env = dict(env if env is not None else os.environ)
    if socket:
        run_env.pop("TMUX", None)  # -S names the server; $TMUX would only make tmux refuse nesting
    return subprocess.run([tmux_program(), *where, *args], capture_output=True, text=True, env=run_env,
                          stdin=subprocess.DEVNULL, check=False)


def session_name(repo: Repo) -> str:
    """One session per repository: `git-agents-<basename>-<short hash of the common dir>`."""
    base = re.sub(r"[^A-Za-z0-9_-]", "_", os.path.basename(repo.main_worktree.rstrip("/")) or "repo")
    digest = hashlib.sha1(os.path.realpath(repo.common_dir).encode("utf-8", "surrogateescape")).hexdigest()[:7]
    return f"git-agents-{base}-{digest}"


def launch(repo: Repo, task: Task, command: str, shell: str, task_dir: str, prompt_file: str,
           extra_env: dict[str, str] | None = None, launch_id: str = "", *,
           seal: bool = False) -> tuple[int, str, Window]:
    """Start `command` under the supervisor in a new window named after the task; return
    (pid, process start stamp, window)."""
    os.makedirs(task_dir, exist_ok=True)
    for stale in (agent.exit_path(task_dir), agent.exit_path(task_dir) + ".tmp"):
        if os.path.exists(stale):
            os.unlink(stale)
    env = {k: v for k, v in {**agent.agent_env(task, prompt_file), **(extra_env or {}),
                             agent.LAUNCH_ENV: launch_id}.items() if k not in _PANE_OWN_ENV}
    spec = os.path.join(task_dir, "tmux-start.json")
    for stale in (spec, spec + ".tmp"):
        if os.path.exists(stale):
            os.unlink(stale)
    session = session_name(repo)
    fmt = "#{socket_path}\t#{window_id}\t#{pane_id}\t#{pane_pid}"
    pane_cmd = [sys.executable, "-c", _LAUNCHER, spec]
    res = None
    for _ in range(3):
        # A session may appear or go (its last window closing) between the two calls: try again.
        if _tmux(["has-session", "-t", f"={session}"]).returncode == 0:
            res = _tmux(["new-window", "-d", "-P", "-F", fmt, "-t", f"={session}:", "-n", task.id,
                         "-c", task.worktree, *pane_cmd])
        else:
            res = _tmux(["new-session", "-d", "-P", "-F", fmt, "-s", session, "-n", task.id,
                         "-c", task.worktree, *pane_cmd])
        if res.returncode == 0:
            break
    assert res is not None
    if res.returncode != 0:
        raise AgentError(f"tmux could not open a window for task {task.id}: {res.stderr.strip()}",
                         hint="check that tmux works here (tmux new-session), or spawn without --tmux")
    socket, window_id, pane_id, pid = res.stdout.strip().split("\t")
    window = Window(socket, session, window_id, pane_id)
    try:
        log = agent.log_path(task_dir)
        open(log, "ab").close()
        piped = _tmux(["pipe-pane", "-o", "-t", pane_id, f"cat >> {shlex.quote(log)}"], socket=socket)
        if piped.returncode != 0:
            raise AgentError(f"tmux could not copy task {task.id}'s window to its log: {piped.stderr.strip()}")
        argv = agent.supervisor_argv(command, task_dir, shell, launch_id, task.worktree, seal)
        fd = os.open(spec + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the environment
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
            json.dump({"argv": argv, "env": env, "cwd": task.worktree}, fh)
        os.replace(spec + ".tmp", spec)
    except BaseException:
        _tmux(["kill-window", "-t", window_id], socket=socket)
        raise
    return int(pid), agent.process_start(int(pid)) or "", window


def live_window(task: Task, verb: str) -> Window:
    """The task's window while its interactive agent runs, else an AgentError saying why not."""
    window = Window.of(task)
    if window is None:
        raise AgentError(f"task {task.id} is not an interactive agent",
                         hint=f"only agents started with --tmux run in a tmux window; follow this one with: "
                              f"git agent-logs -f {task.id}")
    res = _tmux(["display-message", "-p", "-t", window.pane, "#{pane_dead} #{pane_pid}"], socket=window.socket)
    fields = res.stdout.split()
    if res.returncode != 0 or fields[:1] != ["0"] or fields[1:] != [task.pid]:
        raise AgentError(f"task {task.id}'s tmux window is gone (its agent has ended)",
                         hint=f"see its output with: git agent-logs {task.id}; to {verb} it again: "
                              f"git agent-continue {task.id} --tmux --prompt <text>")
    return window


def capture(window: Window) -> tuple[str, float | None] | None:
    """What the window's pane shows now, and when its window last had output (epoch seconds;
    None when tmux does not say); None when the pane is gone."""
    res = _tmux(["display-message", "-p", "-t", window.pane, "#{window_activity}", ";",
                 "capture-pane", "-p", "-t", window.pane], socket=window.socket)
    if res.returncode != 0:
        return None
    first, _, screen = res.stdout.partition("\n")
    return screen, float(first) if first.strip().isdigit() else None


def attach_argv(window: Window, inside: str | None) -> list[str]:
    """The tmux command that shows `window`: switch-client when `inside` ($TMUX) is a client of
    the same server, else attach (a client of another server, or none, attaches anew)."""
    tmux = tmux_program()
    if inside and os.path.realpath(inside.split(",")[0]) == os.path.realpath(window.socket):
        return [tmux, "-S", window.socket, "switch-client", "-t", window.pane]
    return [tmux, "-S", window.socket, "attach-session", "-t", window.pane]


# A key as tmux names it: modifiers (Ctrl, Meta, Shift), then one printable character or a named key.
_KEY = re.compile(r"(?:[CMS]-)*(?:[!-~]|Enter|Escape|Tab|BTab|Space|BSpace|Up|Down|Left|Right|Home|End|"
                  r"PageUp|PgUp|PPage|PageDown|PgDn|NPage|Insert|IC|Delete|DC|F[1-9]|F1[0-2])")


def key_problem(key: str) -> str | None:
    """Why `key` is not a tmux key name (for send --key), or None when it is one."""
    if _KEY.fullmatch(key):
        return None
    return f"--key '{key}' is not a key: name one as tmux does, e.g. C-c, Escape, Enter, Tab, Up, F1, M-x"


def control_character(text: str) -> str | None:
    """The first control character in `text` and where, as "\\x03 at character 5", or None.
    Typed into a terminal, such a character acts as a key (Ctrl-C interrupts the agent, a new
    line submits, ESC starts a key sequence), so text that holds one is not typed at all."""
    import unicodedata

    for index, char in enumerate(text):
        if unicodedata.category(char) == "Cc":
            return f"{repr(char)[1:-1]} at character {index + 1}"
    return None


def send_keys(window: Window, keys: Sequence[str]) -> None:
    """Press `keys` (tmux key names, see key_problem) in the window, in order."""
    res = _tmux(["send-keys", "-t", window.pane, *keys], socket=window.socket)
    if res.returncode != 0:
        raise AgentError(f"tmux could not type into {window.pane}: {res.stderr.strip()}")


def send_text(window: Window, text: str, *, enter: bool) -> None:
    """Type `text` into the window as literal keys (never read as key names), then Enter. The
    caller refuses text with a control character first (see control_character)."""
    # One tmux command holds about 16 KB: send a long text in pieces.
    pieces = [text[i:i + 2000] for i in range(0, len(text), 2000)]
    for piece in pieces:
        res = _tmux(["send-keys", "-l", "-t", window.pane, "--", piece], socket=window.socket)
        if res.returncode != 0:
            raise AgentError(f"tmux could not type into {window.pane}: {res.stderr.strip()}")
    if enter:
        send_keys(window, ["Enter"])
