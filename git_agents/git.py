"""The git gateway: the only place in the package that runs git.

Every git call goes through `Git.run`, which turns failures into `GitError` and, with
`GIT_AGENTS_TRACE` set, prints each call with its duration (to stderr for `1`/`true`/`2`,
or appended to the file when the value is an absolute path, as `GIT_TRACE` does).

It runs git with `subprocess`, not plumbum: importing plumbum cost 50-130 ms per command
(benchmarks/startup.py), a third of `git agent-status`'s budget, and we used none of what it
adds over subprocess here (we take the exit code ourselves). subprocess also reads
`os.environ` at each call, where plumbum copied it once at import.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Iterable, Mapping

from .errors import GitError


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

    def at(self, cwd: str | os.PathLike[str]) -> "Git":
        """The same gateway, running in another directory."""
        return Git(cwd, self.env)

    def run(self, *args: str, ok: Iterable[int] = (0,), input: str | None = None,
            env: Mapping[str, str] | None = None) -> Result:
        """Run `git <args>`; raise GitError unless the exit status is in `ok`."""
        argv = [str(a) for a in args]
        extra = {**(self.env or {}), **(env or {})}
        start = time.perf_counter()
        try:
            proc = subprocess.run(["git", *argv], cwd=self.cwd, input=input, capture_output=True,
                                  stdin=None if input is not None else subprocess.DEVNULL,
                                  env={**os.environ, **extra} if extra else None,
                                  encoding="utf-8", errors="surrogateescape")
        except OSError as exc:  # git itself missing, or cwd gone
            _trace(argv, self.cwd, time.perf_counter() - start, -1)
            raise GitError(["git", *argv], -1, "", str(exc)) from exc
        code, out, err = proc.returncode, proc.stdout, proc.stderr
        _trace(argv, self.cwd, time.perf_counter() - start, code)
        if code not in tuple(ok):
            raise GitError(["git", *argv], code, out, err)
        return Result(code, out, err)

    def __call__(self, *args: str, input: str | None = None) -> str:
        """Run git and return its stdout with the trailing newline removed."""
        return self.run(*args, input=input).out.rstrip("\n")

    def ok(self, *args: str) -> bool:
        """Run git and say whether it exited 0 (for questions such as `merge-base --is-ancestor`)."""
        return self.run(*args, ok=range(0, 256)).code == 0

