"""git agent-run: a task file run end to end with scripted agents, interruption and resume."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from git_agents.core.repo import Repo
from git_agents.run.orchestrator import NEW, Job, Progress
from git_agents.run.taskfile import TaskSpec

from .conftest import Project, write_script


def _status(project: Project) -> dict[str, dict]:
    return {t["id"]: t for t in json.loads(project.ok("status", "--json").stdout)["tasks"]}


def _max_overlap(times: Path) -> int:
    events = []
    for line in times.read_text().splitlines():
        kind, _task, stamp = line.split()
        events.append((float(stamp), 1 if kind == "start" else -1))
    alive = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        alive += delta
        peak = max(peak, alive)
    return peak


def test_six_tasks_two_at_a_time(project: Project, tmp_path: Path) -> None:
    times = tmp_path / "times"
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "start $GIT_AGENT_TASK $(date +%s.%N)" >> {times}
        sleep 0.3
        rc=0
        case "$GIT_AGENT_TASK" in
          1|6) echo "work $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt" ;;
          2) echo "cannot do it"; rc=3 ;;
          3) sed -i 's/line 2/line two (task 3)/' shared.txt ;;
          4) sed -i 's/line 2/line II (task 4)/' shared.txt ;;
          5) echo "half done" > wip.txt ;;
        esac
        if [ "$GIT_AGENT_TASK" != 5 ] && [ $rc = 0 ]; then
          git add -A && git commit -q -m "task $GIT_AGENT_TASK" && echo "committed task $GIT_AGENT_TASK"
        fi
        echo "end $GIT_AGENT_TASK $(date +%s.%N)" >> {times}
        exit $rc
    """)
    tasks = "\n".join(f'[[task]]\nid = "{n}"\ntitle = "task number {n}"\nprompt = "do {n}"\n' for n in range(1, 7))
    (tmp_path / "tasks.toml").write_text(f'agent = "{agent}"\njobs = 2\n\n{tasks}')
    base = project.git("rev-parse", "main")

    proc = project.agent("run", str(tmp_path / "tasks.toml"))

    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    shas = project.git("log", "--first-parent", "--format=%h", "--abbrev=12", f"{base}..main").split()
    assert len(shas) == 3
    report = proc.stdout[proc.stdout.index("\nReport:\n"):]
    assert report == (
        "\nReport:\n"
        f"  1  merged ({shas[2]})\n"
        "  2  agent exited 3; kept task-2 in ../project-worktrees/task-2\n"
        f"  3  merged ({shas[1]})\n"
        "  4  conflict in shared.txt; kept task-4 in ../project-worktrees/task-4\n"
        "  5  exited 0, work not committed; kept task-5 in ../project-worktrees/task-5\n"
        f"  6  merged ({shas[0]})\n"
        "3 merged, 3 not merged\n")
    # the progress lines (not a terminal): one per change of state
    progress = proc.stdout[:proc.stdout.index("\nReport:\n")].splitlines()
    assert [line for line in progress if line.startswith("task 2: exited")] == \
        [line for line in progress if line.startswith("task 2: exited 3 after 0:0")]
    # a slow machine may take a second or more to start the agent: the elapsed time is not the point
    exits = [line for line in progress if line.startswith(("task 2: exited", "task 6: exited"))]
    assert [re.sub(r"after 0:0\d", "after 0:0N", line) for line in exits] == [
        "task 2: exited 3 after 0:0N: cannot do it", "task 6: exited 0 after 0:0N: committed task 6"]
    assert [line for line in progress if line.startswith("task 1: running")] == ["task 1: running"]

    assert project.git("log", "--first-parent", "--format=%s", f"{base}..main").splitlines() == [
        "feat: Task 6 - task number 6", "feat: Task 3 - task number 3", "feat: Task 1 - task number 1"]
    assert (project.path / "shared.txt").read_text() == "line 1\nline two (task 3)\nline 3\n"
    assert sorted(p.name for p in project.worktrees.iterdir()) == ["task-2", "task-4", "task-5"]
    assert project.git("branch", "--format=%(refname:short)").split() == ["main", "task-2", "task-4", "task-5"]
    rows = _status(project)
    assert {k: r["state"] for k, r in rows.items()} == {
        "2": "exited 3", "4": "conflict", "5": "exited 0, work not committed"}
    assert (project.worktrees / "task-5" / "wip.txt").read_text() == "half done\n"
    wait = project.agent("wait", "5")
    assert (wait.returncode, wait.stdout) == (1, "task 5: exited 0, work not committed\n")
    assert _max_overlap(times) == 2


def _runs_taskfile(tmp_path: Path) -> Path:
    runs = tmp_path / "runs.log"
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "$GIT_AGENT_TASK" >> {runs}
        grep SigBlk /proc/self/status >> {tmp_path / "sigblk"}  # what the agent's own children get
        if [ "$GIT_AGENT_TASK" = b ] && [ ! -e {tmp_path / "go"} ]; then sleep 30; fi
        echo "$GIT_AGENT_TASK" > "$GIT_AGENT_TASK.txt" && git add . && git commit -q -m "$GIT_AGENT_TASK"
    """)
    tasks = "".join(f'\n[[task]]\nid = "{n}"\nprompt = "do {n}"\n' for n in "abc")
    path = tmp_path / "tasks.toml"
    path.write_text(f'agent = "{agent}"\njobs = 1\n{tasks}')
    return path


def test_interrupted_run_resumes_without_rerunning_finished_tasks(project: Project, tmp_path: Path) -> None:
    taskfile = _runs_taskfile(tmp_path)
    runs = tmp_path / "runs.log"
    proc = subprocess.Popen(["git-agent-run", str(taskfile)], cwd=project.path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 30
    while not (runs.exists() and runs.read_text() == "a\nb\n") and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 130, err
    assert out.endswith("Interrupted: stopped the agents of task(s) b; every worktree and branch is kept.\n"
                        f"Resume with: git agent-run --resume {taskfile}\n")
    rows = _status(project)
    assert {k: (r["state"], r["agent"]) for k, r in rows.items()} == {
        "a": ("exited 0", "exited"), "b": ("interrupted", "exited"), "c": ("not started", "not started")}
    assert project.git("rev-list", "--count", "main") == "1"

    again = project.agent("run", str(taskfile))
    assert again.returncode == 128
    assert again.stderr == ("fatal: task 'a' already exists\n"
                            f"hint: continue the earlier run with: git agent-run --resume {taskfile}\n"
                            "hint: or remove the task first with: git agent-clean a\n")

    dry = project.ok("run", "--resume", "--dry-run", str(taskfile))
    assert dry.stdout.splitlines() == [
        f"Run 3 task(s) from {taskfile} on main, 1 at a time; then merge the successful ones in task order.",
        "  a  finished: merge only   do a",
        "  b  run again              do b", f"     agent: {tmp_path / 'agent.sh'}",
        "  c  prepare and run        do c", f"     agent: {tmp_path / 'agent.sh'}"]

    (tmp_path / "go").touch()
    resumed = project.ok("run", "--resume", str(taskfile))
    assert resumed.stdout.splitlines()[-1] == "3 merged, 0 not merged"
    assert runs.read_text() == "a\nb\nb\nc\n"
    # the run blocks SIGINT while it works; its agents must not inherit that (dash as /bin/sh
    # unblocks it anyway; where /bin/sh is bash, only agent._sigint_unblocked does)
    blocked = (tmp_path / "sigblk").read_text()
    assert blocked.split() == ["SigBlk:", "0000000000000000"] * 4, blocked
    assert project.git("log", "--first-parent", "--format=%s", "main").splitlines() == [
        "feat: Task c - do c", "feat: Task b - do b", "feat: Task a - do a", "initial"]
    assert project.git("branch", "--format=%(refname:short)") == "main"

    # everything merged: resuming once more runs nothing
    final = project.ok("run", "--resume", str(taskfile))
    assert runs.read_text() == "a\nb\nb\nc\n"
    def short(rev: str) -> str:
        return project.git("rev-parse", "--short=12", rev)

    assert final.stdout.splitlines()[-5:] == ["Report:", f"  a  merged ({short('main~2')}, earlier run)",
                                              f"  b  merged ({short('main~1')}, earlier run)",
                                              f"  c  merged ({short('main')}, earlier run)",
                                              "3 merged, 0 not merged"]


def test_setup_failure_fails_the_task_and_the_agent_never_starts(project: Project, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "$GIT_AGENT_TASK" >> {ran}
        echo x > "$GIT_AGENT_TASK.txt" && git add . && git commit -q -m "$GIT_AGENT_TASK"
    """)
    project.git("config", "agent.setup",
                'echo "installing for $GIT_AGENT_TASK"; '
                'case "$GIT_AGENT_TASK" in 2*) echo "no deps" >&2; exit 2;; esac')
    (tmp_path / "tasks.toml").write_text(
        f'agent = "{agent}"\njobs = 2\n[[task]]\nid = "1"\nprompt = "one"\n[[task]]\nid = "2"\nprompt = "two"\n')

    proc = project.agent("run", str(tmp_path / "tasks.toml"))

    assert proc.returncode == 1
    setup = "setup failed (exit 2): " + project.git("config", "agent.setup")
    assert f"error: task 2: {setup}; the agent was not started\n  | installing for 2\n  | no deps\n" in proc.stdout
    assert proc.stdout.endswith(f"  2  failed: {setup}; kept task-2 in ../project-worktrees/task-2\n"
                                "1 merged, 1 not merged\n")
    assert ran.read_text() == "1\n"
    assert _status(project)["2"]["state"] == f"failed: {setup}"
    log = project.ok("logs", "2").stdout
    assert log == (f"git-agents: setup: {project.git('config', 'agent.setup')}\ninstalling for 2\nno deps\n"
                   "git-agents: setup failed (exit 2); the agent was not started\n")

    spawn = project.agent("spawn", "20", "--prompt", "twenty", "--agent", str(agent))
    assert (spawn.returncode, spawn.stdout) == (1, "")
    assert spawn.stderr == (f"error: task 20: {setup}; the agent was not started\n  | installing for 20\n  | no deps\n"
                            "hint: the worktree is kept at ../project-worktrees/task-20; fix the setup and run the"
                            " agent there, or remove the task with: git agent-clean 20\n")
    assert ran.read_text() == "1\n"


def test_taskfile_errors_are_reported_with_the_file(project: Project, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    for text, message in [
        ('jobs = 0\n[[task]]\nid = "1"\nprompt = "x"\n', "'jobs' must be at least 1"),
        ('agent = "true"\n', "no tasks: add at least one [[task]] table with an id and a prompt"),
        ('[[task]]\nid = "1"\n', "task 1: give exactly one of 'prompt' and 'prompt_file'"),
        ('[[task]]\nid = "a b"\nprompt = "x"\n', "task 1: invalid id 'a b': a task id starts with a letter or digit"
                                                  " and holds only letters, digits, '.', '_' and '-'"),
        ('colour = 1\n', "unknown setting 'colour' (known: agent, base, check, isolation, jobs, merge, pool, resolve,"
                          " sparse, style, tmux)"),
        ('style = "fast"\n[[task]]\nid = "1"\nprompt = "x"\n', "'style' must be merge, squash or rebase, not 'fast'"),
        ('[[task]]\nid = "1"\nprompt = "x"\n[[task]]\nid = "1"\nprompt = "y"\n', "task id '1' is used twice"),
        ('merge = false\ncheck = "true"\n[[task]]\nid = "1"\nprompt = "x"\n',
         "'check' gates the merges, and merge = false makes none (drop check, or check later with"
         " git agent-merge --check)"),
        ('[[task]]\nid = "1"\nprompt = "x"\nafter = ["3", "9"]\n[[task]]\nid = "3"\nprompt = "y"\n',
         "task 1: 'after' names unknown task(s): 9"),
        ('[[task]]\nid = "1"\nprompt = "x"\nafter = ["3"]\n[[task]]\nid = "2"\nprompt = "y"\nafter = ["1"]\n'
         '[[task]]\nid = "3"\nprompt = "z"\nafter = [2]\n', "'after' makes a cycle: 1 -> 3 -> 2 -> 1"),
        ('[[task]]\nid = "1"\nprompt = "x"\nafter = "2"\n',
         "task 1: 'after' must be a list of task ids, e.g. after = [\"48\", \"50\"]"),
        ('merge = false\n[[task]]\nid = "1"\nprompt = "x"\n[[task]]\nid = "2"\nprompt = "x"\nafter = ["1"]\n',
         "'after' waits for tasks to merge, and merge = false merges none"),
        ('resolve = 3\n[[task]]\nid = "1"\nprompt = "x"\n',
         "'resolve' must be true, false or an agent (a preset or a command)"),
    ]:
        bad.write_text(text)
        proc = project.agent("run", str(bad))
        assert (proc.returncode, proc.stderr) == (
            128, f"fatal: {bad}: {message}\n"
                 "hint: the format is in git help agent-run (DESCRIPTION) and the README\n"), text
    bad.write_text('[[task]]\nid = "1"\nprompt = "x"\n')
    proc = project.agent("run", str(bad))
    assert proc.stderr == ("fatal: task 1 has no agent\n"
                           "hint: set agent in the task file (globally or per task), or git config agent.command\n")
    assert project.git("worktree", "list", "--porcelain").count("worktree ") == 1


def test_auto_commit_commits_left_over_work_with_the_title(project: Project, tmp_path: Path) -> None:
    agent = write_script(tmp_path / "agent.sh", 'echo "draft" > notes.txt\n')
    (tmp_path / "tasks.toml").write_text(f'agent = "{agent}"\n[[task]]\nid = "7"\ntitle = "write notes"\n'
                                         'prompt = "x"\n')
    project.git("config", "agent.autoCommit", "true")
    proc = project.ok("run", str(tmp_path / "tasks.toml"))
    assert proc.stdout.splitlines()[-1] == "1 merged, 0 not merged"
    assert project.git("log", "--format=%s", "-2", "main^2") == "write notes\ninitial"
    assert (project.path / "notes.txt").read_text() == "draft\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_redrawn_in_place_on_a_terminal(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project.path)
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setenv("LINES", "24")
    repo = Repo.discover()
    jobs = [Job(TaskSpec("1", "one", "x", ""), "agent", NEW), Job(TaskSpec("22", "two", "y", ""), "agent", NEW)]
    os.makedirs(repo.task_dir("1"))
    with open(os.path.join(repo.task_dir("1"), "agent.log"), "w") as fh:
        fh.write("compiling\n\x1b[1mtesting everything in the whole project\x1b[0m\n\n")
    screen = _Terminal()
    progress = Progress(repo, jobs, screen)
    progress.update()
    jobs[0].state, jobs[0].started = "running", time.monotonic()
    progress.update()
    progress.update()  # nothing changed: nothing written
    progress.message("a message\n")
    progress.update()
    running = "1   " + "running".ljust(28) + "    0:00  " + "testing everythin"  # cut at 59 columns
    block = f"\x1b[2K{running}\n\x1b[2K22  queued\n"
    assert screen.getvalue() == (
        "\x1b[2K1   queued\n\x1b[2K22  queued\n"
        + "\x1b[F\x1b[F" + block
        + "a message\n"
        + block)


def test_nothing_is_created_when_a_branch_is_in_the_way(project: Project, tmp_path: Path) -> None:
    (tmp_path / "tasks.toml").write_text('agent = "true"\n[[task]]\nid = "1"\nprompt = "x"\n'
                                         '[[task]]\nid = "2"\nprompt = "y"\n')
    project.git("branch", "task-2")
    before = project.snapshot()
    proc = project.agent("run", str(tmp_path / "tasks.toml"))
    assert (proc.returncode, proc.stdout) == (128, "")
    assert proc.stderr == ("fatal: a branch named 'task-2' already exists\n"
                           "hint: delete or rename it (git branch -m task-2 <new>), or pick another id\n")
    assert project.snapshot() == before


def test_pool_true_takes_worktrees_from_the_pool_and_gives_them_back(project: Project, tmp_path: Path) -> None:
    from .test_pool import assert_free_at, pool_json

    project.ok("pool", "create", "2")
    where = tmp_path / "where"
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "$GIT_AGENT_TASK $(pwd)" >> {where}
        echo "$GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt" && git add . && git commit -q -m "$GIT_AGENT_TASK"
    """)
    tasks = "".join(f'\n[[task]]\nid = "{n}"\nprompt = "do {n}"\n' for n in (1, 2, 3))
    (tmp_path / "tasks.toml").write_text(f'agent = "{agent}"\njobs = 2\npool = true\n{tasks}')
    base = project.git("rev-parse", "main")

    dry = project.ok("run", "--dry-run", str(tmp_path / "tasks.toml"))
    assert dry.stdout.splitlines()[1] == \
        "Take each new task's worktree from the pool (git agent-pool), as spawn --pool does."
    proc = project.ok("run", str(tmp_path / "tasks.toml"))

    shas = project.git("log", "--first-parent", "--format=%h", "--abbrev=12", f"{base}..main").split()
    assert proc.stdout.endswith(f"\nReport:\n  1  merged ({shas[2]})\n  2  merged ({shas[1]})\n"
                                f"  3  merged ({shas[0]})\n3 merged, 0 not merged\n")
    assert project.git("log", "--first-parent", "--format=%s", f"{base}..main").splitlines() == [
        "feat: Task 3 - do 3", "feat: Task 2 - do 2", "feat: Task 1 - do 1"]
    assert sorted(p.name for p in project.path.glob("file-*.txt")) == ["file-1.txt", "file-2.txt", "file-3.txt"]
    # each task ran in a slot of its own: the two there, and one the pool grew by (agent.poolMax 0)
    ran = dict(line.split() for line in where.read_text().splitlines())
    assert {k: os.path.basename(v) for k, v in ran.items()} == {"1": "pool-1", "2": "pool-2", "3": "pool-3"}
    new_base = project.git("rev-parse", "main")
    assert sorted(pool_json(project)) == ["pool-1", "pool-2", "pool-3"]
    for name in ("pool-1", "pool-2", "pool-3"):
        assert_free_at(project, project.worktrees / name, new_base)
    assert project.git("branch", "--format=%(refname:short)") == "main"
    assert project.git("config", "--get-regexp", "^agent-task\\.", check=False) == ""
    assert project.git("for-each-ref", "refs/agents/pool/") == ""


def test_check_gates_each_merged_result_as_merge_check_does(project: Project, tmp_path: Path) -> None:
    checked = tmp_path / "checked"
    agent = write_script(tmp_path / "agent.sh", """
        echo "$GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt"
        if [ "$GIT_AGENT_TASK" = 2 ]; then echo oops > broken.txt; fi
        git add . && git commit -q -m "$GIT_AGENT_TASK"
    """)
    check = (f"echo $(ls file-*.txt broken.txt 2>/dev/null) >> {checked}; "
             "if [ -e broken.txt ]; then echo 'checking...'; echo 'broken.txt must not exist'; exit 1; fi")
    tasks = "".join(f'\n[[task]]\nid = "{n}"\nprompt = "do {n}"\n' for n in (1, 2, 3))
    (tmp_path / "tasks.toml").write_text(f'agent = "{agent}"\njobs = 2\ncheck = """{check}"""\n{tasks}')
    base = project.git("rev-parse", "main")

    dry = project.ok("run", "--dry-run", str(tmp_path / "tasks.toml"))
    assert dry.stdout.splitlines()[1] == f"Merge only the results that pass the check (in a scratch worktree): {check}"
    proc = project.agent("run", str(tmp_path / "tasks.toml"))

    assert (proc.returncode, proc.stderr) == (1, "")
    shas = project.git("log", "--first-parent", "--format=%h", "--abbrev=12", f"{base}..main").split()
    assert proc.stdout.endswith(
        "Check failed for task 2 (not merged; branch and worktree kept):\n"
        "    checking...\n    broken.txt must not exist\n"
        "\nReport:\n"
        f"  1  merged ({shas[1]})\n"
        "  2  check failed on the merged result: broken.txt must not exist; "
        "kept task-2 in ../project-worktrees/task-2\n"
        f"  3  merged ({shas[0]})\n"
        "2 merged, 1 not merged\n")
    # the check ran on each merged result in turn (task 3's on top of task 1's, without task 2's)
    assert checked.read_text() == "file-1.txt\nbroken.txt file-1.txt file-2.txt\nfile-1.txt file-3.txt\n"
    assert project.git("log", "--first-parent", "--format=%s", f"{base}..main").splitlines() == [
        "feat: Task 3 - do 3", "feat: Task 1 - do 1"]
    assert not (project.path / "broken.txt").exists()
    rows = _status(project)
    assert {k: r["state"] for k, r in rows.items()} == {"2": "check-failed"}
    assert project.git("config", "agent-task.2.reason") == "checking...\nbroken.txt must not exist"
    assert project.git("branch", "--format=%(refname:short)").split() == ["main", "task-2"]
    assert (project.worktrees / "task-2" / "broken.txt").read_text() == "oops\n"
    assert not (project.path / ".git" / "agents" / "check-worktree").exists()


def test_pool_max_full_pool_fails_the_task_and_resume_runs_it(project: Project, tmp_path: Path) -> None:
    project.ok("pool", "create", "2")
    project.git("config", "agent.poolMax", "2")
    agent = write_script(tmp_path / "agent.sh", """
        echo "$GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt" && git add . && git commit -q -m "$GIT_AGENT_TASK"
    """)
    tasks = "".join(f'\n[[task]]\nid = "{n}"\nprompt = "do {n}"\n' for n in (1, 2, 3))
    (tmp_path / "tasks.toml").write_text(f'agent = "{agent}"\njobs = 2\npool = true\n{tasks}')

    proc = project.agent("run", str(tmp_path / "tasks.toml"))

    assert (proc.returncode, proc.stderr) == (1, "")
    assert proc.stdout.endswith("  3  failed: pool exhausted: all 2 slot(s) are claimed\n2 merged, 1 not merged\n")
    assert "task 3: failed: pool exhausted\n" in proc.stdout
    assert project.git("config", "--get-regexp", "^agent-task\\.", check=False) == ""  # nothing recorded for 3
    resumed = project.ok("run", "--resume", str(tmp_path / "tasks.toml"))
    assert resumed.stdout.splitlines()[-2:] == [
        f"  3  merged ({project.git('rev-parse', '--short=12', 'main')})", "3 merged, 0 not merged"]
    assert sorted(p.name for p in project.path.glob("file-*.txt")) == ["file-1.txt", "file-2.txt", "file-3.txt"]
    assert [s["state"] for s in json.loads(project.ok("pool", "list", "--json").stdout)["slots"]] == ["free", "free"]


def test_ctrl_c_during_a_long_setup_stops_the_run_at_once(project: Project, tmp_path: Path) -> None:
    started = tmp_path / "setup-started"
    project.git("config", "agent.setup", f"touch {started}; sleep 60")
    (tmp_path / "tasks.toml").write_text('agent = "true"\n[[task]]\nid = "1"\nprompt = "one"\n')
    proc = subprocess.Popen(["git-agent-run", str(tmp_path / "tasks.toml")], cwd=project.path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists()
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground group
    out, err = proc.communicate(timeout=30)  # not after the setup's 60 s
    assert proc.returncode == 130, out + err
    # its setup was ended: the agent never started, nothing is lost
    assert _status(project)["1"]["state"] == f"failed: setup stopped by SIGINT: touch {started}; sleep 60"
    assert (project.worktrees / "task-1").is_dir()
