"""Every refusal: a clear message, a non-zero exit, and nothing changed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .conftest import BIN, Project, run, write_script


@pytest.mark.parametrize("bad_id, problem", [
    ("../x", "starts with a letter or digit"),
    ("-rf", "usage: git agent-spawn"),  # read as an option: a usage error
    ("a b", "starts with a letter or digit"),
    ("", "cannot be empty"),
    ("x" * 101, "at most 100 characters"),
    ("a..b", "cannot contain '..'"),
    ("x.lock", "or '.lock'"),
])
def test_unsafe_task_ids_are_refused(project: Project, bad_id: str, problem: str) -> None:
    before = project.snapshot()
    proc = project.agent("spawn", bad_id, "--prompt", "x")
    assert proc.returncode in (128, 129)
    assert problem in proc.stderr
    assert proc.stdout == ""
    assert project.snapshot() == before
    assert not project.worktrees.exists()


def test_dash_id_after_double_dash_is_refused_as_an_id(project: Project) -> None:
    proc = project.agent("spawn", "--", "-rf")
    assert proc.returncode == 128
    assert proc.stderr.splitlines()[0] == (
        "fatal: invalid task id '-rf': a task id starts with a letter or digit and holds only letters, "
        "digits, '.', '_' and '-'")
    assert proc.stderr.splitlines()[1].startswith("hint: ")


def test_existing_id_is_refused(project: Project) -> None:
    project.ok("spawn", "7", "--prompt", "x")
    before = project.snapshot()
    proc = project.agent("spawn", "7", "--prompt", "again")
    assert proc.returncode == 128
    assert proc.stderr.splitlines() == ["fatal: task '7' already exists",
                                        "hint: pick another id, or remove it first with: git agent-clean 7"]
    assert project.snapshot() == before


def test_existing_branch_is_refused(project: Project) -> None:
    project.git("branch", "task-9")
    before = project.snapshot()
    proc = project.agent("spawn", "9")
    assert proc.returncode == 128
    assert proc.stderr.splitlines()[0] == "fatal: a branch named 'task-9' already exists"
    assert project.snapshot() == before


def test_existing_path_is_refused(project: Project) -> None:
    (project.worktrees / "task-9").mkdir(parents=True)
    (project.worktrees / "task-9" / "mine.txt").write_text("keep me")
    before = project.snapshot()
    proc = project.agent("spawn", "9")
    assert proc.returncode == 128
    assert proc.stderr.splitlines()[0] == f"fatal: '{project.worktrees / 'task-9'}' already exists"
    assert project.snapshot() == before
    assert (project.worktrees / "task-9" / "mine.txt").read_text() == "keep me"


def test_missing_base_is_refused(project: Project) -> None:
    before = project.snapshot()
    proc = project.agent("spawn", "9", "--base", "nope")
    assert proc.returncode == 128
    assert proc.stderr.splitlines()[0] == "fatal: base branch 'nope' does not exist"
    assert project.snapshot() == before


def test_outside_a_repository(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for verb in ("spawn", "status", "merge", "clean", "wait"):
        args = ["1"] if verb != "status" else []
        proc = run(["git", f"agent-{verb}", *args], empty)
        assert proc.returncode == 128, verb
        assert proc.stderr.startswith("fatal: not a git repository"), proc.stderr
    assert list(empty.iterdir()) == []


def _traced_calls(project: Project, tmp_path: Path, env: dict[str, str] | None = None) -> list[str]:
    """The git commands one `git agent-status` ran (the first word of each), from its trace."""
    trace = tmp_path / "trace"
    trace.unlink(missing_ok=True)
    proc = project.agent("status", env={"GIT_AGENTS_TRACE": str(trace), **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return [line.split(": git ", 1)[1].split(" ")[0] for line in trace.read_text().splitlines()]


def test_git_version_is_cached_per_executable_and_an_old_git_is_still_refused(project: Project,
                                                                               tmp_path: Path) -> None:
    """The first command asks `git version` and caches it (keyed on the executable's path, size,
    mtime and inode); the next asks nothing. Another git first on PATH, older than the floor, is a
    new key: asked, and refused with the same fatal, after the real git's version was cached."""
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "git-agents" / "git-version"
    assert _traced_calls(project, tmp_path)[0] == "version"
    assert len(cache.read_text().splitlines()) == 1
    assert "version" not in _traced_calls(project, tmp_path)

    real = shutil.which("git")
    (tmp_path / "old-git").mkdir()
    fake = write_script(tmp_path / "old-git" / "git",
                        f'[ "$1" = version ] && {{ echo "git version 2.30.1"; exit 0; }}; exec {real} "$@"')
    for _ in range(2):  # an old git is never cached
        # run directly: through git, git's own exec-path (with its git) would come first on PATH
        proc = run([str(BIN / "git-agent-status")], project.path, env={"PATH": f"{fake.parent}:{os.environ['PATH']}"})
        assert proc.returncode == 128
        assert proc.stderr == ("fatal: git-agents needs git 2.39 or later; this is git 2.30.1\n"
                               "hint: install git 2.39 or newer (https://git-scm.com/downloads), or put one first "
                               "on PATH\n")
    assert len(cache.read_text().splitlines()) == 1

    fake.write_text(fake.read_text().replace("2.30.1", "2.38.9") + "\n")  # the same path, changed: asked again
    proc = run([str(BIN / "git-agent-status")], project.path, env={"PATH": f"{fake.parent}:{os.environ['PATH']}"})
    assert proc.returncode == 128 and "this is git 2.38.9" in proc.stderr


@pytest.mark.parametrize("damage", ["garbage", "directory", "not a directory"])
def test_a_damaged_or_unwritable_version_cache_means_asking_git(project: Project, tmp_path: Path,
                                                                 damage: str) -> None:
    cache_home = tmp_path / "cache-home"
    cache = cache_home / "git-agents" / "git-version"
    env = {"XDG_CACHE_HOME": str(cache_home)}
    if damage == "not a directory":
        cache_home.write_text("a file where the cache directory would be\n")
    else:
        cache.parent.mkdir(parents=True)
        if damage == "garbage":
            cache.write_bytes(b"\xff\xfe garbage \0\n1 2 3 4 5 6 7\n\n")
        else:
            cache.mkdir()
    for _ in range(2):
        assert _traced_calls(project, tmp_path, env)[0] == "version"
        if damage == "garbage":
            break
    if damage == "garbage":  # replaced by a good entry, which the next command uses
        assert "version" not in _traced_calls(project, tmp_path, env)


def test_bare_repository(tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    run(["git", "init", "-q", "--bare", str(bare)], tmp_path, check=True)
    proc = run(["git", "agent-spawn", "1"], bare)
    assert proc.returncode == 128
    assert proc.stderr.splitlines()[0] == (
        f"fatal: '{bare}' is a bare repository; git-agents needs a work tree to merge into")
    assert not (tmp_path / "bare-worktrees").exists()


def test_merge_refuses_a_dirty_main_worktree(project: Project, committing_agent: Path) -> None:
    project.ok("spawn", "1", "--agent", str(committing_agent))
    project.ok("wait", "1")
    (project.path / "shared.txt").write_text("my own unsaved edit\n")
    before = project.snapshot()
    proc = project.agent("merge", "--all")
    assert proc.returncode == 128
    assert proc.stderr.splitlines() == [
        f"fatal: the worktree at {project.path} has uncommitted changes; merging would mix them in",
        "hint: commit or stash them first (git stash)"]
    assert project.snapshot() == before
    assert (project.path / "shared.txt").read_text() == "my own unsaved edit\n"


def test_merge_refuses_mid_merge(project: Project, committing_agent: Path) -> None:
    project.ok("spawn", "1", "--agent", str(committing_agent))
    project.ok("wait", "1")
    project.git("checkout", "-q", "-b", "side")
    project.commit_file("shared.txt", "side\n")
    project.git("checkout", "-q", "main")
    project.commit_file("shared.txt", "main\n")
    run(["git", "merge", "side"], project.path)  # conflicts, leaves MERGE_HEAD
    proc = project.agent("merge", "1")
    assert proc.returncode == 128
    assert proc.stderr.splitlines()[0] == f"fatal: the worktree at {project.path} is in the middle of a merge"


def test_agent_not_found_marks_task_failed_and_keeps_worktree(project: Project) -> None:
    proc = project.agent("spawn", "3", "--prompt", "x", "--agent", "no-such-agent-xyz --flag")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == "error: task 3: agent command not found: no-such-agent-xyz"
    assert (project.worktrees / "task-3" / "README").exists()
    row = json.loads(project.ok("status", "--json").stdout)["tasks"][0]
    assert row["state"] == "failed: agent command not found: no-such-agent-xyz"
    assert project.agent("wait", "3").returncode == 1


def test_agent_that_crashes_is_reported(project: Project, tmp_path: Path) -> None:
    crash = write_script(tmp_path / "crash.sh", "echo boom >&2\nexit 3\n")
    project.ok("spawn", "4", "--agent", str(crash))
    wait = project.agent("wait", "4", "--timeout", "30")
    assert (wait.returncode, wait.stdout) == (1, "task 4: exited 3\n")
    log = Path(project.git("rev-parse", "--git-common-dir"))
    assert "boom" in (project.path / log / "agents" / "tasks" / "4" / "agent.log").read_text()
    merge = project.agent("merge", "--all")
    assert merge.returncode == 1
    assert "warning: skipped task 4: its agent exited 3" in merge.stderr


def test_unknown_task(project: Project) -> None:
    for verb in ("status", "merge", "clean", "wait", "prompt"):
        proc = project.agent(verb, "99")
        assert proc.returncode == 128, verb
        assert proc.stderr.splitlines()[0] == "fatal: no such task: '99'"


def test_usage_errors_exit_129(project: Project) -> None:
    for verb, args in (("merge", []), ("clean", []), ("wait", []), ("spawn", ["1", "--bogus"])):
        proc = project.agent(verb, *args)
        assert proc.returncode == 129, (verb, proc.stderr)
        assert "usage: git agent-" in proc.stderr


def test_stale_config_lock_is_reported_with_what_to_do(project: Project) -> None:
    lock = project.path / ".git" / "config.lock"
    lock.write_text("")
    proc = project.agent("spawn", "1", timeout=60)
    assert proc.returncode == 128
    assert proc.stderr.splitlines() == [
        f"fatal: could not lock {project.path / '.git' / 'config'}: {lock} has existed for over 10 seconds",
        f"hint: if no other git process is running, remove {lock}"]
    assert project.git("branch", "--list", "task-1") == ""
