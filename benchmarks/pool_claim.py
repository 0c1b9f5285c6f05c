"""Benchmark: `git agent-pool claim --task` against its limit and against `git worktree add`.

For each repository size (`--files`, default 20,000 and 100,000) a repository is generated
(see genrepo.py; the 20,000 files are of 4,000 bytes, 80 MB, and the 100,000 are genrepo's
small files of about 40 bytes, 4 MB, so that generating it takes well under a minute: the
cost of a checkout and of git's index is in the number of files), a pool of one slot per run
and one for the limit is filled (not timed), and then three figures are timed, alternately in
every run so that machine load falls on all of them alike:

- `git worktree add -b <branch> <path> main`: a fresh checkout, what a task costs without the
  pool (the worktree is removed again after each run, not timed);
- the limit of a claim: the start of the same Python interpreter that runs git-agents
  (`sys.executable -c pass`, which pays for `site` as every command does) plus a raw
  `git switch -C <new-branch>` in a warm slot. The slot is one the pool made (`git agent-pool
  claim` without a task, detached at main's commit, with its index fresh), and it is put back
  after each run, not timed: detached at the same commit again, the branch deleted. A claim
  cannot do less: it starts Python and puts a slot on a new branch. (git's `switch -C` to a
  new branch at the commit it is on moves no file and takes a few milliseconds, so the limit
  is nearly all Python's start);
- `git agent-pool claim --task <id> --prompt <text>`, run through git as a user runs it: it
  switches a warm slot to the new branch task-<id> and records the task as spawn does (task
  record, prompt file, port lease); each run claims a slot of its own.

Python runs with its bytecode cache, as it does for an installed package (an untimed warm-up
fills it, in the temporary directory; PYTHONDONTWRITEBYTECODE is dropped for the commands).

Printed per size, for wall-clock time and for CPU time (user + system of the command and its
children; less disturbed by other work on a busy machine): the median and fastest run of
each, the limit's two parts, claim / limit (the goal is at most 1.5x) and worktree add / claim.
A summary table of the wall-clock medians of every size follows.

On some file systems `git worktree add` slows down after every add and remove of a large
tree (measured on ext4 mounted with `discard`: 8, 13, 16, 18 s for four add/remove cycles
with git alone, all of it system time), which the medians include and the fastest runs leave
out.

    python benchmarks/pool_claim.py [--runs 5] [--files 20000,100000] [--megabytes 80,0]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.genrepo import bench_dir, generate, settle  # noqa: E402

Timing = tuple[float, float]  # (wall-clock, CPU) seconds


def timed(argv: list[str], cwd: str, env: dict[str, str]) -> Timing:
    """(wall-clock, CPU) seconds of one command, which must succeed.

    Earlier runs' dirty pages and discards are done first (genrepo.settle, not timed), so that
    one run's write-back does not land in the next one's time. CPU time (user + system, the command
    and its children) is less disturbed than wall time by other work on a busy machine.
    """
    settle(cwd)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _numbers(text: str, kind: type[float] | type[int]) -> list[float]:
    return [kind(part.replace("_", "")) for part in text.split(",") if part.strip()]


def measure(tmp: str, env: dict[str, str], files: int, megabytes: float, runs: int) -> dict[str, list[Timing]]:
    """Generate a repository of `files` files, fill a pool, and time each figure `runs` times."""
    repo = os.path.join(tmp, f"repo-{files}")
    size = f"{megabytes:g} MB" if megabytes else "genrepo's small files"
    start = time.perf_counter()
    generate(repo, files, file_bytes=int(megabytes * 1_000_000 / files) if megabytes else None)
    print(f"\n{files:,} files ({size}): generated in {time.perf_counter() - start:.1f} s")

    def git(*args: str, cwd: str = repo) -> str:
        return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                              text=True).stdout.strip()

    start = time.perf_counter()
    git("agent-pool", "create", str(runs + 1))  # one slot per claim, one for the limit
    limit_slot = git("agent-pool", "claim")  # made as the pool makes them, at main's commit
    main_commit = git("rev-parse", "main")
    print(f"pool of {runs + 1} slots created in {time.perf_counter() - start:.1f} s (not timed)")
    # Warm-up, not timed: Python's bytecode cache filled, the slot given back.
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    git("agent-pool", "claim", "--task", "warm-up", "--prompt", "warm-up")
    git("agent-clean", "--force", "warm-up")

    figures: dict[str, list[Timing]] = {"add": [], "python": [], "switch": [], "claim": []}
    for i in range(runs):
        path = os.path.join(tmp, f"raw-{files}-{i}")
        figures["add"].append(timed(["git", "worktree", "add", "--quiet", "-b", f"raw-{i}", path, "main"],
                                    repo, env))
        git("worktree", "remove", "--force", path)
        figures["python"].append(timed([sys.executable, "-c", "pass"], repo, env))
        figures["switch"].append(timed(["git", "switch", "--quiet", "-C", f"limit-{i}"], limit_slot, env))
        git("checkout", "--quiet", "--detach", main_commit, cwd=limit_slot)  # put back, as a release does
        git("branch", "-D", f"limit-{i}")
        figures["claim"].append(timed(["git", "agent-pool", "claim", "--task", f"bench-{i}", "--prompt",
                                       "benchmark"], repo, env))
    figures["limit"] = [(p[0] + s[0], p[1] + s[1]) for p, s in zip(figures["python"], figures["switch"])]
    return figures


def report(files: int, figures: dict[str, list[Timing]]) -> dict[str, float]:
    """Print one size's figures; return its wall-clock medians."""
    labels = {"add": "git worktree add", "limit": "limit: python + git switch -C",
              "python": "  sys.executable -c pass", "switch": "  git switch -C (warm slot)",
              "claim": "git agent-pool claim --task"}
    medians: dict[str, float] = {}
    for kind, index in (("wall", 0), ("cpu", 1)):
        times = {key: [t[index] for t in figures[key]] for key in labels}
        for key, label in labels.items():
            runs = " ".join(f"{t:.3f}" for t in times[key])
            print(f"{kind:<4} {label:<31} median {statistics.median(times[key]):7.3f} s  "
                  f"min {min(times[key]):7.3f} s   (runs: {runs})")
        med = {key: statistics.median(values) for key, values in times.items()}
        low = {key: min(values) for key, values in times.items()}
        print(f"{kind:<4} claim / limit: {med['claim'] / med['limit']:.2f}x (fastest runs: "
              f"{low['claim'] / low['limit']:.2f}x); worktree add / claim: {med['add'] / med['claim']:.1f}x "
              f"(fastest runs: {low['add'] / low['claim']:.1f}x)")
        if kind == "wall":
            medians = med
    return medians


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="timed runs of each figure, per size (default 5)")
    p.add_argument("--files", default="20000,100000", help="repository sizes, comma-separated (default 20000,100000)")
    p.add_argument("--megabytes", default="80,0",
                   help="each size's total file data, comma-separated; 0: genrepo's small files (default 80,0)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    sizes = [int(n) for n in _numbers(args.files, int)]
    megabytes = _numbers(args.megabytes, float)
    megabytes += [0.0] * (len(sizes) - len(megabytes))

    with bench_dir(args.keep, "pool-bench-") as tmp:
        _run(tmp, sizes, megabytes, args.runs)
    return 0


def _run(tmp: str, sizes: list[int], megabytes: list[float], runs: int) -> None:
    """Measure each size in `tmp` and print the summary table."""
    # bin/ first (the git-agents under test), then this interpreter's directory: the launchers'
    # `python3` is then the interpreter whose start the limit measures.
    # Python with its bytecode cache, as an installed package has it (PYTHONDONTWRITEBYTECODE would
    # compile every module of git-agents on every start, 40 ms here); the cache goes into the
    # temporary directory, not the checkout.
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
           "PYTHONPYCACHEPREFIX": os.path.join(tmp, "pycache"),
           "PATH": os.pathsep.join([str(ROOT / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]]),
           "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    summary = []
    for files, mb in zip(sizes, megabytes):
        summary.append((files, report(files, measure(tmp, env, files, mb, runs))))
    print("\nwall-clock medians     worktree add      limit      claim   claim/limit   add/claim")
    for files, med in summary:
        print(f"{files:>7,} files      {med['add']:10.3f} s {med['limit']:8.3f} s {med['claim']:8.3f} s"
              f"   {med['claim'] / med['limit']:8.2f}x   {med['add'] / med['claim']:8.1f}x")


if __name__ == "__main__":
    sys.exit(main())
