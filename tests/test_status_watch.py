"""git agent-status --watch: a new table on each change in a log, redrawn in place on a terminal."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import Project, write_script


def _spawn_waiting_agent(project: Project, tmp_path: Path, task: str = "1") -> Path:
    """A task whose agent commits once the file `go` exists, so the test decides when it ends."""
    go = tmp_path / "go"
    agent = write_script(tmp_path / "wait-agent.sh", f"""
        while [ ! -e '{go}' ]; do sleep 0.05; done
        echo done > done.txt && git add done.txt && git commit -q -m done
    """)
    project.ok("spawn", task, "--prompt", "wait for go", "--agent", str(agent))
    return go


def test_watch_in_a_log_prints_a_table_on_each_change_and_exits_when_done(project: Project, tmp_path: Path) -> None:
    go = _spawn_waiting_agent(project, tmp_path)
    proc = subprocess.Popen(["git", "agent-status", "--watch=0.1", "--exit-when-done"], cwd=project.path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # several intervals while nothing changes: one table only
    go.touch()
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (0, "")
    blocks = out.split("\n\n")
    stamps = [b.splitlines()[0] for b in blocks]
    assert all(len(s) == 8 and s[2] == ":" for s in stamps), stamps
    wt = os.path.relpath(project.worktrees / "task-1", project.path)
    tables = [b.splitlines()[1:] for b in blocks]
    assert [tables[0], tables[-1]] == [
        ["ID  STATE    AHEAD  FILES  DIRTY  BRANCH  WORKTREE" + " " * (len(wt) - 8) + "  TITLE",
         f"1   running  0      0      no     task-1  {wt}  wait for go"],
        ["ID  STATE     AHEAD  FILES  DIRTY  BRANCH  WORKTREE" + " " * (len(wt) - 8) + "  TITLE",
         f"1   exited 0  1      1      no     task-1  {wt}  wait for go"],
    ], out
    # Between them, only the agent's own steps (its file written, then committed, while it still
    # runs), each a change when a tick falls in it; while nothing changed, no table at all.
    middle = [t[1].split() for t in tables[1:-1]]
    assert len(middle) <= 2 and all(row[1] == "running" for row in middle), out


@pytest.mark.parametrize("argv", [["git-agent-status"], ["git", "agent-status"]])
def test_watch_ends_quietly_on_ctrl_c_with_130_however_started(project: Project, tmp_path: Path,
                                                               argv: list[str]) -> None:
    _spawn_waiting_agent(project, tmp_path)
    # through `git`, git itself dies of the SIGINT (130) as for any command: the same code without it
    proc = subprocess.Popen([*argv, "--watch=0.1"], cwd=project.path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    first = b""
    while b"ID  STATE" not in first:  # the first table is out
        first += os.read(proc.stdout.fileno(), 4096)
    os.killpg(proc.pid, signal.SIGINT)  # as the terminal does: the whole foreground group, git calls too
    out, err = proc.communicate(timeout=30)
    # a shell shows 130 for both: git-agent-status exits 130, git dies of the signal (-2 here)
    assert (proc.returncode, err) == (130 if argv[0] == "git-agent-status" else -signal.SIGINT, b"")
    assert (first + out).count(b"ID  STATE") == 1
    project.ok("stop", "1")


def test_watch_takes_its_interval_only_after_equals(project: Project, tmp_path: Path) -> None:
    project.ok("spawn", "2", "--prompt", "x")
    # `--watch 2`: task 2, at the default interval (not every 2 seconds over all tasks)
    proc = project.agent("status", "--watch", "2", "--exit-when-done")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.splitlines()[2].split()[:2] == ["2", "not"]
    bad = project.agent("status", "--watch=0")
    assert bad.returncode == 129
    assert bad.stderr.startswith("error: argument --watch: not a number of seconds above 0: '0'\n")
    both = project.agent("status", "--watch", "--json")
    assert both.stderr.startswith("error: --watch cannot be combined with --json\n")
    assert project.agent("status", "--exit-when-done").stderr.startswith("error: --exit-when-done needs --watch\n")
    unknown = project.agent("status", "--watch", "nope")
    assert (unknown.returncode, unknown.stderr) == (128, "fatal: no such task: 'nope'\n"
                                                          "hint: `git agent-status` lists the tasks\n")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_watch_on_a_terminal_redraws_in_place(project: Project, tmp_path: Path) -> None:
    go = _spawn_waiting_agent(project, tmp_path)
    socket = str(tmp_path / "tmux.sock")
    subprocess.run(["tmux", "-S", socket, "new-session", "-d", "-x", "120", "-y", "20", "-c", str(project.path),
                    "git agent-status --watch=0.1 --exit-when-done; echo EXIT=$?; sleep 30"],
                   check=True, env=os.environ)
    try:
        def screen() -> str:
            return subprocess.run(["tmux", "-S", socket, "capture-pane", "-p"], capture_output=True,
                                  text=True, check=True).stdout

        deadline = time.monotonic() + 30
        while "running" not in screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        lines = screen().splitlines()
        assert lines[0].startswith("Every 0.1s: git agent-status"), lines
        assert lines[2].split() == ["ID", "STATE", "AHEAD", "FILES", "DIRTY", "BRANCH", "WORKTREE", "TITLE"]
        assert lines[3].split()[:2] == ["1", "running"]
        go.touch()
        while "EXIT=" not in screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        lines = [line for line in screen().splitlines() if line]
        # one table on the screen (cleared before each draw), then the exit code
        assert sum(line.startswith("ID ") for line in lines) == 1, lines
        assert lines[2].split()[:3] == ["1", "exited", "0"]
        assert lines[-1] == "EXIT=0"
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, check=False)
