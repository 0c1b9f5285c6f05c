"""Agents as process groups: stop waits for every process, "running" means any of them lives,
launches are identified, and no removal leaves commits on a detached HEAD dangling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from .conftest import Project, write_script


def _rows(project: Project) -> dict[str, dict]:
    return {t["id"]: t for t in json.loads(project.ok("status", "--json").stdout)["tasks"]}


def _wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _group_gone(pgid: int) -> bool:
    """No live (non-zombie) process in the group."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[2] == str(pgid) and fields[0] not in "ZX":
            return False
    return True


def stubborn_agent(tmp_path: Path, name: str = "stubborn.sh") -> Path:
    """An agent that ignores SIGTERM and commits once the test creates `go` (or after a minute)."""
    return write_script(tmp_path / name, f"""
        trap '' TERM
        touch {tmp_path}/ready-$GIT_AGENT_TASK
        i=0
        while [ ! -e {tmp_path}/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
        echo work > work.txt && git add work.txt && git commit -q -m "late work"
        touch {tmp_path}/done-$GIT_AGENT_TASK
    """)


def test_stop_waits_for_a_term_ignoring_agent_and_kills_it(project: Project, tmp_path: Path) -> None:
    project.ok("spawn", "1", "--prompt", "p", "--agent", str(stubborn_agent(tmp_path)))
    _wait_for(tmp_path / "ready-1")
    pid = _rows(project)["1"]["pid"]
    began = time.monotonic()
    stop = project.ok("stop", "1", "--timeout", "1")
    took = time.monotonic() - began
    assert stop.stdout == f"Stopped task 1 (agent pid {pid})\n"
    assert 1 <= took < 15  # the grace period, then SIGKILL: not before (the agent would wait a minute)
    assert _group_gone(pid)  # every process of it is gone when stop returns
    row = _rows(project)["1"]
    assert row["agent"] == "exited" and row["state"] in ("exited 143", "exited 137")
    (tmp_path / "go").touch()
    time.sleep(0.3)
    assert not (tmp_path / "done-1").exists()
    assert project.git("rev-list", "--count", "main..task-1") == "0"
    again = project.agent("stop", "1")
    assert (again.returncode, again.stdout) == (1, "Task 1: agent not running\n")


def test_running_until_every_process_of_the_group_ends(project: Project, tmp_path: Path) -> None:
    # The case: SIGTERM ends the agent's wrapper shell, its TERM-ignoring script goes on.
    project.ok("spawn", "1", "--prompt", "p", "--agent", f"sh {stubborn_agent(tmp_path)}; true")
    _wait_for(tmp_path / "ready-1")
    pid = _rows(project)["1"]["pid"]
    os.killpg(pid, signal.SIGTERM)
    time.sleep(0.3)
    row = _rows(project)["1"]
    assert (row["state"], row["agent"]) == ("running", "running")
    clean = project.agent("clean", "1")
    assert clean.returncode == 1
    assert clean.stderr == (f"error: not removing task 1: its agent is still running (pid {pid})\n"
                            "hint: merge or save that work first, or pass --force to discard it\n")
    (tmp_path / "go").touch()
    wait = project.agent("wait", "1", "--timeout", "30")
    assert (tmp_path / "done-1").exists()  # wait returned only after the script's commit
    assert wait.stdout.startswith("task 1: exited ")
    assert project.git("log", "-1", "--format=%s", "task-1") == "late work"
    assert project.agent("clean", "1").returncode == 1  # its commit is not merged: kept


def test_background_child_keeps_the_agent_running(project: Project, tmp_path: Path) -> None:
    agent = write_script(tmp_path / "forks.sh", f"""
        (i=0; while [ ! -e {tmp_path}/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
         echo later > later.txt; git add later.txt; git commit -q -m later;
         touch {tmp_path}/child-done) &
        exit 0
    """)
    project.ok("spawn", "1", "--prompt", "p", "--agent", str(agent))
    time.sleep(0.5)
    assert _rows(project)["1"]["state"] == "running"
    assert project.agent("clean", "1").returncode == 1
    (tmp_path / "go").touch()
    assert project.ok("wait", "1", "--timeout", "30").stdout == "task 1: exited 0\n"
    assert (tmp_path / "child-done").exists()
    assert project.git("log", "-1", "--format=%s", "task-1") == "later"


def test_clean_force_stops_the_whole_group_first(project: Project, tmp_path: Path) -> None:
    project.ok("spawn", "1", "--prompt", "p", "--agent", f"sh {stubborn_agent(tmp_path)}; true")
    _wait_for(tmp_path / "ready-1")
    pid = _rows(project)["1"]["pid"]
    os.killpg(pid, signal.SIGTERM)  # the supervisor records 143; the script lives on
    time.sleep(0.3)
    # no SIGTERM will end it: clean --force waits out the grace period, then kills
    project.ok("clean", "--force", "1", timeout=60)
    assert _group_gone(pid)
    assert not (project.worktrees / "task-1").exists()


def test_detached_head_commits_are_shown_and_kept(project: Project, tmp_path: Path) -> None:
    agent = write_script(tmp_path / "detach.sh", """
        git checkout -q --detach
        echo detached > d.txt && git add d.txt && git commit -q -m "on a detached HEAD"
    """)
    project.ok("spawn", "1", "--prompt", "p", "--agent", str(agent))
    project.ok("wait", "1")
    wt = project.worktrees / "task-1"
    commit = project.git("rev-parse", "HEAD", cwd=wt)
    row = _rows(project)["1"]
    assert row["state"] == "exited 0, detached HEAD with 1 commit not on any branch"
    assert row["detached_commits"] == 1
    human = project.ok("status").stdout
    assert "detached HEAD with 1 commit not on any branch" in human
    clean = project.agent("clean", "1")
    assert clean.returncode == 1
    assert clean.stderr == ("error: not removing task 1: its worktree has a detached HEAD with 1 commit(s)"
                            " that no branch contains\n"
                            "hint: merge or save that work first, or pass --force to discard it\n")
    assert project.agent("clean", "--merged").returncode == 0  # not merged: not even considered
    assert project.git("rev-parse", "HEAD", cwd=wt) == commit
    project.git("branch", "saved", commit)
    project.ok("clean", "1")
    assert project.git("log", "-1", "--format=%s", "saved") == "on a detached HEAD"


def test_detached_head_commits_in_a_pool_slot_are_kept(project: Project, tmp_path: Path) -> None:
    agent = write_script(tmp_path / "detach.sh", """
        git checkout -q --detach
        echo detached > d.txt && git add d.txt && git commit -q -m "on a detached HEAD"
    """)
    project.ok("spawn", "1", "--pool", "--prompt", "p", "--agent", str(agent))
    project.ok("wait", "1")
    clean = project.agent("clean", "1")
    assert clean.returncode == 1
    assert "its slot pool-1 has 1 commit(s) that no branch contains" in clean.stderr
    assert project.git("log", "-1", "--format=%s", "HEAD", cwd=project.worktrees / "pool-1") == "on a detached HEAD"


def _trace_calls(trace: Path) -> list[str]:
    return [line for line in trace.read_text().splitlines() if line.startswith("trace: git-agents:")]


def test_run_killed_before_it_recorded_the_pid_resumes_without_a_second_copy(project: Project,
                                                                            tmp_path: Path) -> None:
    runs = tmp_path / "runs.log"
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "$GIT_AGENT_TASK" >> {runs}
        while [ ! -e {tmp_path}/go ]; do sleep 0.05; done
        echo "$GIT_AGENT_TASK" > "$GIT_AGENT_TASK.txt" && git add . && git commit -q -m "$GIT_AGENT_TASK"
    """)
    taskfile = tmp_path / "tasks.toml"
    taskfile.write_text(f'agent = "{agent}"\n\n[[task]]\nid = "a"\nprompt = "do a"\n')
    # find the git call that records the pid in a dry run of the same file, in another repository
    other = Project(tmp_path / "other")
    other.path.mkdir()
    other.git("init", "-q")
    other.commit_file("README", "readme\n", "initial")
    (tmp_path / "go").touch()
    trace = tmp_path / "trace"
    other.ok("run", str(taskfile), env={"GIT_AGENTS_TRACE": str(trace)})
    calls = _trace_calls(trace)
    moment = next(i for i, line in enumerate(calls, 1) if "--replace-all agent-task.a.pid " in line)
    (tmp_path / "go").unlink()
    runs.unlink()

    killed = project.agent("run", str(taskfile), env={"GIT_AGENTS_TEST_KILL_AFTER": str(moment)})
    assert killed.returncode == -signal.SIGKILL or killed.returncode == 137
    _wait_for(runs)
    row = _rows(project)["a"]
    assert (row["agent"], row["pid"]) == ("running", None)  # found by its launch id, not "not started"
    proc = subprocess.Popen(["git", "agent-run", "--resume", str(taskfile)], cwd=project.path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    assert runs.read_text() == "a\n"  # not started a second time
    (tmp_path / "go").touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert runs.read_text() == "a\n"
    assert project.git("log", "-1", "--format=%s", "main^2") == "a"
    assert "a.txt" in project.git("ls-tree", "--name-only", "main").split()


def test_exit_record_of_another_launch_is_not_this_ones(project: Project, tmp_path: Path) -> None:
    project.ok("spawn", "1", "--prompt", "p", "--agent", "true")
    project.ok("wait", "1")
    exit_file = project.path / ".git" / "agents" / "tasks" / "1" / "exit"
    code, finished, launch = exit_file.read_text().split()
    assert code == "0" and launch == project.git("config", "agent-task.1.launch")
    exit_file.write_text(f"0 {finished} 0123456789abcdef\n")  # a record left by some other launch
    row = _rows(project)["1"]
    assert row["agent"] == "died"
