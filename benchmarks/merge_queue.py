"""Benchmark: `git agent-merge --all` against the sequential `git merge --no-ff` loop.

    python -m benchmarks.merge_queue [--files 20000,100000] [--worktrees full,sparse,unsealed,none]
                                     [--tasks 20] [--repeat 3] [--keep DIR] [--hooks]
    python -m benchmarks.merge_queue --files 200,2000 --tasks 16 --worktrees full --repeat 7
                                     # everyday sizes: the fixed cost of a run shows

For each size, a generated repository (benchmarks/genrepo.py) gets 20 tasks (--tasks) made as
spawn makes them: `git agent-spawn --agent <command>`, a worktree and a branch each, whose agent
makes the task's one commit of 5 changed files (one in six, from the 8th, conflicts with a task
merged before it: 3 of 20) and exits. With `sparse` each worktree is a cone of the directories its task edits.
The agents' worktrees are sealed when they exit (tasks/seal.py: a watcher keeps the result of
one full uncommitted-work check true until the worktree changes), and the script waits for
the seals before timing, as a user merging after the agents have finished would find them;
`unsealed` turns seals off (agent.sealWorktrees=false), so merge runs `git status` in every
task worktree; `none` records the tasks without worktrees, as this benchmark did at first.
Both ways of merging run on the same repository from the same starting state, alternately
(loop first, then git agent-merge first, and so on, so that neither side always follows the
other), and the script prints the median time of each and their ratio. git-agents runs with its
modules' bytecode compiled, as an installed package has it (genrepo.bench_env). It also asserts that both end
with the same history: the same trees, second parents and messages along main's first-parent
chain.

With --hooks each size is also measured with git merge's hooks present (a commit-msg hook
that adds a trailer, and pre-merge-commit, prepare-commit-msg and post-merge hooks that exit 0),
which both ways run: the "+hooks" line, and what the hooks cost each way against the line without.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.genrepo import (  # noqa: E402
    add_branches,
    bench_dir,
    bench_env,
    file_content,
    file_path,
    generate,
    warm_bytecode,
)

TASKS = 20
FILES_PER_TASK = 5
# task -> the earlier task whose file it also edits (the same line, differently): 3 of 20 conflict
CONFLICTS = {8: 3, 14: 9, 20: 15}


def set_tasks(count: int) -> None:
    """Use `count` tasks, one in six conflicting from the 8th, as with 20."""
    global TASKS, CONFLICTS
    TASKS = count
    CONFLICTS = {k: k - 5 for k in range(8, count + 1, 6)}


def git(repo: str, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    """Run git in `repo`; fail loudly on an unexpected exit status."""
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if proc.returncode not in ok:
        raise RuntimeError(f"git {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def task_files(n_files: int) -> dict[str, dict[str, str]]:
    """Each task's edits: 5 files spread over the tree; conflicting tasks reuse one earlier task's file."""
    stride = n_files // (TASKS * FILES_PER_TASK + 1)
    branches: dict[str, dict[str, str]] = {}
    for k in range(1, TASKS + 1):
        edits = {}
        for j in range(FILES_PER_TASK):
            i = ((k - 1) * FILES_PER_TASK + j) * stride + 7
            edits[file_path(i)] = file_content(i).replace("line 2", f"line 2 edited by task {k}")
        if k in CONFLICTS:
            i = (CONFLICTS[k] - 1) * FILES_PER_TASK * stride + 7  # the first file of the earlier task
            edits[file_path(i)] = file_content(i).replace("line 2", f"line 2 rewritten by task {k}")
            edits.pop(next(iter(edits)))  # keep 5 files
        branches[f"task-{k}"] = edits
    return branches


def prepare(path: str, n_files: int, worktrees: str) -> str:
    """Generate the repository, its tasks (as spawn makes them) and their commits; return main's commit."""
    base = generate(path, n_files)
    edits = task_files(n_files)
    if worktrees == "none":
        add_branches(path, edits)
        for k in range(1, TASKS + 1):
            for key, value in (("title", f"bench task {k}"), ("branch", f"task-{k}"), ("base", "main"),
                               ("baseCommit", base), ("created", "2026-01-01T00:00:00+00:00")):
                git(path, "config", f"agent-task.{k}.{key}", value)
    else:
        add_branches(path, {f"work-{k}": edits[f"task-{k}"] for k in range(1, TASKS + 1)})
        env = {**os.environ, "PATH": f"{ROOT / 'bin'}{os.pathsep}{os.environ['PATH']}"}
        if worktrees == "unsealed":
            git(path, "config", "agent.sealWorktrees", "false")
        for k in range(1, TASKS + 1):
            sparse = ["--sparse", *sorted({os.path.dirname(f) for f in edits[f"task-{k}"]}), "--"] \
                if worktrees == "sparse" else []
            # The agent's one commit: its branch moves to the prepared commit, files and all.
            subprocess.run(["git", "agent-spawn", "-q", "--title", f"bench task {k}", "--agent",
                            f"git reset -q --hard work-{k}", *sparse, str(k)], cwd=path, env=env, check=True)
        subprocess.run(["git", "agent-wait", *map(str, range(1, TASKS + 1))], cwd=path, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        for k in range(1, TASKS + 1):
            git(path, "branch", "-q", "-D", f"work-{k}")
        if worktrees != "unsealed":
            deadline = time.monotonic() + 120
            seals = os.path.join(path, ".git", "agents", "tasks", "{}", "seal")
            while sum(os.path.exists(seals.format(k)) for k in range(1, TASKS + 1)) < TASKS:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            sealed = sum(os.path.exists(seals.format(k)) for k in range(1, TASKS + 1))
            print(f"{sealed} of {TASKS} task worktrees sealed", file=sys.stderr)
    shutil.copy(os.path.join(path, ".git", "config"), os.path.join(path, ".git", "config.pristine"))
    return base


def reset(path: str, base: str) -> None:
    """Back to the starting state: main at base, no notes, pristine task records (untimed)."""
    git(path, "reset", "-q", "--hard", base)
    git(path, "update-ref", "-d", "refs/notes/agents", ok=(0, 1))
    shutil.copy(os.path.join(path, ".git", "config.pristine"), os.path.join(path, ".git", "config"))
    git(path, "status", "--porcelain")  # refresh the index so neither side pays for the other's leftovers


def merge_loop(path: str) -> float:
    """The sequential loop a user would type; returns seconds."""
    start = time.perf_counter()
    for k in range(1, TASKS + 1):
        proc = git(path, "merge", "--no-ff", "-q", "-m", f"feat: Task {k} - bench task {k}", f"task-{k}", ok=(0, 1))
        if proc.returncode != 0:
            git(path, "merge", "--abort")
    return time.perf_counter() - start


def agent_merge(path: str) -> float:
    """`git agent-merge --all`, run through git as a user would; returns seconds."""
    env = bench_env(os.environ["HOME"])
    start = time.perf_counter()
    proc = subprocess.run(["git", "agent-merge", "--all"], cwd=path, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    expected_tail = f"{TASKS - len(CONFLICTS)} merged, {len(CONFLICTS)} not merged"
    if proc.returncode != 1 or proc.stdout.splitlines()[-1:] != [expected_tail]:
        raise RuntimeError(f"git agent-merge --all exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return seconds


def history(path: str, base: str) -> list[str]:
    """Tree, second parent and message of each first-parent commit since `base`."""
    out = git(path, "log", "--first-parent", "-z", "--format=%T %P%n%B", f"{base}..main").stdout
    rows = []
    for entry in filter(None, out.split("\0")):
        head, _, message = entry.strip("\n").partition("\n")
        tree, *parents = head.split()
        rows.append(f"{tree} {parents[1:]} {message.strip()}")
    return rows


HOOKS = {"pre-merge-commit": "exit 0", "prepare-commit-msg": "exit 0", "post-merge": "exit 0",
         "commit-msg": 'printf "\\nReviewed-by: Hook <hook@example.com>\\n" >> "$1"'}


def set_hooks(path: str, present: bool) -> None:
    """Install (or remove) the benchmark's merge hooks in the repository's hooks directory."""
    for name, body in HOOKS.items():
        hook = os.path.join(path, ".git", "hooks", name)
        if present:
            with open(hook, "w") as fh:
                fh.write(f"#!/bin/sh\n{body}\n")
            os.chmod(hook, 0o755)
        elif os.path.exists(hook):
            os.unlink(hook)


def bench(size: int, worktrees: str, repeat: int, workdir: str,
          hooks: tuple[bool, ...] = (False,)) -> dict[bool, tuple[float, float]]:
    """Median seconds of (loop, agent-merge) at one repository size, without and/or with hooks."""
    path = os.path.join(workdir, f"repo-{size}-{worktrees}")
    t0 = time.perf_counter()
    base = prepare(path, size, worktrees)
    print(f"{size} files, {worktrees} worktrees: prepared in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    loops: dict[bool, list[float]] = {h: [] for h in hooks}
    agents: dict[bool, list[float]] = {h: [] for h in hooks}
    expected: dict[bool, list[str]] = {}
    for n in range(repeat):
        for with_hooks in hooks:  # alternately, so that both see the same machine
            set_hooks(path, with_hooks)
            for loop in (True, False) if n % 2 == 0 else (False, True):
                reset(path, base)
                if loop:
                    loops[with_hooks].append(merge_loop(path))
                    expected.setdefault(with_hooks, history(path, base))
                    continue
                agents[with_hooks].append(agent_merge(path))
                assert git(path, "status", "--porcelain").stdout == ""
                got = history(path, base)
                assert len(got) == TASKS - len(CONFLICTS)
                assert got == expected[with_hooks], f"histories differ at {size} files:\n{expected}\n{got}"
    shutil.rmtree(path)
    shutil.rmtree(f"{path}-worktrees", ignore_errors=True)
    return {h: (statistics.median(loops[h]), statistics.median(agents[h])) for h in hooks}


def main() -> int:
    """Run the benchmark and print one line per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", "--sizes", dest="sizes", default="20000,100000",
                        help="repository sizes, comma-separated (default 20000,100000)")
    parser.add_argument("--worktrees", default="full,sparse,unsealed",
                        help="task worktrees: full, sparse, unsealed and/or none, comma-separated "
                             "(default full,sparse,unsealed)")
    parser.add_argument("--tasks", type=int, default=TASKS, help="tasks per repository (default 20)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR (default: a temporary directory)")
    parser.add_argument("--hooks", action="store_true", help="also measure with git merge's hooks present")
    args = parser.parse_args()
    set_tasks(args.tasks)
    warm_bytecode()
    print(f"{TASKS} tasks")
    print(f"{'files':>8}  {'worktrees':>9}  {'git merge --no-ff loop':>22}  {'git agent-merge --all':>21}  ratio")
    with bench_dir(args.keep, "bench-merge-queue-") as workdir:
        # A neutral git configuration, as in the tests.
        os.environ.update(GIT_CONFIG_NOSYSTEM="1", HOME=workdir, GIT_AUTHOR_NAME="Bench", GIT_COMMITTER_NAME="Bench",
                          GIT_AUTHOR_EMAIL="bench@example.com", GIT_COMMITTER_EMAIL="bench@example.com")
        for size in (int(s) for s in args.sizes.split(",")):
            for kind in args.worktrees.split(","):
                results = bench(size, kind, args.repeat, workdir, (False, True) if args.hooks else (False,))
                for with_hooks, (loop, agent) in results.items():
                    label = kind + ("+hooks" if with_hooks else "")
                    print(f"{size:>8}  {label:>9}  {loop * 1000:>19.0f} ms  {agent * 1000:>18.0f} ms  "
                          f"{loop / agent:5.2f}x", flush=True)
                if args.hooks:
                    (loop0, agent0), (loop1, agent1) = results[False], results[True]
                    merges = TASKS - len(CONFLICTS)
                    print(f"{'':>8}  {'hooks cost':>9}  {(loop1 - loop0) * 1000:>+19.0f} ms  "
                          f"{(agent1 - agent0) * 1000:>+18.0f} ms  (per merge: loop "
                          f"{(loop1 - loop0) / merges * 1000:+.0f} ms, agent-merge "
                          f"{(agent1 - agent0) / merges * 1000:+.0f} ms)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
