"""Benchmark: a sparse `git agent-spawn` against a full one on a large repository: time and disk.

    python -m benchmarks.sparse_spawn [--files 100000] [--runs 3] [--cone src/d000/m00]

A generated repository (benchmarks/genrepo.py: files spread over src/dNNN/mNN/) gets, in
turn (alternately, so that machine load falls on both alike): `git agent-spawn --no-agent`
(a full worktree), `git agent-spawn --no-agent --sparse <cone>` (a cone-mode sparse checkout of
one directory and the top level), and, for reference, a raw `git worktree add`. Each worktree's
bytes on disk are counted as du counts them (core.worktrees.worktree_size, without `.git`), then
the task is removed with `git agent-clean` (not timed). Prints the medians and the ratios.
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

from benchmarks.genrepo import bench_dir, bench_env, generate, print_runs, settle  # noqa: E402
from git_agents.core.worktrees import worktree_size  # noqa: E402


def timed(argv: list[str], cwd: str, env: dict[str, str]) -> float:
    """Wall-clock seconds of one command, which must succeed (earlier runs' writes and discards done first)."""
    settle(cwd)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cone", default="src/d000/m00",
                   help="the directory the sparse task checks out (default src/d000/m00: 250 files)")
    args = p.parse_args(argv)
    with bench_dir(None, "sparse-bench-") as tmp:
        env = bench_env(tmp)
        repo = os.path.join(tmp, "repo")
        start = time.perf_counter()
        generate(repo, args.files)
        print(f"repository: {args.files} files, generated in {time.perf_counter() - start:.1f} s; "
              f"sparse cone: {args.cone}")
        times: dict[str, list[float]] = {"full": [], "sparse": [], "raw": []}
        sizes: dict[str, list[int]] = {"full": [], "sparse": [], "raw": []}
        n = 0
        for _ in range(args.runs):
            for kind in ("full", "sparse", "raw"):
                n += 1
                if kind == "raw":
                    path = os.path.join(tmp, f"raw-{n}")
                    times[kind].append(timed(["git", "worktree", "add", "-q", "-b", f"raw-{n}", path, "main"],
                                             repo, env))
                    sizes[kind].append(worktree_size(path))
                    subprocess.run(["git", "worktree", "remove", "--force", path], cwd=repo, env=env, check=True)
                    continue
                sparse = ["--sparse", args.cone, "--"] if kind == "sparse" else []
                times[kind].append(timed(["git", "agent-spawn", "--no-agent", "-q", *sparse, str(n)], repo, env))
                sizes[kind].append(worktree_size(os.path.join(tmp, "repo-worktrees", f"task-{n}")))
                subprocess.run(["git", "agent-clean", "-q", str(n)], cwd=repo, env=env, check=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        size = {k: statistics.median(v) for k, v in sizes.items()}
        for kind, label in (("raw", "git worktree add"), ("full", "git agent-spawn"),
                            ("sparse", f"git agent-spawn --sparse {args.cone}")):
            print_runs(label, times[kind], sizes[kind])
        print(f"sparse vs full spawn: {med['full'] / med['sparse']:.1f}x faster, "
              f"{size['full'] / max(size['sparse'], 1):.0f}x less disk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
