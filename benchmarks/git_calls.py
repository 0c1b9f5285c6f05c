"""Benchmark: how many git processes `git agent-spawn` and `git agent-pool claim --task` start.

    python -m benchmarks.git_calls                  # this checkout
    python -m benchmarks.git_calls --before ceedf16  # and, for comparison, the tree of another commit

Each command runs once in a fresh repository (two files, sealed environment) with
GIT_AGENTS_TRACE pointing at a file; the count is the number of lines in that file, one per git
process the command started (the agent's own git calls are not counted: spawn starts `true`).
A commit given with --before is exported with `git archive` into a temporary directory and run
from there, so the working tree is never touched.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env(tree: Path, home: Path, trace: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1",
               GIT_AUTHOR_NAME="B", GIT_AUTHOR_EMAIL="b@example.com", GIT_COMMITTER_NAME="B",
               GIT_COMMITTER_EMAIL="b@example.com", GIT_AGENTS_TRACE=str(trace),
               PATH=f"{tree / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return env


def count(tree: Path) -> dict[str, int]:
    """Git processes started by each measured command, run from the git-agents checkout `tree`."""
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        home = base / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
        repo = base / "project"
        repo.mkdir()
        trace = base / "trace"
        env = _env(tree, home, trace)
        env_quiet = {**env, "GIT_AGENTS_TRACE": ""}

        def git(*args: str, counted: bool = False) -> None:
            subprocess.run(["git", *args], cwd=repo, env=env if counted else env_quiet, check=True,
                           capture_output=True)

        git("init", "-q")
        (repo / "README").write_text("readme\n")
        git("add", ".")
        git("commit", "-q", "-m", "initial")
        for name, args in (("agent-spawn", ["agent-spawn", "1", "--prompt", "do it", "--agent", "true"]),
                           ("agent-pool claim --task", ["agent-pool", "claim", "--task", "2", "--prompt", "do it"])):
            if name.startswith("agent-pool"):
                git("agent-pool", "create", "1")
            trace.write_text("")
            git(*args, counted=True)
            result[name] = len(trace.read_text().splitlines())
    return result


def main() -> int:
    """Print the counts for this checkout (and for --before COMMIT)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", metavar="COMMIT", help="also measure the tree of this commit")
    args = parser.parse_args()
    columns = {"this checkout": count(ROOT)}
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(["git", "archive", args.before], cwd=ROOT, check=True, capture_output=True)
            subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
            columns = {args.before: count(Path(tmp)), **columns}
    names = list(next(iter(columns.values())))
    print(f"{'git processes started by':28}" + "".join(f"{c:>16}" for c in columns))
    for name in names:
        print(f"{'git ' + name:28}" + "".join(f"{columns[c][name]:>16}" for c in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
