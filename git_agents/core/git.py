"""The git gateway: the only place in the package that runs git.

Every git call goes through `Git.run`, which turns failures into `GitError` and, with
`GIT_AGENTS_TRACE` set, prints each call with its duration (to stderr for `1`/`true`/`2`,
or appended to the file when the value is an absolute path, as `GIT_TRACE` does).

git runs through plumbum, as the project specifies, imported on the first git call and not
at start-up: `-h` and the commands that run no git never pay for it. The import costs
50-130 ms on a loaded two-core machine (benchmarks/startup.py prints it); swapping the
runner is a change to `_run_git` alone. plumbum copies `os.environ` once at import, so each
call passes the current environment explicitly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from git_agents.core.errors import GitError

_GIT: Any = None
_CALLS = 0  # git calls made by this process, for the test-only kill hook below


def _maybe_kill() -> None:
    """Test-only crash hook: GIT_AGENTS_TEST_KILL_AFTER=<n>[:<signal>] signals this process before its n-th git call.

    The signal is KILL unless named (e.g. `7:INT`, as Ctrl-C would). Lets tests interrupt a
    command at an exact point (between two git calls) to prove it recovers.
    """
    global _CALLS
    _CALLS += 1
    limit, _, name = os.environ.get("GIT_AGENTS_TEST_KILL_AFTER", "").partition(":")
    if limit.isdigit() and _CALLS == int(limit):
        import signal

        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), getattr(signal, f"SIG{name or 'KILL'}"))


def _run_git(argv: list[str], cwd: str | None, env: dict[str, str] | None,
             input: str | None) -> tuple[int, str, str]:
    """Run git once through plumbum; return (exit status, stdout, stderr)."""
    global _GIT
    if _GIT is None:
        from plumbum import local  # heavy: imported only by commands that run git

        _GIT = local["git"]
    stdin: Any = subprocess.DEVNULL
    if input is not None:
        stdin = tempfile.TemporaryFile("w+", encoding="utf-8")
        stdin.write(input)
        stdin.flush()
        stdin.seek(0)
    try:
        code, out, err = _GIT[argv].run(retcode=None, cwd=cwd, stdin=stdin,
                                        env={**os.environ, **env} if env else dict(os.environ))
    finally:
        if input is not None:
            stdin.close()
    return code, out, err


def _trace(argv: list[str], cwd: str | None, seconds: float, code: int) -> None:
    target = os.environ.get("GIT_AGENTS_TRACE", "")
    if not target or target.lower() in ("0", "false", "no", "off"):
        return
    where = f" (in {cwd})" if cwd else ""
    line = f"trace: git-agents: {seconds * 1000:7.1f} ms exit {code}: git {' '.join(argv)}{where}\n"
    if os.path.isabs(target):
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(line)
    else:
        sys.stderr.write(line)
        sys.stderr.flush()


@dataclass(frozen=True)
class Result:
    """What one git call returned."""

    code: int
    out: str
    err: str


class Git:
    """Runs git in one directory (`cwd`, default: the current one)."""

    def __init__(self, cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> None:
        self.cwd = os.fspath(cwd) if cwd is not None else None
        self.env = dict(env) if env else None

    def at(self, cwd: str | os.PathLike[str]) -> Git:
        """The same gateway, running in another directory."""
        return Git(cwd, self.env)

    def run(self, *args: str, ok: Iterable[int] = (0,), input: str | None = None,
            env: Mapping[str, str] | None = None) -> Result:
        """Run `git <args>`; raise GitError unless the exit status is in `ok`."""
        argv = [str(a) for a in args]
        _maybe_kill()
        extra = {**(self.env or {}), **(env or {})}
        start = time.perf_counter()
        try:
            code, out, err = _run_git(argv, self.cwd, extra, input)
        except OSError as exc:  # git itself missing, or cwd gone
            _trace(argv, self.cwd, time.perf_counter() - start, -1)
            raise GitError(["git", *argv], -1, "", str(exc)) from exc
        _trace(argv, self.cwd, time.perf_counter() - start, code)
        if code not in tuple(ok):
            raise GitError(["git", *argv], code, out, err)
        return Result(code, out, err)

    def __call__(self, *args: str, input: str | None = None) -> str:
        """Run git and return its stdout with the trailing newline removed."""
        return self.run(*args, input=input).out.rstrip("\n")

    def has_ref(self, ref: str) -> bool:
        """Whether the full ref name `ref` (refs/heads/x, refs/agents/...) exists."""
        return self.ok("show-ref", "--verify", "--quiet", ref)

    def ok(self, *args: str) -> bool:
        """Run git and say whether it exited 0 (for questions such as `merge-base --is-ancestor`)."""
        return self.run(*args, ok=range(0, 256)).code == 0

    def passthrough(self, *args: str) -> int:
        """Run git with this process's terminal (stdin, stdout, stderr, so git's own pager and
        colour rules apply) and return its exit status: for commands that show git's output as is."""
        argv = [str(a) for a in args]
        _maybe_kill()
        start = time.perf_counter()
        env = {**os.environ, **(self.env or {})}
        try:
            code = subprocess.run(["git", *argv], cwd=self.cwd, env=env, check=False).returncode
        except OSError as exc:
            raise GitError(["git", *argv], -1, "", str(exc)) from exc
        _trace(argv, self.cwd, time.perf_counter() - start, code)
        return code
