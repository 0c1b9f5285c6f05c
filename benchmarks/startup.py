#!/usr/bin/env python3
"""Start-up time of git agent commands against `python3 -c pass` and `git worktree list`, same run.

    python3 benchmarks/startup.py [--runs N]

Builds throw-away repositories with no tasks, with 100 tasks (each with its branch, its worktree
and a finished agent; the metadata is written straight into the config file so the set-up is
fast) and with 100 tasks whose worktrees are gone, runs each command N times in turn, and prints
the medians and the differences. `status` must run one `git status` per worktree (unsaved
work cannot be known otherwise), so the shell loop doing only that is printed as its floor.
Targets: `git agent-spawn -h` within 80 ms of `python3 -c pass`; `git agent-status` with 100
tasks under 400 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sealed_env(home: Path) -> dict[str, str]:
    """The user's configuration cannot change the figures: HOME in the temp dir, no system config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "NO_COLOR"}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1",
               GIT_AUTHOR_NAME="B", GIT_AUTHOR_EMAIL="b@example.com", GIT_COMMITTER_NAME="B",
               GIT_COMMITTER_EMAIL="b@example.com",
               PATH=f"{ROOT / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return env


def git(cwd: Path, env: dict[str, str], *args: str, input: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, input=input, text=True, check=True,
                          capture_output=True).stdout


def make_repo(path: Path, env: dict[str, str]) -> None:
    path.mkdir(parents=True)
    git(path, env, "init", "-q", "-b", "main")
    (path / "README").write_text("readme\n")
    git(path, env, "add", ".")
    git(path, env, "commit", "-q", "-m", "initial")


def add_tasks(path: Path, env: dict[str, str], count: int, *, worktrees: bool) -> None:
    """`count` finished tasks, as spawn would leave them after their agents exited 0 (without
    worktrees: as if someone had deleted them, so status asks no worktree for unsaved work)."""
    head = git(path, env, "rev-parse", "HEAD").strip()
    root = path.parent / f"{path.name}-worktrees"
    git(path, env, "update-ref", "--stdin",
        input="".join(f"create refs/heads/task-{i} {head}\n" for i in range(count)))
    config = []
    for i in range(count):
        worktree = root / f"task-{i}"
        if worktrees:
            git(path, env, "worktree", "add", "-q", str(worktree), f"task-{i}")
        task_dir = path / ".git" / "agents" / "tasks" / str(i)
        task_dir.mkdir(parents=True)
        (task_dir / "exit").write_text(f"0 {int(time.time())}\n")
        config.append(f'[agent-task "{i}"]\n\ttitle = task {i}\n\tbranch = task-{i}\n\tworktree = {worktree}\n'
                      f"\tbase = main\n\tbaseCommit = {head}\n\tagent = true\n\tpid = 1\n"
                      f"\tcreated = 2026-01-01T00:00:00+00:00\n\tstarted = 2026-01-01T00:00:00+00:00\n")
    with open(path / ".git" / "config", "a", encoding="utf-8") as fh:
        fh.write("".join(config))


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} exited {proc.returncode}: {proc.stderr.decode()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()
    # As after `pip install`, which compiles the modules: PYTHONDONTWRITEBYTECODE (set in some
    # environments) would otherwise make every run compile the package from source.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "git_agents")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "home").mkdir()
        env = sealed_env(base / "home")
        empty, full, bare = base / "empty" / "repo", base / "full" / "repo", base / "config" / "repo"
        for repo in (empty, full, bare):
            make_repo(repo, env)
        add_tasks(full, env, args.tasks, worktrees=True)
        add_tasks(bare, env, args.tasks, worktrees=False)
        cases = {
            "python3 -c pass": (["python3", "-c", "pass"], empty),
            "git worktree list": (["git", "worktree", "list"], empty),
            "git agent-spawn -h": (["git", "agent-spawn", "-h"], empty),
            "git agent-status (0 tasks)": (["git", "agent-status"], empty),
            f"git agent-status ({args.tasks} tasks)": (["git", "agent-status"], full),
            f"git agent-status ({args.tasks}, no worktrees)": (["git", "agent-status"], bare),
            f"git worktree list ({args.tasks} worktrees)": (["git", "worktree", "list"], full),
            # the floor for status: it must ask git once per worktree whether it holds unsaved work
            f"sh: git status in {args.tasks} worktrees": (
                ["sh", "-c", 'for d in "$0"/*; do git -C "$d" --no-optional-locks status --porcelain; done',
                 str(full.parent / "repo-worktrees")], full),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for argv, cwd in cases.values():  # warm-up
            timed(argv, cwd, env)
        for _ in range(args.runs):  # interleaved, so load on the machine hits every case alike
            for name, (argv, cwd) in cases.items():
                times[name].append(timed(argv, cwd, env))
    med = {name: statistics.median(values) * 1000 for name, values in times.items()}
    python, git_ms = med["python3 -c pass"], med["git worktree list"]
    print(f"medians of {args.runs} runs (ms); difference and ratio against python3 -c pass and git worktree list")
    for name, ms in med.items():
        print(f"{name:36} {ms:7.1f}   {ms - python:+7.1f} vs python   x{ms / git_ms:5.1f} git")
    help_gap = med["git agent-spawn -h"] - python
    status_full = med[f"git agent-status ({args.tasks} tasks)"]
    print(f"\ntarget: -h within 80 ms of python3 -c pass: {help_gap:+.1f} ms -> {'ok' if help_gap <= 80 else 'MISSED'}")
    print(f"target: status with {args.tasks} tasks under 400 ms: {status_full:.1f} ms -> "
          f"{'ok' if status_full < 400 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
