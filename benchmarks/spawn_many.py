"""Benchmark: `git agent-spawn <48 ids>` against the plain `git worktree add` loop (issue 22, goal 1).

    python -m benchmarks.spawn_many [--files 2000 20000] [--tasks 48] [--rounds 2] [--before <commit>]

For each repository size (benchmarks/genrepo.py) and each mode (--no-agent, and with an agent
started in each worktree), the sides alternate (plain, ours, ours, plain, ...: this disk slows
with every tree written, so neither side gets the fresh disk):
- plain: `git worktree add -b <branch> <path> main` once per task, one after another, as the
  seed's procedure does (full worktrees); with agents, each agent is started (detached, in its
  worktree) as soon as its worktree is there;
- ours: one `git agent-spawn <ids>` making the same number of task worktrees (with agents:
  `--agent`, each started as its worktree is ready);
- before (with --before <commit>): the same spawn run by the git-agents of another commit
  (exported with `git archive`, the checkout untouched), for the figures before this change.
Everything a run made is removed before the next (not timed), and each run waits for the disk
to finish the previous one's writes and discards first (genrepo.settle; not timed). Prints each run's seconds, the
medians, ours / plain (the goal: at most 0.5) and where spawn's git time goes, step by step
(GIT_AGENTS_TRACE of its runs: the git calls of each step, summed over the threads; their sum
over the wall-clock time says how much ran side by side).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.genrepo import bench_env, generate, settle  # noqa: E402

AGENT = "#!/bin/sh\ngit status --porcelain >/dev/null\n"  # an agent that looks at its worktree and ends

# spawn's steps, told apart by the words of their git calls (the first that matches)
STEPS: list[tuple[str, Callable[[str], bool]]] = [
    ("checkout (reset --hard)", lambda c: c.startswith("reset")),
    ("worktree add", lambda c: c.startswith("worktree add")),
    ("branches", lambda c: c.startswith(("show-ref", "update-ref --stdin (branches)"))),
    ("port leases", lambda c: c.startswith(("hash-object", "update-ref", "for-each-ref --format=%(objectname)"))),
    ("hook lookup", lambda c: c.startswith("rev-parse --git-path")),
    ("agent start", lambda c: c.startswith(("var ", "config ", "hook "))),
    ("plan (base, ids, branches)", lambda c: True),
]


def _sync_and_time(run: Callable[[], object], where: str) -> float:
    settle(where)  # the previous run's dirty pages and discards are done first, not charged to this one
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def plain(repo: str, root: str, tasks: int, env: dict[str, str], agent: str | None) -> float:
    """The seed's loop: one `git worktree add -b` per task (then its agent, if any); seconds."""
    os.makedirs(root, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []

    def loop() -> None:
        for i in range(1, tasks + 1):
            path = os.path.join(root, f"plain-{i}")
            subprocess.run(["git", "worktree", "add", "-q", "-b", f"plain-{i}", path, "main"],
                           cwd=repo, env=env, check=True, stdin=subprocess.DEVNULL)
            if agent:
                procs.append(subprocess.Popen([agent], cwd=path, env=env, stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, start_new_session=True))

    seconds = _sync_and_time(loop, repo)
    for proc in procs:
        proc.wait()
    shutil.rmtree(root)
    subprocess.run(["git", "worktree", "prune"], cwd=repo, env=env, check=True)
    refs = "".join(f"delete refs/heads/plain-{i}\n" for i in range(1, tasks + 1))
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, env=env, check=True, input=refs.encode())
    return seconds


def ours(repo: str, tasks: int, env: dict[str, str], agent: str | None, trace: str) -> float:
    """One `git agent-spawn` of all the tasks (with `env`'s git-agents); seconds."""
    ids = [str(i) for i in range(1, tasks + 1)]
    argv = ["git", "agent-spawn", "-q", *ids, "--prompt", "p", *(["--agent", agent] if agent else ["--no-agent"])]
    if os.path.exists(trace):
        os.unlink(trace)
    seconds = _sync_and_time(lambda: subprocess.run(argv, cwd=repo, env={**env, "GIT_AGENTS_TRACE": trace},
                                                    check=True, stdout=subprocess.DEVNULL,
                                                    stdin=subprocess.DEVNULL), repo)
    if agent:
        subprocess.run(["git", "agent-wait", "-q", "--all"], cwd=repo, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["git", "agent-clean", "-q", "--force", *ids], cwd=repo, env=env, check=True,
                   stdin=subprocess.DEVNULL)
    return seconds


def shares(trace: str, wall: float) -> str:
    """Where a traced spawn's git time went, step by step."""
    summed: dict[str, list[float]] = {name: [0, 0] for name, _ in STEPS}
    with open(trace, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            # trace: git-agents:   12.3 ms exit 0: git <args> (in <dir>)
            head, _, call = line.partition(": git ")
            if call.startswith("update-ref --stdin") and not any(summed[n][1] for n, _ in STEPS[:4]):
                call = "update-ref --stdin (branches)"  # the transaction before the first worktree is made
            ms = float(head.split()[2])
            name = next(n for n, match in STEPS if match(call))
            summed[name][0] += ms / 1000
            summed[name][1] += 1
    total = sum(s for s, _ in summed.values())
    rows = [f"    {name:<28} {n:4.0f} calls {s:7.2f} s {100 * s / total:5.1f} %"
            for name, (s, n) in summed.items() if n]
    return "\n".join([*rows, f"    git time {total:.2f} s in {wall:.2f} s of wall-clock time "
                             f"({total / wall:.1f} at once on average)"])


def exported(commit: str, into: str) -> dict[str, str]:
    """The PATH entries to run the git-agents of `commit` (its tree exported into `into`)."""
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
    os.makedirs(into)
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return {"PATH": f"{os.path.join(into, 'bin')}{os.pathsep}{os.environ['PATH']}"}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, nargs="+", default=[2000, 20000])
    p.add_argument("--tasks", type=int, default=48)
    p.add_argument("--rounds", type=int, default=2, help="runs of each side, alternated (ABBA)")
    p.add_argument("--modes", nargs="+", choices=("no-agent", "agent"), default=["no-agent", "agent"])
    p.add_argument("--before", metavar="<commit>", help="also run the git-agents of this commit")
    p.add_argument("--tree", metavar="<dir>", help="run the git-agents checked out there (default: this one's)")
    args = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="spawn-many-bench-")
    env = bench_env(tmp)
    if args.tree:  # e.g. a copy of this checkout, so that editing it meanwhile changes nothing
        env["PATH"] = f"{os.path.join(os.path.abspath(args.tree), 'bin')}{os.pathsep}{env['PATH']}"
    agent = os.path.join(tmp, "agent.sh")
    with open(agent, "w", encoding="utf-8") as fh:
        fh.write(AGENT)
    os.chmod(agent, 0o755)
    before_env = {**env, **exported(args.before, os.path.join(tmp, "before"))} if args.before else None
    trace = os.path.join(tmp, "trace")
    try:
        for files in args.files:
            repo = os.path.join(tmp, f"repo{files}")
            generate(repo, files)
            for mode in args.modes:
                with_agent = agent if mode == "agent" else None
                sides = ["plain", "ours", *(["before"] if before_env else [])]
                times: dict[str, list[float]] = {side: [] for side in sides}
                traced: dict[str, str] = {}
                for r in range(args.rounds):
                    for side in sides if r % 2 == 0 else reversed(sides):
                        if side == "plain":
                            times[side].append(plain(repo, os.path.join(tmp, "plain-wt"), args.tasks, env, with_agent))
                            continue
                        seconds = ours(repo, args.tasks, env if side == "ours" else before_env or env, with_agent,
                                       trace)
                        times[side].append(seconds)
                        traced[side] = shares(trace, seconds)
                med = {k: statistics.median(v) for k, v in times.items()}
                print(f"{files} files, {args.tasks} tasks, {mode}:")
                for side in sides:
                    print(f"  {side:<6} {med[side]:6.2f} s (runs: {' '.join(f'{t:.2f}' for t in times[side])})"
                          + ("" if side == "plain" else f"  {side} / plain = {med[side] / med['plain']:.2f}"))
                for side in sides[1:]:
                    print(f"  where {side}'s git time went (its last run):\n{traced[side]}")
                sys.stdout.flush()
            shutil.rmtree(repo, ignore_errors=True)
            shutil.rmtree(repo + "-worktrees", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
