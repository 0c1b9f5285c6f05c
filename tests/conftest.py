"""Shared fixtures: a sealed git environment, throw-away repositories and scripted agents.

Every test runs real git in a temporary directory. The environment is sealed (HOME points into
the test's directory, no system config, a fixed identity, GIT_EDITOR=false) so the user's own
git configuration can never change a result.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bin"


def end_watchers(under: Path) -> int:
    """SIGTERM every worktree watcher (git_agents/tasks/seal.py) of a worktree under `under`; how many."""
    import signal

    from git_agents.core.procs import argvs
    from git_agents.tasks.seal import bootstrap

    needle = os.fsencode(str(under))
    ended = 0
    for pid, argv in argvs():
        ours = bootstrap().encode() in argv
        if ours and any(needle in a for a in argv):
            try:
                os.kill(pid, signal.SIGTERM)
                ended += 1
            except OSError:
                pass
    return ended


@pytest.fixture(autouse=True)
def sealed_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point HOME and git's configuration into the test's directory; put bin/ first on PATH.

    Afterwards, end the worktree watchers the test's agents left (each would wait for its
    worktree to change, holding an inotify instance, of which a user has 128)."""
    home = tmp_path / "home"
    home.mkdir()
    for key in list(os.environ):
        if key.startswith(("GIT_", "NO_COLOR")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))  # git's version is cached there (core/git.py)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "A U Thor")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "C O Mitter")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "committer@example.com")
    monkeypatch.setenv("GIT_EDITOR", "false")
    # tests/hooks/sitecustomize.py installs the test-only crash hook (GIT_AGENTS_TEST_KILL_AFTER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "tests" / "hooks"),
                                                                   os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
    yield
    end_watchers(tmp_path)


def run(args: list[str], cwd: Path | str, input: str | None = None, check: bool = False,
        env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its output as text."""
    proc = subprocess.run(args, cwd=cwd, input=input, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout,
                          stdin=None if input is not None else subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


class Project:
    """A temporary repository with helpers to run git and git agent-* in it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def worktrees(self) -> Path:
        """The default worktree root: ../<name>-worktrees."""
        return self.path.parent / f"{self.path.name}-worktrees"

    def git(self, *args: str, cwd: Path | None = None, check: bool = True, input: str | None = None) -> str:
        """Run git and return its stdout, stripped."""
        return run(["git", *args], cwd or self.path, check=check, input=input).stdout.strip()

    def agent(self, verb: str, *args: str, cwd: Path | None = None, input: str | None = None,
              env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `git agent-<verb> args` through git, as a user would."""
        return run(["git", f"agent-{verb}", *args], cwd or self.path, input=input, env=env, timeout=timeout)

    def ok(self, verb: str, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        """Run `git agent-<verb>` and require exit 0."""
        proc = self.agent(verb, *args, **kw)  # type: ignore[arg-type]
        assert proc.returncode == 0, f"git agent-{verb} {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def commit_file(self, name: str, content: str, message: str | None = None, cwd: Path | None = None) -> str:
        """Write a file, commit it, return the new HEAD."""
        where = cwd or self.path
        (where / name).parent.mkdir(parents=True, exist_ok=True)
        (where / name).write_text(content)
        self.git("add", name, cwd=where)
        self.git("commit", "-q", "-m", message or f"edit {name}", cwd=where)
        return self.git("rev-parse", "HEAD", cwd=where)

    def snapshot(self) -> dict[str, str]:
        """Refs, worktrees and config: what must stay the same when a command refuses."""
        return {
            "refs": self.git("for-each-ref", "--format=%(refname) %(objectname)"),
            "worktrees": self.git("worktree", "list", "--porcelain"),
            "config": self.git("config", "--local", "--list"),
            "status": self.git("status", "--porcelain"),
        }


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A repository `project` with two committed files on branch main."""
    path = tmp_path / "project"
    path.mkdir()
    p = Project(path)
    p.git("init", "-q")
    (path / "README").write_text("readme\n")
    (path / "shared.txt").write_text("line 1\nline 2\nline 3\n")
    p.git("add", ".")
    p.git("commit", "-q", "-m", "initial")
    return p


def write_script(path: Path, body: str) -> Path:
    """Write an executable shell script."""
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body).lstrip())
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def committing_agent(tmp_path: Path) -> Path:
    """A scripted agent: writes file-<task>.txt and commits it on its branch."""
    return write_script(tmp_path / "agent.sh", """
        echo "agent $GIT_AGENT_TASK starting in $PWD"
        echo "work of task $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt"
        git add "file-$GIT_AGENT_TASK.txt"
        git commit -q -m "task $GIT_AGENT_TASK: add file-$GIT_AGENT_TASK.txt"
    """)
