#!/usr/bin/env python3
"""Resolve benchmark: a 40-task `git agent-run` in which 10 tasks conflict, with and without `resolve`.

Tasks come in pairs of the same line of one file (conflicts.txt, line k for pair k): the first
of each of the first 10 pairs merges, the second conflicts with it. Every other task adds a
file of its own. The agent is a shell script; started as a resolver (a merge is in progress in
its worktree) it keeps both sides of each conflicting file and commits the merge, as the prompt
asks. The same task file runs twice in fresh copies of the repository: with `resolve = true`
(every task must merge, unattended) and without it (the 10 conflicting tasks stay unmerged).
Prints both wall times and the cost per resolved task.

    python benchmarks/resolve.py [--tasks 40] [--conflicts 10] [--jobs 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

AGENT = r"""#!/bin/sh
if git rev-parse -q --verify MERGE_HEAD >/dev/null; then
  for f in $(git diff --name-only --diff-filter=U); do
    sed -i '/^<<<<<<< /d;/^=======$/d;/^>>>>>>> /d' "$f"
    git add "$f"
  done
  exec git commit -q --no-edit
fi
line=$(cat "$GIT_AGENT_PROMPT_FILE" | sed -n 's/.*EDIT LINE \([0-9]*\).*/\1/p' | head -1)
if [ -n "$line" ]; then
  sed -i "${line}s/\$/ (task $GIT_AGENT_TASK)/" conflicts.txt
else
  echo "work of $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt"
fi
git add -A && git commit -q -m "task $GIT_AGENT_TASK"
"""


def sh(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, check=False, capture_output=True, text=True)


def setup(tmp: Path, tasks: int, conflicts: int, jobs: int, resolve: bool, env: dict[str, str]) -> Path:
    """A fresh project and its task file; returns the task file."""
    project = tmp / "project"
    project.mkdir(parents=True)
    sh(["git", "init", "-q", "-b", "main"], project, env)
    (project / "conflicts.txt").write_text("".join(f"line {k}\n\n\n" for k in range(1, conflicts + 1)))
    sh(["git", "add", "."], project, env)
    sh(["git", "commit", "-q", "-m", "initial"], project, env)
    agent = tmp / "agent.sh"
    agent.write_text(AGENT)
    agent.chmod(0o755)
    lines = [f'agent = "{agent}"', 'base = "main"', f"jobs = {jobs}"] + (["resolve = true"] if resolve else [])
    for i in range(1, tasks + 1):
        pair = (i + 1) // 2  # tasks 2k-1 and 2k edit line 3k-2 of conflicts.txt, for the first `conflicts` pairs
        edit = f"EDIT LINE {3 * pair - 2}" if pair <= conflicts else "add your own file"
        lines += ["[[task]]", f'id = "{i}"', f'prompt = "task {i}: {edit}"']
    taskfile = tmp / "tasks.toml"
    taskfile.write_text("\n".join(lines) + "\n")
    return taskfile


def run_once(tasks: int, conflicts: int, jobs: int, resolve: bool, env: dict[str, str]) -> tuple[float, str, int]:
    """(wall seconds, the report's summary line, merges on main) of one run."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        taskfile = setup(tmp, tasks, conflicts, jobs, resolve, env)
        project = tmp / "project"
        start = time.perf_counter()
        proc = sh(["git", "agent-run", str(taskfile)], project, env)
        seconds = time.perf_counter() - start
        merges = len(sh(["git", "rev-list", "--first-parent", "--merges", "main"], project, env).stdout.split())
        return seconds, proc.stdout.strip().splitlines()[-1], merges


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=40)
    ap.add_argument("--conflicts", type=int, default=10, help="how many tasks conflict (one per pair)")
    ap.add_argument("--jobs", type=int, default=4)
    args = ap.parse_args()
    env = {**os.environ, "PATH": f"{ROOT / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    plain, plain_summary, plain_merges = run_once(args.tasks, args.conflicts, args.jobs, False, env)
    resolved, resolved_summary, resolved_merges = run_once(args.tasks, args.conflicts, args.jobs, True, env)
    print(f"{args.tasks} tasks, {args.conflicts} of them conflicting, {args.jobs} agents at a time")
    print(f"  without resolve: {plain:6.1f} s  {plain_summary} ({plain_merges} merges on main)")
    print(f"  resolve = true:  {resolved:6.1f} s  {resolved_summary} ({resolved_merges} merges on main)")
    print(f"  cost per resolved task: {(resolved - plain) / max(1, args.conflicts):.2f} s")
    ok = resolved_merges == args.tasks and plain_merges == args.tasks - args.conflicts
    if not ok:
        print("unexpected: every task should merge with resolve, all but the conflicting ones without", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
