"""Output like git's: colour only when wanted, GIT_AGENTS_TRACE, spawn --porcelain, -q/-v."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import Project, write_script

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def on_terminal(project: Project, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `git agent-<args>` with its stdout on a pseudo-terminal; return what it printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(["git", *args], cwd=project.path, stdout=slave, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.fixture
def one_task(project: Project, committing_agent: Path) -> Project:
    project.ok("spawn", "5", "--prompt", "x", "--agent", str(committing_agent))
    project.ok("wait", "--all")
    return project


def test_status_is_coloured_on_a_terminal_only(one_task: Project) -> None:
    coloured = on_terminal(one_task, "agent-status")
    assert ANSI.search(coloured)
    plain = one_task.ok("status").stdout
    assert not ANSI.search(plain)
    assert ANSI.sub("", coloured) == plain


@pytest.mark.parametrize("how", ["NO_COLOR", "--color=never", "color.agent=never", "color.ui=false",
                                 "color.agent=false over color.ui=always"])
def test_colour_can_be_turned_off_on_a_terminal(one_task: Project, how: str) -> None:
    env, args = {}, []
    if how == "NO_COLOR":
        env["NO_COLOR"] = "1"
    elif how.startswith("--"):
        args.append(how)
    elif how.startswith("color.agent=false"):
        one_task.git("config", "color.ui", "always")
        one_task.git("config", "color.agent", "false")
    else:
        key, value = how.split("=")
        one_task.git("config", key, value)
    assert not ANSI.search(on_terminal(one_task, "agent-status", *args, env=env))


@pytest.mark.parametrize("how", ["--color=always", "--color", "color.agent=always", "NO_COLOR and --color=always"])
def test_colour_can_be_forced_when_piped(one_task: Project, how: str) -> None:
    env, args = {}, []
    if how.startswith("color."):
        key, value = how.split("=")
        one_task.git("config", key, value)
    else:
        args.append(how.split()[-1])
        if how.startswith("NO_COLOR"):
            env["NO_COLOR"] = "1"
    out = one_task.ok("status", *args, env=env).stdout
    assert ANSI.search(out)
    assert "\x1b[32mexited 0" in out  # the state, in green


def test_trace_to_stderr(one_task: Project) -> None:
    proc = one_task.ok("status", env={"GIT_AGENTS_TRACE": "1"})
    lines = proc.stderr.splitlines()
    assert lines, "no trace"
    pattern = re.compile(r"trace: git-agents: +\d+\.\d ms exit \d+: git \S.*")
    assert all(pattern.fullmatch(line) for line in lines), lines
    assert any("ms exit 0: git config -z --list" in line for line in lines)
    assert proc.stdout == one_task.ok("status").stdout


def test_trace_to_a_file(one_task: Project, tmp_path: Path) -> None:
    trace = tmp_path / "trace.log"
    first = one_task.ok("status", env={"GIT_AGENTS_TRACE": str(trace)})
    assert first.stderr == ""
    count = len(trace.read_text().splitlines())
    assert count >= 2
    one_task.ok("status", env={"GIT_AGENTS_TRACE": str(trace)})  # appends, as GIT_TRACE does
    assert len(trace.read_text().splitlines()) == 2 * count
    assert one_task.ok("status", env={"GIT_AGENTS_TRACE": "0"}).stderr == ""


def test_spawn_porcelain(project: Project, committing_agent: Path, tmp_path: Path) -> None:
    missing = write_script(tmp_path / "gone.sh", "exit 0\n")
    proc = project.agent("spawn", "--porcelain", "3", "4", "--prompt", "p", "--agent", str(committing_agent))
    assert (proc.returncode, proc.stderr) == (0, "")
    blocks = [dict(line.split(" ", 1) for line in block.splitlines()) for block in proc.stdout.split("\n\n")]
    assert [b["id"] for b in blocks] == ["3", "4"]
    for block in blocks:
        assert list(block) == ["id", "branch", "worktree", "pid"]
        assert block["branch"] == f"task-{block['id']}"
        assert block["worktree"] == str(project.worktrees / f"task-{block['id']}")
        assert int(block["pid"]) > 0
    prepared = project.ok("spawn", "--porcelain", "6", "--no-agent").stdout
    assert prepared == f"id 6\nbranch task-6\nworktree {project.worktrees / 'task-6'}\n"
    missing.unlink()
    failed = project.agent("spawn", "--porcelain", "7", "--agent", str(missing))
    assert failed.returncode == 1
    assert failed.stdout == (f"id 7\nbranch task-7\nworktree {project.worktrees / 'task-7'}\n"
                             f"error agent command not found: {missing}\n")


def test_quiet_and_verbose(project: Project, committing_agent: Path) -> None:
    assert project.ok("spawn", "-q", "1", "2", "--prompt", "p", "--agent", str(committing_agent)).stdout == ""
    verbose = project.ok("spawn", "-v", "3", "--no-agent").stdout.splitlines()
    assert verbose[1].startswith("  prompt: ") and verbose[1].endswith("/agents/tasks/3/prompt.md")
    assert project.ok("wait", "-q", "--all").stdout == ""
    merged = project.ok("merge", "-v", "1").stdout.splitlines()
    assert merged[1:] == ["  feat: Task 1 - p", "1 merged, 0 not merged"]
    assert project.ok("merge", "-q", "2").stdout == "1 merged, 0 not merged\n"
    assert project.ok("clean", "-q", "--merged").stdout == ""



def test_status_quiet_and_verbose(one_task: Project) -> None:
    assert one_task.ok("status", "-q").stdout == "ID  STATE\n5   exited 0\n"
    verbose = one_task.ok("status", "-v").stdout.splitlines()
    assert verbose[0].split() == ["ID", "STATE", "AHEAD", "FILES", "DIRTY", "BRANCH", "WORKTREE", "PID", "STARTED",
                                  "FINISHED", "SIZE", "TITLE"]
    cells = verbose[1].split()
    assert cells[:6] == ["5", "exited", "0", "1", "1", "no"] and cells[-1] == "x"
    assert cells[8].isdigit() and cells[9][:4].isdigit() and cells[10][:4].isdigit() and cells[11].endswith("K")
