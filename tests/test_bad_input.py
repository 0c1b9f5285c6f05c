"""Bad input from files and configuration: a `fatal:` message naming the problem and a hint, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Project, run, write_script


def _fatal(proc: object, first: str, code: int = 128) -> list[str]:
    """Check a refusal: exit `code`, no traceback, the first line exactly `first`, a hint; return the lines."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)  # type: ignore[attr-defined]
    err = proc.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert lines[0] == first, err
    assert any(line.startswith("hint: ") for line in lines[1:]), err
    return lines


def _with_remote(project: Project, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    run(["git", "clone", "-q", "--bare", str(project.path), str(bare)], tmp_path, check=True)
    project.git("remote", "add", "origin", str(bare))


# -- typed settings name their key and value ----------------------------------------------------------

@pytest.mark.parametrize("value, wanted", [
    ("abc", "a number of seconds greater than 0"),
    ("0", "a number of seconds greater than 0"),
    ("-5", "a number of seconds greater than 0"),
    ("nan", "a number of seconds greater than 0"),
])
def test_bad_lease_names_the_key(project: Project, tmp_path: Path, value: str, wanted: str) -> None:
    _with_remote(project, tmp_path)
    project.git("config", "agent.lease", value)
    for verb, args in (("queue", ("list",)), ("worker", ("--once",))):
        proc = project.agent(verb, *args, timeout=60)
        lines = _fatal(proc, f"fatal: bad value '{value}' for agent.lease: {wanted} is expected")
        assert lines[1] == ("hint: fix it with: git config agent.lease <value>, or go back to the default with:"
                            " git config --unset-all agent.lease")


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "many"])
def test_bad_worker_jobs_names_the_setting_not_the_option(project: Project, tmp_path: Path, value: str) -> None:
    _with_remote(project, tmp_path)
    project.git("config", "agent.workerJobs", value)
    proc = project.agent("worker", "--once", timeout=60)
    _fatal(proc, f"fatal: bad value '{value}' for agent.workerJobs: a whole number of tasks greater than 0"
                 " is expected")
    assert "--jobs" not in proc.stderr


def test_bad_jobs_option_is_still_a_usage_error(project: Project, tmp_path: Path) -> None:
    _with_remote(project, tmp_path)
    proc = project.agent("worker", "--once", "--jobs", "0", timeout=60)
    assert proc.returncode == 129
    assert proc.stderr.splitlines()[0] == "error: --jobs must be a positive number"


def test_bad_poll_interval_names_the_key(project: Project, tmp_path: Path) -> None:
    _with_remote(project, tmp_path)
    project.git("config", "agent.pollInterval", "soon")
    _fatal(project.agent("worker", "--once", timeout=60),
           "fatal: bad value 'soon' for agent.pollInterval: a number of seconds greater than 0 is expected")


@pytest.mark.parametrize("value", ["-3", "x", "2.5"])
def test_bad_pool_max_names_the_key(project: Project, value: str) -> None:
    project.git("config", "agent.poolMax", value)
    before = project.snapshot()
    proc = project.agent("spawn", "1", "--pool", "--prompt", "x")
    _fatal(proc, f"fatal: bad value '{value}' for agent.poolMax: a whole number of slots of at least 0 is expected")
    assert "pool is empty" not in proc.stderr
    assert project.snapshot() == before


def test_pool_max_zero_still_means_no_limit(project: Project) -> None:
    project.git("config", "agent.poolMax", "0")
    project.ok("spawn", "1", "--pool", "--no-agent", "--prompt", "x")


# -- agent.worktreeRoot ---------------------------------------------------------------------------------

_ROOT_HINT = ("hint: set a directory outside the repository, e.g. git config agent.worktreeRoot ../worktrees,"
              " or go back to the default with: git config --unset-all agent.worktreeRoot")


@pytest.mark.parametrize("value, first", [
    ("", "fatal: agent.worktreeRoot is empty; it must name the directory that holds task worktrees"),
    ("  ", "fatal: agent.worktreeRoot is empty; it must name the directory that holds task worktrees"),
    (".git/wt", "fatal: agent.worktreeRoot '.git/wt' is inside the git directory {git}"),
    (".git", "fatal: agent.worktreeRoot '.git' is inside the git directory {git}"),
    (".", "fatal: agent.worktreeRoot '.' is the main worktree itself"),
])
def test_unusable_worktree_root_is_refused(project: Project, value: str, first: str) -> None:
    project.git("config", "agent.worktreeRoot", value)
    before = project.snapshot()
    for args in (("spawn", "1", "--prompt", "x"), ("pool", "create", "1")):
        proc = project.agent(*args)
        lines = _fatal(proc, first.format(git=project.path / ".git"))
        assert lines[1] == _ROOT_HINT
        assert project.snapshot() == before
    assert project.git("branch", "--list", "task-*") == ""
    assert not (project.path / ".git" / "wt").exists()
    project.ok("status")  # reading the tasks does not need the root


def test_worktree_root_that_is_a_file(project: Project, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine\n")
    project.git("config", "agent.worktreeRoot", str(tmp_path / "afile"))
    before = project.snapshot()
    proc = project.agent("spawn", "1", "--prompt", "x")
    lines = _fatal(proc, f"fatal: cannot create the worktree directory '{tmp_path / 'afile'}': "
                         "a file of that name is in the way")
    assert lines[1] == f"hint: agent.worktreeRoot is '{tmp_path / 'afile'}'; point it at a directory"
    assert project.snapshot() == before
    assert project.git("branch", "--list", "task-*") == ""
    assert (tmp_path / "afile").read_text() == "mine\n"


def test_worktree_root_that_cannot_be_made(project: Project) -> None:
    project.git("config", "agent.worktreeRoot", "/proc/no-such-dir/wt")
    before = project.snapshot()
    proc = project.agent("spawn", "1", "--prompt", "x")
    lines = _fatal(proc, "fatal: cannot create the worktree directory '/proc/no-such-dir/wt': "
                         "No such file or directory")
    assert lines[1] == "hint: agent.worktreeRoot is '/proc/no-such-dir/wt'; point it at a directory you can write"
    assert project.snapshot() == before
    assert project.git("branch", "--list", "task-*") == ""
