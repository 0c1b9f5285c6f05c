"""Benchmark: a fresh `git worktree add` against `git agent-pool claim --task` on a large repository.

Generates a repository of 20,000 files (about 80 MB; see genrepo.py), fills a pool (not
timed), then times, alternately so that machine load falls on both alike, a raw
`git worktree add` and a `git agent-pool claim --task` (which switches a warm slot to a new
branch and records the task as spawn does). Prints the medians and their ratio, and the ratio
of the fastest runs: on some file systems `git worktree add` slows down after every add and
remove of a large tree (measured on ext4 mounted with `discard`: 8, 13, 16, 18 s for four
add/remove cycles with git alone, all of it system time), which the medians include and the
fastest runs leave out.

    python benchmarks/pool_claim.py [--runs 5] [--files 20000] [--megabytes 80]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.genrepo import generate  # noqa: E402


def timed(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall-clock, CPU) seconds of one command, which must succeed.

    Dirty pages of earlier runs are written out first (not timed), so that one run's
    write-back does not land in the next one's time. CPU time (user + system, the command
    and its children) is less disturbed than wall time by other work on a busy machine.
    """
    os.sync()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="timed runs of each (default 5)")
    p.add_argument("--files", type=int, default=20_000)
    p.add_argument("--megabytes", type=float, default=80)
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="pool-bench-")
    env = {**os.environ, "PATH": f"{ROOT / 'bin'}{os.pathsep}{os.environ['PATH']}", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    try:
        start = time.perf_counter()
        repo = os.path.join(tmp, "repo")
        generate(repo, args.files, file_bytes=int(args.megabytes * 1_000_000 / args.files))
        print(f"repository: {args.files} files, {args.megabytes:g} MB, generated in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        subprocess.run(["git", "agent-pool", "create", str(args.runs)], cwd=repo, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        print(f"pool of {args.runs} slots created in {time.perf_counter() - start:.1f} s (not timed below)")

        raw, claim = [], []
        for i in range(args.runs):
            path = os.path.join(tmp, f"raw-{i}")
            raw.append(timed(["git", "worktree", "add", "--quiet", "-b", f"raw-{i}", path, "main"], repo, env))
            subprocess.run(["git", "worktree", "remove", "--force", path], cwd=repo, env=env, check=True)
            claim.append(timed(["git", "agent-pool", "claim", "--task", f"bench-{i}", "--prompt", "benchmark"],
                               repo, env))

        for kind, index in (("wall", 0), ("cpu", 1)):
            raw_t, claim_t = [t[index] for t in raw], [t[index] for t in claim]
            for label, times in (("git worktree add", raw_t), ("git agent-pool claim --task", claim_t)):
                runs = " ".join(f"{t:.3f}" for t in times)
                print(f"{kind:<4} {label:<28} median {statistics.median(times):7.3f} s  min {min(times):7.3f} s"
                      f"   (runs: {runs})")
            print(f"{kind:<4} ratio: claim is {statistics.median(raw_t) / statistics.median(claim_t):.1f}x faster "
                  f"than worktree add (medians; fastest runs: {min(raw_t) / min(claim_t):.1f}x)")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
