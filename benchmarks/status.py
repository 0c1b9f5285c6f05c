"""Benchmark: `git agent-status` of many tasks against the fastest plain-git way to answer the same.

    python benchmarks/status.py [--tasks 100] [--files 2000] [--runs 5] [--agents]

Generates a repository (genrepo.py), spawns the tasks as a user does (`git agent-spawn
--no-agent`, one worktree and branch each; one in ten gets a commit, one in ten an untracked
file; with --agents, each task's agent does that and exits, and the script waits until every
worktree is sealed, tasks/seal.py, so status need not run git status in them), then times,
alternately, `git agent-status` and its plain-git equivalent: one
`for-each-ref` of the branches, one `rev-list` of the commits ahead, and `git status` in every
worktree, run at most os.cpu_count() at a time (`xargs -P`). Prints the medians and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.genrepo import bench_dir, bench_env, generate  # noqa: E402


def timed(argv: list[str], cwd: str, env: dict[str, str], input: str | None = None) -> float:
    """Wall-clock seconds of one command, which must succeed."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, input=input, text=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--agents", action="store_true", help="tasks made by agents that exit (sealed worktrees)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    with bench_dir(args.keep, "status-bench-") as tmp:
        env = bench_env(tmp)
        repo = os.path.join(tmp, "repo")
        start = time.perf_counter()
        generate(repo, args.files)
        ids = [str(i) for i in range(1, args.tasks + 1)]
        worktrees = [os.path.join(tmp, "repo-worktrees", f"task-{i}") for i in ids]
        if args.agents:
            work = ('case $((GIT_AGENT_TASK % 10)) in 2) echo work > work.txt && git add work.txt && '
                    'git commit -qm work;; 3) echo untracked > scratch.txt;; esac')
            subprocess.run(["git", "agent-spawn", "-q", "--agent", work, *ids], cwd=repo, env=env, check=True)
            # exit 1: the tasks left with only an untracked file are "exited 0, work not committed"
            subprocess.run(["git", "agent-wait", *ids], cwd=repo, env=env, stdout=subprocess.DEVNULL)
            seals = [os.path.join(repo, ".git", "agents", "tasks", i, "seal") for i in ids]
            deadline = time.monotonic() + 300
            while not all(map(os.path.exists, seals)) and time.monotonic() < deadline:
                time.sleep(0.1)
            print(f"{sum(map(os.path.exists, seals))} of {len(ids)} worktrees sealed")
        else:
            subprocess.run(["git", "agent-spawn", "--no-agent", "-q", *ids], cwd=repo, env=env, check=True)
        for n, wt in enumerate(worktrees if not args.agents else []):
            if n % 10 == 1:
                Path(wt, "work.txt").write_text("work\n")
                subprocess.run(["git", "add", "work.txt"], cwd=wt, env=env, check=True)
                subprocess.run(["git", "commit", "-qm", "work"], cwd=wt, env=env, check=True)
            elif n % 10 == 2:
                Path(wt, "scratch.txt").write_text("untracked\n")
        print(f"{args.tasks} tasks on {args.files} files, prepared in {time.perf_counter() - start:.1f} s; "
              f"{os.cpu_count()} CPUs")

        jobs = str(os.cpu_count() or 2)
        plain_script = (
            "git for-each-ref --format='%(objectname) %(refname)' refs/heads/ >/dev/null && "
            "git rev-list --boundary --parents $(git for-each-ref --format='%(objectname)' 'refs/heads/task-*') "
            "--not main >/dev/null && "
            f"xargs -0 -P {jobs} -I{{}} git -C {{}} --no-optional-locks status --porcelain -z "
            "--untracked-files=all >/dev/null")
        listing = "\0".join(worktrees) + "\0"
        timed(["git", "agent-status"], repo, env)  # warm caches for both
        ours, plain = [], []
        for _ in range(args.runs):
            ours.append(timed(["git", "agent-status"], repo, env))
            plain.append(timed(["sh", "-c", plain_script], repo, env, input=listing))
        mo, mp = statistics.median(ours), statistics.median(plain)
        print(f"git agent-status               median {mo * 1000:7.0f} ms  min {min(ours) * 1000:7.0f} ms")
        print(f"plain git (xargs -P {jobs:<2} status) median {mp * 1000:7.0f} ms  min {min(plain) * 1000:7.0f} ms")
        print(f"ratio: status takes {mo / mp:.2f}x the plain-git time "
              f"(medians; fastest runs {min(ours) / min(plain):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
