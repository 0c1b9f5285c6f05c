"""git agent-run killed at any moment, then resumed: every task merges exactly once, none runs twice.

A run is killed (SIGKILL, as at a reboot) before its n-th git call (GIT_AGENTS_TEST_KILL_AFTER),
at points spread over the whole run and at each point of the landing of a prerequisite; then
`git agent-run --resume` alone, repeated until it exits 0, must finish the job: a prerequisite
merged by the killed run counts as merged, an interrupted merge journal is finished by the
resume itself (no `git agent-merge --continue` by hand), and a merged task is never run again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Project, write_script
from .test_killpoints import _new_project, _stop_leftovers

PLAN = 'jobs = 2\n\n[[task]]\nid = "1"\nprompt = "one"\n\n[[task]]\nid = "2"\nprompt = "two"\n\n' \
       '[[task]]\nid = "3"\nprompt = "three"\nafter = ["1"]\n'


def _setup(project: Project) -> Path:
    agent = write_script(project.path.parent / "agent.sh", f"""
        echo "$GIT_AGENT_TASK" >> {project.path.parent / "runs.log"}
        echo "work $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt"
        git add -A && git commit -q -m "task $GIT_AGENT_TASK"
    """)
    taskfile = project.path.parent / "tasks.toml"
    taskfile.write_text(f'agent = "{agent}"\n{PLAN}')
    return taskfile


def _calls(trace: Path) -> list[str]:
    return [line for line in trace.read_text().splitlines() if line.startswith("trace: git-agents:")]


MOMENTS = 15  # kill points: 6 spread over the whole run, 9 from just before task 1's landing on


_moments: list[int] = []  # computed once per test process, by the first test that needs them


def _kill_points(tmp_path: Path) -> list[int]:
    """Kill points: spread over the whole run, and every call from task 1's landing to the next agent's start."""
    if not _moments:
        probe = _new_project(tmp_path / "probe")
        taskfile = _setup(probe)
        trace = tmp_path / "trace"
        probe.ok("run", str(taskfile), env={"GIT_AGENTS_TRACE": str(trace)})
        _stop_leftovers(probe)
        calls = _calls(trace)
        landing = next(n for n, line in enumerate(calls, 1) if "read-tree -m -u" in line)
        spread = {round(1 + i * (len(calls) - 1) / 5) for i in range(6)}
        _moments.extend(sorted(spread | set(range(landing - 1, min(landing + 8, len(calls) + 1)))))
    return _moments


@pytest.mark.parametrize("n", range(MOMENTS))
def test_run_killed_anywhere_resumes_to_every_task_merged_once(tmp_path: Path, n: int) -> None:
    moments = _kill_points(tmp_path)
    if n >= len(moments):
        pytest.skip("fewer distinct kill points in this run")
    moment = moments[n]
    project = _new_project(tmp_path / f"k{moment}")
    taskfile = _setup(project)
    try:
        killed = project.agent("run", str(taskfile), env={"GIT_AGENTS_TEST_KILL_AFTER": str(moment)})
        assert killed.returncode in (137, -9, 0), (moment, killed.stdout, killed.stderr)
        outputs = []
        for _ in range(3):
            resumed = project.agent("run", "--resume", str(taskfile))
            outputs.append(resumed.stdout + resumed.stderr)
            if resumed.returncode == 0:
                break
        runs = sorted((project.path.parent / "runs.log").read_text().split())
        files = {n: project.git("show", f"main:file-{n}.txt", check=False) for n in "123"}
        merges = project.git("log", "--first-parent", "--format=%s", "main").splitlines()
        problem = []
        if resumed.returncode != 0 or resumed.stdout.splitlines()[-1] != "3 merged, 0 not merged":
            problem.append(f"resume ended with {resumed.returncode}")
        if runs != ["1", "2", "3"]:
            problem.append(f"agents ran {runs}")
        if files != {n: f"work {n}" for n in "123"}:
            problem.append(f"main's files {files}")
        if sorted(merges[:-1]) != ["feat: Task 1 - one", "feat: Task 2 - two", "feat: Task 3 - three"]:
            problem.append(f"main's merges {merges[:-1]}")
        assert not problem, f"killed before git call {moment}: {'; '.join(problem)}\n" + "\n".join(outputs)
    finally:
        _stop_leftovers(project)


@pytest.mark.parametrize("by_hand", [False, True], ids=["resume-finishes-it", "merge-continue-first"])
def test_resume_finishes_the_merge_journal_a_killed_run_left(tmp_path: Path, by_hand: bool) -> None:
    def setup(project: Project) -> Path:  # no task waits: all three merge at the end, in one landing
        taskfile = _setup(project)
        taskfile.write_text(taskfile.read_text().replace('after = ["1"]\n', ""))
        return taskfile

    trace = tmp_path / "trace"
    probe = _new_project(tmp_path / "probe")
    probe.ok("run", str(setup(probe)), env={"GIT_AGENTS_TRACE": str(trace)})
    _stop_leftovers(probe)
    project = _new_project(tmp_path / "p")
    taskfile = setup(project)
    landing = next(n for n, line in enumerate(_calls(trace), 1) if "read-tree -m -u" in line)
    killed = project.agent("run", str(taskfile), env={"GIT_AGENTS_TEST_KILL_AFTER": str(landing)})
    assert killed.returncode == 137, killed.stderr
    assert project.git("rev-list", "--count", "main") == "1"  # killed with the journal written, nothing landed
    try:
        if by_hand:
            assert project.ok("merge", "--continue").stdout.endswith(
                "Merge into 'main' completed: 3 merged, 0 not merged\n")
        dry = project.ok("run", "--resume", "--dry-run", str(taskfile)).stdout.splitlines()
        if by_hand:
            assert dry[0].startswith("Run 3 task(s) from ")
        else:
            assert dry[:2] == ["First finish the interrupted merge into 'main', as git agent-merge --continue would.",
                               f"Run 3 task(s) from {taskfile} on main, 2 at a time; then merge the successful "
                               "ones in task order."]
        resumed = project.agent("run", "--resume", str(taskfile))
        merges = project.git("log", "--first-parent", "--format=%h %s", "--abbrev=12", "main").splitlines()
        short = {line.split()[-1]: line.split()[0] for line in merges[:-1]}  # "feat: Task 1 - one": by title
        assert resumed.returncode == 0, resumed.stderr
        first = [] if by_hand else [f"Finished the interrupted merge into 'main': merged task 1 ({short['one']}), "
                                    f"merged task 2 ({short['two']}), merged task 3 ({short['three']})"]
        assert resumed.stdout.splitlines() == [
            *first, "task 1: merged", "task 2: merged", "task 3: merged", "", "Report:",
            f"  1  merged ({short['one']}, earlier run)", f"  2  merged ({short['two']}, earlier run)",
            f"  3  merged ({short['three']}, earlier run)", "3 merged, 0 not merged"]
        assert resumed.stderr == ""
        assert project.git("branch", "--format=%(refname:short)") == "main"  # every merged task cleaned up
        again = project.ok("run", "--resume", str(taskfile))
        assert again.stdout.splitlines()[-1] == "3 merged, 0 not merged"
        assert sorted((project.path.parent / "runs.log").read_text().split()) == ["1", "2", "3"]  # none ran twice
        assert [line.split(" ", 1)[1] for line in project.git("log", "--first-parent", "--format=%h %s",
                                                                "main").splitlines()] == [
            "feat: Task 3 - three", "feat: Task 2 - two", "feat: Task 1 - one", "initial"]
    finally:
        _stop_leftovers(project)


def test_resume_checks_and_merges_what_the_resolver_of_a_killed_run_left(tmp_path: Path) -> None:
    """A run (resolve = true) killed while its resolver works: --resume waits for it, checks it, merges."""
    import os
    import signal
    import subprocess
    import time

    project = _new_project(tmp_path / "p")
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "$GIT_AGENT_TASK" >> {project.path.parent / "runs.log"}
        sed -i "s/^line 2$/line 2 (task $GIT_AGENT_TASK)/" shared.txt
        git add -A && git commit -q -m "task $GIT_AGENT_TASK"
    """)
    resolver = write_script(tmp_path / "resolver.sh", f"""
        touch '{tmp_path}/started'
        while [ ! -e '{tmp_path}/go' ]; do sleep 0.05; done
        sed -i '/^<<<<<<< /d;/^=======$/d;/^>>>>>>> /d' shared.txt
        git add shared.txt && git commit -q --no-edit
    """)
    taskfile = tmp_path / "tasks.toml"
    taskfile.write_text(f'agent = "{agent}"\nresolve = "{resolver}"\n\n[[task]]\nid = "1"\nprompt = "one"\n\n'
                        '[[task]]\nid = "2"\nprompt = "two"\n')
    (project.path.parent / "runs.log").write_text("")
    run = subprocess.Popen(["git-agent-run", str(taskfile)], cwd=project.path, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline and run.poll() is None, "the resolver never started"
        time.sleep(0.05)
    os.kill(run.pid, signal.SIGKILL)  # the run only: its resolver goes on
    run.wait()
    try:
        resumed = subprocess.Popen(["git-agent-run", "--resume", str(taskfile)], cwd=project.path, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert resumed.stdout is not None
        first = resumed.stdout.readline()
        (tmp_path / "go").touch()
        rest, err = resumed.communicate(timeout=120)
        merges = project.git("log", "--first-parent", "--format=%h %s", "--abbrev=12", "main").splitlines()
        assert resumed.returncode == 0, first + rest + err
        assert first.startswith("Waiting for the resolver of task 2 (process ")
        assert first.endswith("), which the interrupted merge left running\n")
        assert (rest + err).splitlines() == [
            "The resolution of task 2 that an interrupted merge left is verified",
            "task 1: merged", "task 2: finished", "", "Report:",
            f"  1  merged ({merges[1].split()[0]}, earlier run)",
            f"  2  merged ({merges[0].split()[0]})",  # its branch holds the verified resolution: a plain merge
            "2 merged, 0 not merged"], first + rest + err
        assert [m.split(" ", 1)[1] for m in merges] == ["feat: Task 2 - two", "feat: Task 1 - one", "initial"]
        assert project.git("show", "main:shared.txt") == "line 1\nline 2 (task 2)\nline 2 (task 1)"
        assert (project.path.parent / "runs.log").read_text().split() == ["1", "2"]
    finally:
        _stop_leftovers(project)


@pytest.mark.parametrize("how", ["--no-ff", "--ff-only"])
@pytest.mark.parametrize("when", ["while-the-run-waits", "before-resume"])
def test_a_prerequisite_merged_by_hand_counts_as_merged(tmp_path: Path, when: str, how: str) -> None:
    """The user merges task 1 with plain git (`git merge --no-ff task-1`) while the run waits for
    its agent, or between a killed run and --resume: task 3 (after 1) starts, from main with 1 in it."""
    import os
    import signal
    import subprocess
    import time

    project = _new_project(tmp_path / "p")
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "$GIT_AGENT_TASK" >> {project.path.parent / "runs.log"}
        [ "$GIT_AGENT_TASK" = 3 ] && {{ [ -f file-1.txt ] || {{ echo "file-1.txt missing"; exit 9; }}; }}
        echo "work $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt"
        git add -A && git commit -q -m "task $GIT_AGENT_TASK"
        if [ "$GIT_AGENT_TASK" = 1 ]; then
          touch '{tmp_path}/committed'
          while [ ! -e '{tmp_path}/go' ]; do sleep 0.05; done
        fi
    """)
    taskfile = tmp_path / "tasks.toml"
    taskfile.write_text(f'agent = "{agent}"\n\n[[task]]\nid = "1"\nprompt = "one"\n\n'
                        '[[task]]\nid = "3"\nprompt = "three"\nafter = ["1"]\n')
    run = subprocess.Popen(["git-agent-run", str(taskfile)], cwd=project.path, text=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "committed").exists():
            assert time.monotonic() < deadline and run.poll() is None, "task 1's agent never committed"
            time.sleep(0.05)
        if when == "before-resume":
            os.kill(run.pid, signal.SIGKILL)  # the run only: task 1's agent ends on its own
            run.communicate()
        project.git("merge", how, "--quiet", "-m", "the user's merge of task 1", "task-1")
        by_hand = project.git("rev-parse", "--short=12", "main")
        (tmp_path / "go").touch()
        if when == "before-resume":
            while project.agent("status", "1").stdout.count("running"):
                time.sleep(0.05)
            run = subprocess.Popen(["git-agent-run", "--resume", str(taskfile)], cwd=project.path, text=True,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = run.communicate(timeout=120)
        merges = project.git("log", "--first-parent", "--format=%h %s", "--abbrev=12", "main").splitlines()
        assert run.returncode == 0, out + err
        assert err == ""
        assert out.splitlines()[-4:] == ["Report:", f"  1  merged outside the run ({by_hand})",
                                         f"  3  merged ({merges[0].split()[0]})", "2 merged, 0 not merged"], out + err
        by_user = "the user's merge of task 1" if how == "--no-ff" else "task 1"  # a fast-forward: task 1's commit
        assert [m.split(" ", 1)[1] for m in merges] == ["feat: Task 3 - three", by_user, "initial"]
        assert project.git("show", "main:file-3.txt") == "work 3"
        assert (project.path.parent / "runs.log").read_text().split() == ["1", "3"]
        assert project.git("branch", "--format=%(refname:short)") == "main"  # both cleaned up: merged
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
        (tmp_path / "go").touch()
        _stop_leftovers(project)
