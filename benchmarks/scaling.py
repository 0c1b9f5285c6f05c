"""Benchmark: the cost per task of spawn, status, merge --all and clean --merged, from 1 to 200 tasks.

    python -m benchmarks.scaling [--tasks 1,10,50,100,200] [--files 2000] [--keep DIR]

For each number of tasks N, a generated repository (benchmarks/genrepo.py) of 2,000 files gets
N tasks from one `git agent-spawn --agent <command> <ids>`, each agent making its task's one
commit (one file edited; one task in five, from the 5th, edits the line the task before it
edited, so 20 % of the tasks conflict) and exiting. The script waits for the agents and for
their worktrees' seals (untimed), then times, in this order, `git agent-status`, `git
agent-merge --all` and `git agent-clean --merged`, and prints each command's time divided by
N. A cost that grows faster than linearly shows as a time per task that grows with N; the
last column of each command is its time per task against that at the smallest N above 1
(1.0: linear).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.genrepo import add_branches, bench_dir, bench_env, file_content, file_path, generate  # noqa: E402

COMMANDS = ("spawn", "status", "merge", "clean")


def edits(n_tasks: int, n_files: int) -> dict[str, dict[str, str]]:
    """Each task's one edit; a task k with k % 5 == 0 edits the same line of task k-1's file."""
    stride = max(1, n_files // (n_tasks + 1))
    branches = {}
    for k in range(1, n_tasks + 1):
        i = (k - 1 if k % 5 == 0 else k) * stride % n_files
        branches[f"work-{k}"] = {file_path(i): file_content(i).replace("line 2", f"line 2 edited by task {k}")}
    return branches


def timed(argv: list[str], cwd: str, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    """Wall-clock seconds of one command, whose exit status must be in `ok`."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return seconds


def wait_sealed(repo: str, ids: list[str], timeout: float = 600) -> int:
    """Wait until every task's worktree is sealed, or its watcher said why not; how many are sealed."""
    tasks = os.path.join(repo, ".git", "agents", "tasks")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        settled = [i for i in ids if os.path.exists(os.path.join(tasks, i, "seal"))
                   or os.path.exists(os.path.join(tasks, i, "unsealed"))]
        if len(settled) == len(ids):
            break
        time.sleep(0.1)
    return sum(os.path.exists(os.path.join(tasks, i, "seal")) for i in ids)


def one_size(workdir: str, n_tasks: int, n_files: int) -> dict[str, float]:
    """Seconds of each command with `n_tasks` tasks."""
    path = os.path.join(workdir, f"repo-{n_tasks}")
    env = bench_env(workdir)
    generate(path, n_files)
    add_branches(path, edits(n_tasks, n_files))
    ids = [str(k) for k in range(1, n_tasks + 1)]
    times = {"spawn": timed(["git", "agent-spawn", "-q", "--agent", "git reset -q --hard work-$GIT_AGENT_TASK",
                             *ids], path, env)}
    subprocess.run(["git", "agent-wait", *ids], cwd=path, env=env, check=True, stdout=subprocess.DEVNULL)
    sealed = wait_sealed(path, ids)
    print(f"{n_tasks} tasks: {sealed} of {n_tasks} worktrees sealed", file=sys.stderr)
    times["status"] = timed(["git", "agent-status"], path, env)
    conflicting = n_tasks // 5
    times["merge"] = timed(["git", "agent-merge", "--all"], path, env, ok=(1,) if conflicting else (0,))
    merged = subprocess.run(["git", "rev-list", "--count", "--merges", "main"], cwd=path, env=env, check=True,
                            capture_output=True, text=True).stdout.strip()
    assert merged == str(n_tasks - conflicting), f"{merged} merged of {n_tasks}"
    times["clean"] = timed(["git", "agent-clean", "--merged"], path, env)
    subprocess.run(["git", "agent-clean", "--force", "--all"], cwd=path, env=env, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(f"{path}-worktrees", ignore_errors=True)
    return times


def main() -> int:
    """Run the benchmark and print one line per number of tasks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="1,10,50,100,200", help="numbers of tasks, comma-separated")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR (default: a temporary directory)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.tasks.split(",")]
    reference = next((n for n in sizes if n > 1), sizes[0])
    print(f"{args.files} files; ms per task (and against {reference} tasks)")
    print(f"{'tasks':>6}  " + "  ".join(f"{c:>16}" for c in COMMANDS))
    per_task: dict[int, dict[str, float]] = {}
    with bench_dir(args.keep, "bench-scaling-") as workdir:
        for n in sizes:
            times = one_size(workdir, n, args.files)
            per_task[n] = {c: times[c] / n for c in COMMANDS}
            base = per_task.get(reference)
            cells = [f"{per_task[n][c] * 1000:8.1f}" + (f" ({per_task[n][c] / base[c]:4.2f}x)" if base else " " * 8)
                     for c in COMMANDS]
            print(f"{n:>6}  " + "  ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
