"""Gating merges on a check command, run in a scratch worktree (`--check CMD` / agent.mergeCheck).

One detached worktree, `<common-dir>/agents/check-worktree`, is created on first use, moved
from candidate to candidate with `git checkout --detach --force` (incremental, so build caches
in ignored files survive between candidates) and removed when the run ends. The command runs
with the configured shell; its exit status decides, and the tail of its output is kept as the
reason when it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

from git_agents.core.repo import Repo
from git_agents.core.worktrees import add_worktree, list_worktrees, remove_worktree
from git_agents.tasks.agent import (
    _REPO_LOCAL_ENV,  # variables that would aim the check's git at the wrong place,
)

SCRATCH = "check-worktree"
TAIL_LINES = 20
TAIL_CHARS = 2000


@dataclass(frozen=True)
class CheckResult:
    """How the check went on one commit."""

    passed: bool
    code: int
    tail: str  # the last lines of its combined stdout/stderr


def tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    """The end of a command's output: at most `lines` lines and `chars` characters."""
    kept = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    return kept[-chars:]


class Checker:
    """Runs one check command on commits, in a scratch worktree that lives as long as the `with` block."""

    def __init__(self, repo: Repo, command: str) -> None:
        self.repo = repo
        self.command = command
        self.path = os.path.join(repo.state_dir, SCRATCH)
        self._ready = False
        self.runs = 0

    def __enter__(self) -> Checker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _prepare(self, commit: str) -> None:
        # A scratch worktree (or its directory alone) left by an interrupted run is ours to replace.
        if any(w.path == self.path for w in list_worktrees(self.repo)):
            remove_worktree(self.repo, self.path, force=True)
        elif os.path.exists(self.path):
            shutil.rmtree(self.path)
        add_worktree(self.repo, self.path, None, commit)
        self._ready = True

    def check(self, commit: str) -> CheckResult:
        """Check out `commit` in the scratch worktree and run the command there."""
        if not self._ready:
            self._prepare(commit)
        else:
            git = self.repo.git.at(self.path)
            git.run("checkout", "--detach", "--force", "--quiet", commit)
            git.run("clean", "-ffdq")  # untracked leftovers of the previous candidate, not ignored caches
        self.runs += 1
        env = {k: v for k, v in os.environ.items() if k not in _REPO_LOCAL_ENV}
        env.update(GIT_AGENT_CHECK_COMMIT=commit)
        proc = subprocess.run([self.repo.setting("agent.shell"), "-c", self.command], cwd=self.path, env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = proc.stdout.decode("utf-8", "replace")
        return CheckResult(proc.returncode == 0, proc.returncode, tail(output))

    def close(self) -> None:
        """Remove the scratch worktree."""
        if self._ready:
            remove_worktree(self.repo, self.path, force=True)
            self._ready = False


def first_failing(candidates: Sequence[str], fails: Callable[[str], bool]) -> int:
    """Index of the first candidate that fails, given that the last one fails and failure persists.

    Binary search over a chain of merges: each candidate contains the ones before it, so once a
    task breaks the check every later result fails too. Calls `fails` about log2(n) times.
    """
    lo, hi = 0, len(candidates) - 1  # invariant: candidates[hi] fails; all before lo pass
    while lo < hi:
        mid = (lo + hi) // 2
        if fails(candidates[mid]):
            hi = mid
        else:
            lo = mid + 1
    return hi
