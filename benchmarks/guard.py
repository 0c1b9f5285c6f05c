#!/usr/bin/env python3
"""The guard's cost per agent commit: `git commit` in a task worktree with and without it, same run.

    python3 benchmarks/guard.py [--commits N]

Spawns a real task (`git agent-spawn`, its agent `true`, so its guard hooks directory is written
as for any agent), then commits N times in its worktree, alternating a commit with the guard
(core.hooksPath given through GIT_CONFIG_COUNT, as the agent's git has it) and one without, and
prints the medians and the difference. Target: at most 10 ms per commit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.startup import git, make_repo, sealed_env  # noqa: E402


def commit_time(worktree: Path, env: dict[str, str], n: int) -> float:
    (worktree / "work.txt").write_text(f"change {n}\n")
    git(worktree, env, "add", "work.txt")
    start = time.perf_counter()
    git(worktree, env, "commit", "-q", "-m", f"change {n}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=40, help="commits of each kind (default 40)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = sealed_env(Path(tmp) / "home")
        (Path(tmp) / "home").mkdir()
        repo = Path(tmp) / "repo"
        make_repo(repo, env)
        git(repo, env, "agent-spawn", "1", "--agent", "true", "--prompt", "benchmark")
        git(repo, env, "agent-wait", "1", "--timeout", "60")
        hooks = repo / ".git" / "agents" / "tasks" / "1" / "guard-hooks"
        worktree = repo.parent / "repo-worktrees" / "task-1"
        guarded = {**env, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.hooksPath",
                   "GIT_CONFIG_VALUE_0": str(hooks)}
        plain_times, guard_times = [], []
        for n in range(args.commits):
            plain_times.append(commit_time(worktree, env, 2 * n))
            guard_times.append(commit_time(worktree, guarded, 2 * n + 1))
        plain, guard = statistics.median(plain_times), statistics.median(guard_times)
        print(f"git commit in a task worktree, median of {args.commits}:")
        print(f"  without the guard  {plain * 1000:7.1f} ms")
        print(f"  with the guard     {guard * 1000:7.1f} ms")
        print(f"  guard cost         {(guard - plain) * 1000:+7.1f} ms per commit (target <= 10 ms;"
              f" ratio {guard / plain:.2f}x)")


if __name__ == "__main__":
    main()
