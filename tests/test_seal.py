"""Worktree seals (git_agents/tasks/seal.py): a task worktree's state from when its agent exited.

Merge and status trust a seal only while its watcher runs and nothing it watches has changed;
every test here changes the worktree in a way a stale seal would miss, and checks that the
task is still not merged with its work left behind unannounced, and that removal never trusts
a seal at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import Project, end_watchers, run, write_script


def seal_file(project: Project, task: str) -> Path:
    return project.path / ".git" / "agents" / "tasks" / task / "seal"


def wait_for_seal(project: Project, task: str, timeout: float = 60) -> dict[str, object]:
    path = seal_file(project, task)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError(f"no seal for task {task} after {timeout} s")


def wait_gone(path: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while path.exists():
        assert time.monotonic() < deadline, f"{path} still there"
        time.sleep(0.02)


def spawn_committing(project: Project, task: str) -> Path:
    """Spawn task `task` with an agent that commits one file; wait for it; return its worktree."""
    agent = write_script(project.path.parent / f"agent-{task}.sh", f"""
        echo "work of {task}" > "file-{task}.txt"
        git add "file-{task}.txt"
        git commit -q -m "task {task}"
    """)
    project.ok("spawn", "-q", "--agent", str(agent), task)
    project.ok("wait", task)
    return project.worktrees / f"task-{task}"


def merge_trace(project: Project, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    trace = tmp_path / "trace"
    trace.unlink(missing_ok=True)
    proc = project.agent("merge", "--all", env={"GIT_AGENTS_TRACE": str(trace)})
    return proc, trace.read_text().splitlines() if trace.exists() else []


def status_calls_in(lines: list[str], worktree: Path) -> list[str]:
    return [line for line in lines if " status " in line and f"(in {worktree})" in line]


def test_a_sealed_worktree_is_merged_without_a_git_status_in_it(project: Project, tmp_path: Path) -> None:
    worktree = spawn_committing(project, "1")
    seal = wait_for_seal(project, "1")
    assert seal["entries"] == []
    proc, lines = merge_trace(project, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Merged task 1" in proc.stdout
    assert project.git("show", "main:file-1.txt") == "work of 1"
    assert status_calls_in(lines, worktree) == []  # the seal answered


def test_the_agent_has_ended_when_its_watcher_starts(project: Project) -> None:
    spawn_committing(project, "1")
    wait_for_seal(project, "1")
    status = json.loads(project.ok("status", "--json").stdout)
    task = next(t for t in status["tasks"] if t["id"] == "1")
    assert task["agent"] == "exited"


def test_a_file_edited_in_place_after_the_seal_is_not_merged_unannounced(project: Project) -> None:
    worktree = spawn_committing(project, "1")
    wait_for_seal(project, "1")
    # Written in place: its directory does not change, only the file's own inode.
    with open(worktree / "file-1.txt", "r+") as fh:
        fh.write("W")
    wait_gone(seal_file(project, "1"))
    proc = project.agent("merge", "--all")
    assert proc.returncode == 1
    assert "uncommitted or untracked work" in proc.stderr
    assert project.git("rev-list", "--count", "main") == "1"  # nothing merged
    assert (worktree / "file-1.txt").read_text().startswith("W")


def test_an_untracked_file_after_the_seal_is_seen(project: Project) -> None:
    worktree = spawn_committing(project, "1")
    wait_for_seal(project, "1")
    (worktree / "notes.txt").write_text("left behind\n")
    wait_gone(seal_file(project, "1"))
    proc = project.agent("merge", "--all")
    assert proc.returncode == 1 and "uncommitted or untracked work" in proc.stderr


def test_a_killed_watcher_means_a_full_check(project: Project, tmp_path: Path) -> None:
    worktree = spawn_committing(project, "1")
    seal = wait_for_seal(project, "1")
    os.kill(int(str(seal["pid"])), signal.SIGKILL)  # the seal file stays, its watcher is gone
    time.sleep(0.1)
    assert seal_file(project, "1").exists()
    with open(worktree / "file-1.txt", "r+") as fh:
        fh.write("W")
    proc, lines = merge_trace(project, tmp_path)
    assert proc.returncode == 1 and "uncommitted or untracked work" in proc.stderr
    assert status_calls_in(lines, worktree)  # checked in full


def test_head_moved_by_git_alone_means_a_full_check(project: Project) -> None:
    agent = write_script(project.path.parent / "agent.sh", """
        echo one > one.txt && git add one.txt && git commit -q -m one
        echo two > two.txt && git add two.txt && git commit -q -m two
    """)
    project.ok("spawn", "-q", "--agent", str(agent), "1")
    project.ok("wait", "1")
    worktree = project.worktrees / "task-1"
    wait_for_seal(project, "1")
    # Only the branch moves back (the index and the files stay): two.txt is now staged, not committed.
    project.git("update-ref", "refs/heads/task-1", "task-1~1")
    proc = project.agent("merge", "--all")
    assert "uncommitted or untracked work" in proc.stderr
    assert "Merged" not in proc.stdout
    assert (worktree / "two.txt").exists()


def test_status_uses_the_seal_and_sees_a_change(project: Project, tmp_path: Path) -> None:
    worktree = spawn_committing(project, "1")
    wait_for_seal(project, "1")
    trace = tmp_path / "trace"
    proc = project.agent("status", "--json", env={"GIT_AGENTS_TRACE": str(trace)})
    assert proc.returncode == 0
    assert status_calls_in(trace.read_text().splitlines(), worktree) == []
    assert json.loads(proc.stdout)["tasks"][0]["uncommitted"] is False
    (worktree / "file-1.txt").write_text("changed\n")
    wait_gone(seal_file(project, "1"))
    assert json.loads(project.ok("status", "--json").stdout)["tasks"][0]["uncommitted"] is True


def test_removal_never_trusts_a_seal(project: Project) -> None:
    worktree = spawn_committing(project, "1")
    seal = wait_for_seal(project, "1")
    project.ok("merge", "--all")
    # Freeze the watcher's reader, so that the seal stays although the worktree changes.
    waiter = int(str(seal["pid"]))
    frozen = [int(p) for p in os.listdir("/proc") if p.isdigit() and _session(int(p)) == waiter]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        (worktree / "file-1.txt").write_text("edited after the merge\n")
        time.sleep(0.2)
        assert seal_file(project, "1").exists()
        proc = project.agent("clean", "1")
        assert proc.returncode != 0
        assert "uncommitted" in proc.stderr
        assert (worktree / "file-1.txt").read_text() == "edited after the merge\n"
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)


def _session(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2:].split()[3])


def test_a_new_launch_ends_the_old_watcher(project: Project) -> None:
    spawn_committing(project, "1")
    old = int(str(wait_for_seal(project, "1")["pid"]))
    project.ok("continue", "1", "--agent", "true", "--prompt", "again")
    project.ok("wait", "1")
    new = wait_for_seal(project, "1")
    assert int(str(new["pid"])) != old
    deadline = time.monotonic() + 5
    while _session(old) == old:
        assert time.monotonic() < deadline, "the old watcher still runs"
        time.sleep(0.05)


def test_seals_can_be_turned_off(project: Project) -> None:
    project.git("config", "agent.sealWorktrees", "false")
    spawn_committing(project, "1")
    time.sleep(1)
    assert not seal_file(project, "1").exists()
    proc = project.ok("merge", "--all")
    assert proc.returncode == 0
    assert proc.stderr == ("note: 1 agent worktree(s) checked with git status, not sealed: "
                           "seals are off (agent.sealWorktrees=false)\n")


def test_removing_the_worktree_ends_its_watcher(project: Project) -> None:
    spawn_committing(project, "1")
    pid = int(str(wait_for_seal(project, "1")["pid"]))
    project.ok("merge", "--all")
    project.ok("clean", "1")
    deadline = time.monotonic() + 5
    while _session(pid) == pid:
        assert time.monotonic() < deadline, "the watcher outlived its worktree"
        time.sleep(0.05)


@pytest.mark.parametrize("count", [6])
def test_many_agents_exiting_at_once_each_get_their_own_seal(project: Project, tmp_path: Path, count: int) -> None:
    agent = write_script(tmp_path / "agent.sh", """
        echo "work of $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt"
        git add "file-$GIT_AGENT_TASK.txt"
        git commit -q -m "task $GIT_AGENT_TASK"
    """)
    ids = [str(n) for n in range(1, count + 1)]
    project.ok("spawn", "-q", "--agent", str(agent), *ids)
    project.ok("wait", *ids)
    seals = [wait_for_seal(project, i) for i in ids]
    assert len({s["launch"] for s in seals}) == count
    # One watcher for the repository, holding one inotify instance for all the worktrees.
    assert len({s["pid"] for s in seals}) == 1
    watcher = int(str(seals[0]["pid"]))
    fds = [os.readlink(f"/proc/{watcher}/fd/{fd}") for fd in os.listdir(f"/proc/{watcher}/fd")]
    assert fds.count("anon_inode:inotify") == 1
    proc, lines = merge_trace(project, tmp_path)
    assert proc.returncode == 0 and proc.stdout.count("Merged task") == count
    assert not any(status_calls_in(lines, project.worktrees / f"task-{i}") for i in ids)
    assert end_watchers(tmp_path) == 1
    run(["true"], tmp_path)


def wait_for_seal_or_refusal(project: Project, task: str, timeout: float = 60) -> None:
    """Wait until the watcher has sealed the task's worktree or recorded why not."""
    task_dir = project.path / ".git" / "agents" / "tasks" / task
    deadline = time.monotonic() + timeout
    while not (task_dir / "seal").exists() and not (task_dir / "unsealed").exists():
        assert time.monotonic() < deadline, f"task {task}: neither sealed nor refused after {timeout} s"
        time.sleep(0.05)


def assert_skipped_with_work(project: Project, worktree: Path, name: str, content: str, note: str) -> None:
    proc = project.agent("merge", "--all")
    assert proc.returncode == 1, proc.stdout
    assert "uncommitted or untracked work" in proc.stderr
    assert f"note: 1 agent worktree(s) checked with git status, not sealed: {note}\n" in proc.stderr
    assert "Merged" not in proc.stdout
    assert project.git("rev-list", "--count", "main") == "1"  # nothing merged
    assert (worktree / name).read_text() == content
    clean = project.agent("clean", "1")
    assert clean.returncode != 0 and "uncommitted" in clean.stderr


def test_a_file_hard_linked_from_outside_and_edited_there_is_not_merged_unannounced(project: Project) -> None:
    outside = project.path.parent / "outside-link.txt"
    agent = write_script(project.path.parent / "agent.sh", f"""
        echo "work of 1" > file-1.txt && git add file-1.txt && git commit -q -m "task 1"
        ln file-1.txt {outside}
    """)
    project.ok("spawn", "-q", "--agent", str(agent), "1")
    project.ok("wait", "1")
    worktree = project.worktrees / "task-1"
    wait_for_seal_or_refusal(project, "1")
    with open(outside, "a") as fh:  # through the other link: no event where the worktree is watched
        fh.write("edited outside\n")
    assert_skipped_with_work(project, worktree, "file-1.txt", "work of 1\nedited outside\n",
                             "'file-1.txt' has another hard link (an edit through it would not be seen)")
    assert "hard link" in (project.path / ".git" / "agents" / "tasks" / "1" / "unsealed").read_text()


def test_a_process_left_behind_writing_through_mmap_is_not_merged_unannounced(project: Project, tmp_path: Path) -> None:
    ready, go, done, pidfile = (tmp_path / n for n in ("ready", "go", "done", "pid"))
    writer = tmp_path / "writer.py"
    writer.write_text(textwrap.dedent(f"""
        import mmap, os, time
        with open("{pidfile}", "w") as out:
            out.write(str(os.getpid()))
        with open("file-1.txt", "r+b") as fh:
            view = mmap.mmap(fh.fileno(), 0)
        open("{ready}", "w").close()
        while not os.path.exists("{go}"):
            time.sleep(0.02)
        view[0:4] = b"WORK"
        open("{done}", "w").close()
        time.sleep(60)
    """))
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "work of 1" > file-1.txt && git add file-1.txt && git commit -q -m "task 1"
        setsid -f {sys.executable} {writer} </dev/null >/dev/null 2>&1
        while [ ! -e {ready} ]; do sleep 0.02; done
    """)
    project.ok("spawn", "-q", "--agent", str(agent), "1")
    project.ok("wait", "1")
    worktree = project.worktrees / "task-1"
    try:
        wait_for_seal_or_refusal(project, "1")
        go.touch()  # the process the agent left behind now writes through its mapping
        deadline = time.monotonic() + 20
        while not done.exists():
            assert time.monotonic() < deadline, "the writer did not write"
            time.sleep(0.02)
        writer_pid = pidfile.read_text()
        assert_skipped_with_work(project, worktree, "file-1.txt", "WORK of 1\n",
                                 f"process {writer_pid} of the agent's launch still runs")
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_a_stopped_watcher_is_not_trusted(project: Project) -> None:
    worktree = spawn_committing(project, "1")
    watcher = int(str(wait_for_seal(project, "1")["pid"]))
    os.kill(watcher, signal.SIGSTOP)  # alive, same start stamp, but it reads no event
    try:
        with open(worktree / "file-1.txt", "r+") as fh:
            fh.write("W")
        time.sleep(0.1)
        assert seal_file(project, "1").exists()
        assert_skipped_with_work(project, worktree, "file-1.txt", "Work of 1\n", "the worktree watcher is stopped")
    finally:
        os.kill(watcher, signal.SIGCONT)
