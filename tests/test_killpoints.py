"""spawn, pool claim --task, run, clean and stop killed before their n-th git call
(GIT_AGENTS_TEST_KILL_AFTER, as test_merge_queue does for merge): nothing reachable before is
unreachable after, no uncommitted file vanishes, and the repository stays usable.

Each command's git calls are counted in a traced run first; the kill points are then spread
evenly over them (deterministically, a handful per command: the suite runs on two cores).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Project, write_script

POINTS = 4  # kill points per command


def _new_project(root: Path) -> Project:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    project = Project(root / "project")
    project.path.mkdir()
    project.git("init", "-q")
    project.commit_file("shared.txt", "line 1\nline 2\n", "initial")
    (project.path / "notes.txt").write_text("the user's untracked notes\n")
    return project


def _reachable(project: Project) -> set[str]:
    """Every commit reachable from a ref or any worktree's HEAD."""
    return set(project.git("rev-list", "--all").split())


def _unsaved(project: Project) -> dict[Path, str]:
    """Every untracked or modified file in any worktree, with its content."""
    files = {}
    for line in project.git("worktree", "list", "--porcelain").splitlines():
        if not line.startswith("worktree "):
            continue
        wt = Path(line[len("worktree "):])
        if not wt.is_dir():
            continue
        for entry in project.git("status", "--porcelain", "--untracked-files=all", cwd=wt).splitlines():
            path = wt / entry[3:]
            if path.is_file():
                files[path] = path.read_text()
    return files


def _kill_points(count: int, points: int = POINTS) -> list[int]:
    """`points` moments spread evenly over a command's `count` git calls (1 = before the first)."""
    if count <= points:
        return list(range(1, count + 1))
    return sorted({round(1 + i * (count - 1) / (points - 1)) for i in range(points)})


def _count_calls(project: Project, verb: str, *args: str, trace: Path) -> int:
    project.agent(verb, *args, env={"GIT_AGENTS_TRACE": str(trace)})
    return sum(1 for line in trace.read_text().splitlines() if line.startswith("trace: git-agents:"))


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if fields[2] == str(pid) and fields[0] not in "ZX":
                return True
    return False


def _pids(project: Project) -> list[int]:
    out = project.git("config", "--get-regexp", r"^agent-task\..*\.pid$", check=False)
    return [int(line.split()[1]) for line in out.splitlines() if line.split()[1].isdigit()]


def _stop_leftovers(project: Project) -> None:
    """Agents a killed command left running would outlive the test: end them."""
    for pid in _pids(project):
        if _group_alive(pid):
            os.killpg(pid, signal.SIGKILL)


def _wait_for_orphaned_git(under: Path) -> None:
    """git processes a killed command started run on to their end (a kill stops only the command):
    with spawn's side-by-side checkouts, others may be half-way when one thread's call is the
    kill point. Wait for them, as a user's next command would find their work done or not begun."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        busy = False
        for name in os.listdir("/proc"):
            try:
                if name.isdigit() and Path(f"/proc/{name}/comm").read_text().strip() == "git" and \
                        os.readlink(f"/proc/{name}/cwd").startswith(str(under)):
                    busy = True
                    break
            except OSError:
                continue
        if not busy:
            return
        time.sleep(0.05)


def _loop(tmp_path: Path, setup: Callable[[Project], None], verb: str, args: list[str],
          recover: Callable[[Project, int], None], points: int = POINTS) -> None:
    probe = _new_project(tmp_path / "probe")
    setup(probe)
    count = _count_calls(probe, verb, *args, trace=tmp_path / "trace")
    _stop_leftovers(probe)
    assert count >= 2
    for moment in _kill_points(count, points):
        project = _new_project(tmp_path / f"k{moment}")
        setup(project)
        before, unsaved = _reachable(project), _unsaved(project)
        killed = project.agent(verb, *args, env={"GIT_AGENTS_TEST_KILL_AFTER": str(moment)})
        _wait_for_orphaned_git(project.path.parent)
        assert killed.returncode in (137, -9, 0, 1), (moment, killed.stderr)
        try:
            assert "Traceback" not in killed.stderr
            lost = before - _reachable(project)
            assert not lost, f"killed before git call {moment}: commits became unreachable: {lost}"
            for path, text in unsaved.items():
                assert path.is_file() and path.read_text() == text, f"killed before git call {moment}: {path} lost"
            assert project.agent("status").returncode == 0, moment
            project.git("status")
            recover(project, moment)
            assert not before - _reachable(project)
        finally:
            _stop_leftovers(project)


def _committing(project: Project) -> Path:
    return write_script(project.path.parent / "agent.sh", f"""
        echo "$GIT_AGENT_TASK" >> {project.path.parent / "runs.log"}
        echo "work $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt"
        git add "file-$GIT_AGENT_TASK.txt" && git commit -q -m "task $GIT_AGENT_TASK"
    """)


def test_spawn_killed_at_any_git_call(tmp_path: Path) -> None:
    def setup(project: Project) -> None:
        _committing(project)

    def recover(project: Project, moment: int) -> None:
        wait = project.agent("wait", "--all", "--timeout", "30")
        assert "timed out" not in wait.stdout, moment
        # work the agent did is not thrown away by a clean without --force
        clean = project.agent("clean", "--all")
        assert clean.returncode in (0, 1) and "Traceback" not in clean.stderr, (moment, clean.stderr)
        assert project.agent("clean", "--all", "--force").returncode == 0, moment
        project.ok("spawn", "2", "--prompt", "again", "--agent", str(project.path.parent / "agent.sh"))
        project.ok("wait", "2")

    _loop(tmp_path, setup, "spawn", ["1", "--prompt", "p", "--agent", "../agent.sh"], recover)


def test_spawn_of_many_ids_killed_at_any_git_call(tmp_path: Path) -> None:
    """Spawn makes its tasks side by side (issue 22): killed at any moment, what it made is seen by
    status and removed by clean, and the same ids can be spawned again."""
    def setup(project: Project) -> None:
        _committing(project)

    def recover(project: Project, moment: int) -> None:
        assert "timed out" not in project.agent("wait", "--all", "--timeout", "30").stdout, moment
        clean = project.agent("clean", "--all", "--force")
        assert clean.returncode == 0 and "Traceback" not in clean.stderr, (moment, clean.stderr)
        assert project.git("branch", "--list", "task-*") == "", moment
        agent = str(project.path.parent / "agent.sh")
        again = project.ok("spawn", "1", "2", "3", "--prompt", "again", "--agent", agent)
        assert [line.split()[2] for line in again.stdout.splitlines()] == ["1", "2", "3"], moment
        assert project.git("for-each-ref", "refs/agents/port-holds/") == "", moment
        assert len(project.git("for-each-ref", "refs/agents/ports/").splitlines()) == 3, moment
        project.ok("wait", "--all", "--timeout", "30")

    # more points: the steps done for all tasks at once (records, branches, leases) each get one
    _loop(tmp_path, setup, "spawn", ["1", "2", "3", "--prompt", "p", "--agent", "../agent.sh"], recover, points=9)


def test_pool_claim_task_killed_at_any_git_call(tmp_path: Path) -> None:
    def setup(project: Project) -> None:
        project.ok("pool", "create", "2")

    def recover(project: Project, moment: int) -> None:
        clean = project.agent("clean", "--all", "--force")
        assert clean.returncode == 0, (moment, clean.stderr)
        release = project.agent("pool", "release", "--stale")
        assert "Traceback" not in release.stderr
        path = project.ok("pool", "claim", "--task", "2", "--prompt", "again").stdout.strip()
        assert Path(path).is_dir()

    _loop(tmp_path, setup, "pool", ["claim", "--task", "1", "--prompt", "p"], recover)


def test_run_killed_at_any_git_call(tmp_path: Path) -> None:
    def setup(project: Project) -> None:
        agent = _committing(project)
        (project.path.parent / "tasks.toml").write_text(
            f'agent = "{agent}"\njobs = 2\n\n[[task]]\nid = "a"\nprompt = "a"\n\n[[task]]\nid = "b"\nprompt = "b"\n')

    def recover(project: Project, moment: int) -> None:
        taskfile = str(project.path.parent / "tasks.toml")
        deadline = time.monotonic() + 60
        while True:
            again = project.agent("run", "--resume", taskfile)
            if "earlier merge into 'main' was interrupted" in again.stderr + again.stdout:
                project.ok("merge", "--continue")
                continue
            break
        assert again.returncode == 0 or time.monotonic() > deadline, (moment, again.stdout, again.stderr)
        files = project.git("ls-tree", "--name-only", "main").split()
        assert {"file-a.txt", "file-b.txt"} <= set(files), (moment, again.stdout)
        runs = (project.path.parent / "runs.log").read_text().split()
        assert sorted(runs) == ["a", "b"], f"killed before git call {moment}: agents ran {runs}"

    _loop(tmp_path, setup, "run", ["../tasks.toml"], recover)


def _clean_setup(project: Project) -> None:
    project.ok("spawn", "1", "2", "3", "4", "--no-agent", "--prompt", "p")
    wts = project.worktrees
    project.commit_file("merged.txt", "1\n", cwd=wts / "task-1")
    project.ok("merge", "1")
    project.commit_file("unmerged.txt", "2\n", cwd=wts / "task-2")
    (wts / "task-3" / "wip.txt").write_text("uncommitted work\n")
    project.git("checkout", "-q", "--detach", cwd=wts / "task-4")
    project.commit_file("detached.txt", "4\n", cwd=wts / "task-4")


def test_clean_killed_at_any_git_call(tmp_path: Path) -> None:
    def recover(project: Project, moment: int) -> None:
        again = project.agent("clean", "--all")
        assert again.returncode == 1, (moment, again.stderr)
        assert sorted(line.split()[4] for line in again.stderr.splitlines() if line.startswith("error:")) == \
            ["2:", "3:", "4:"], (moment, again.stderr)
        assert "1" not in {line.split()[0] for line in project.ok("status").stdout.splitlines()[1:]}

    _loop(tmp_path, _clean_setup, "clean", ["--all"], recover)


def test_stop_killed_at_any_git_call(tmp_path: Path) -> None:
    def setup(project: Project) -> None:
        agent = write_script(project.path.parent / "slow.sh", f"""
            echo started > {project.path.parent / "started"}
            echo "half done" > wip.txt
            sleep 60
        """)
        project.ok("spawn", "1", "--prompt", "p", "--agent", str(agent))
        deadline = time.monotonic() + 30
        while not (project.path.parent / "started").exists() or not (project.worktrees / "task-1" / "wip.txt").exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)

    def recover(project: Project, moment: int) -> None:
        again = project.agent("stop", "1", "--timeout", "5")
        assert again.returncode in (0, 1), (moment, again.stderr)
        assert not any(_group_alive(pid) for pid in _pids(project))
        assert (project.worktrees / "task-1" / "wip.txt").read_text() == "half done\n"
        refused = project.agent("clean", "1")
        assert refused.returncode == 1 and "uncommitted or untracked work (wip.txt)" in refused.stderr
        project.ok("clean", "--force", "1")

    _loop(tmp_path, setup, "stop", ["1"], recover)


@pytest.mark.parametrize("n,expected", [(3, [1, 2, 3]), (10, [1, 4, 7, 10])])
def test_kill_points_are_spread_deterministically(n: int, expected: list[int]) -> None:
    assert _kill_points(n) == expected


def test_pool_claim_task_makes_claim_branch_and_port_hold_all_or_none(tmp_path: Path) -> None:
    """Killed before any git call of `pool claim --task`, the slot's claim, the task's branch and
    its port lease (or, before the lease, its hold) exist all together or not at all: they are
    made in one transaction, where the claim, the branch and the hold were three calls."""
    probe = _new_project(tmp_path / "probe")
    probe.ok("pool", "create", "1")
    count = _count_calls(probe, "pool", "claim", "--task", "1", "--prompt", "p", trace=tmp_path / "trace")
    seen = set()
    for moment in range(1, count + 1):
        project = _new_project(tmp_path / f"k{moment}")
        project.ok("pool", "create", "1")
        killed = project.agent("pool", "claim", "--task", "1", "--prompt", "p",
                               env={"GIT_AGENTS_TEST_KILL_AFTER": str(moment)})
        assert killed.returncode in (137, -9), (moment, killed.stderr)
        refs = set(project.git("for-each-ref", "--format=%(refname)").split())
        claimed = "refs/agents/pool/pool-1" in refs
        branched = "refs/heads/task-1" in refs
        held = "refs/agents/port-holds/1" in refs
        leased = any(ref.startswith("refs/agents/ports/") for ref in refs)
        assert claimed == branched == (held or leased), (moment, sorted(refs))
        assert not (held and leased), (moment, sorted(refs))
        seen.add(claimed)
    assert seen == {False, True}  # the kills fell before and after the claim
