"""Benchmark: `git agent-spawn --isolation=clone` against a worktree spawn: time and disk, same run.

    python -m benchmarks.isolation [--files 20000 100000] [--runs 2]

For each size a generated repository (benchmarks/genrepo.py) gets, in turn (so that machine
load falls on all alike), `git agent-spawn --no-agent` (a linked worktree), `git agent-spawn
--no-agent --isolation=clone` (a local clone, objects hard-linked), and the same two with
`--pool` from a warm slot made beforehand (`git agent-pool create 1`, not timed): a worktree
slot switched to the task's branch, and a clone made from the slot's checkout (the slot's files
and index taken over; the slot leaves the pool). Disk is the
checkout as du counts it (core.worktrees.worktree_size, without `.git`) plus, for a clone, the
bytes of its `.git` that are its own (files not hard-linked to the repository's objects). Each
task is removed with `git agent-clean` (not timed). Prints the medians and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.genrepo import bench_dir, bench_env, generate, print_runs  # noqa: E402
from benchmarks.sparse_spawn import timed  # noqa: E402
from git_agents.core.worktrees import worktree_size  # noqa: E402


def own_git_bytes(path: str) -> int:
    """Bytes on disk of a clone's `.git` that are its own: hard-linked object files left out."""
    total = 0
    for top, _dirs, files in os.walk(os.path.join(path, ".git")):
        for name in files:
            st = os.lstat(os.path.join(top, name))
            if st.st_nlink == 1:
                total += st.st_blocks * 512
    return total


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, nargs="+", default=[20_000, 100_000])
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args(argv)
    import subprocess

    for files in args.files:
        with bench_dir(None, "isolation-bench-") as tmp:
            env = bench_env(tmp)
            repo = os.path.join(tmp, "repo")
            generate(repo, files)
            kinds = ("worktree", "clone", "pool worktree", "pool clone")
            times: dict[str, list[float]] = {kind: [] for kind in kinds}
            sizes: dict[str, list[int]] = {kind: [] for kind in kinds}
            n = 0
            for _ in range(args.runs):
                for kind in kinds:
                    n += 1
                    pooled, _, mode = kind.rpartition(" ")
                    if pooled:
                        subprocess.run(["git", "agent-pool", "create", "1"], cwd=repo, env=env, check=True,
                                       stdout=subprocess.DEVNULL)
                    times[kind].append(timed(["git", "agent-spawn", "--no-agent", "-q", f"--isolation={mode}",
                                              *(["--pool"] if pooled else []), "--prompt", "bench", str(n)],
                                             repo, env))
                    where = "pool-1" if kind == "pool worktree" else f"task-{n}"
                    path = os.path.join(tmp, "repo-worktrees", where)
                    sizes[kind].append(worktree_size(path) + (own_git_bytes(path) if mode == "clone" else 0))
                    subprocess.run(["git", "agent-clean", "-q", str(n)], cwd=repo, env=env, check=True)
            med = {k: statistics.median(v) for k, v in times.items()}
            size = {k: statistics.median(v) for k, v in sizes.items()}
            print(f"{files} files:")
            for kind in kinds:
                print_runs(f"  spawn {kind}", times[kind], sizes[kind], 22)
            print(f"  clone vs worktree: {med['clone'] / med['worktree']:.2f}x the time,"
                  f" {size['clone'] / max(size['worktree'], 1):.2f}x the disk")
            print(f"  pool clone vs clone: {med['pool clone'] / med['clone']:.2f}x the time;"
                  f" vs pool worktree: {med['pool clone'] / med['pool worktree']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
