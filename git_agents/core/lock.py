"""A lock shared by every git-agents process of one repository (flock on a file in the git dir).

git's own lock files fail at once under contention ("could not lock config file") and
`git notes add` loses writes when run concurrently; every metadata write and every change to
the set of worktrees therefore happens under this lock. flock is released by the kernel
when its holder dies, so a killed process never leaves the lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from types import TracebackType

from git_agents.core.errors import AgentError


class RepoLock:
    """An exclusive, re-entrant (within one process) lock named `name` in `<common-dir>/agents/`."""

    # Re-entrant per thread: threads of one process (spawn's concurrent checkouts) each take
    # the flock on a file description of their own, so they exclude each other as processes do.
    _held: dict[tuple[str, int], int] = {}
    _depth: dict[tuple[str, int], int] = {}

    def __init__(self, common_dir: str, name: str = "meta", timeout: float = 120.0) -> None:
        self.path = os.path.join(common_dir, "agents", f"{name}.lock")
        self.timeout = timeout

    def __enter__(self) -> RepoLock:
        key = (self.path, threading.get_ident())
        if key in self._held:
            self._depth[key] += 1
            return self
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        delay = 0.002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise AgentError(f"another git-agents process has held {self.path} for {self.timeout:.0f}s",
                                     hint="wait for it to finish, or find it with: fuser " + self.path) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        self._held[key] = fd
        self._depth[key] = 1
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        key = (self.path, threading.get_ident())
        self._depth[key] -= 1
        if self._depth[key] == 0:
            fd = self._held.pop(key)
            del self._depth[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
