#!/usr/bin/env python3
"""Scale-out benchmark: N tasks whose agents sleep S seconds, run by 1 worker and by 3 workers.

Each worker runs in its own clone ("machine") of a bare repository served by `git daemon` on
127.0.0.1, as in tests/test_remote.py. Prints both wall-clock times, the speed-up (target: at
least 2.5x for 3 workers) and each run against its ideal (N*S/workers: pure agent time, zero
overhead), so the coordination cost per task can be read off.

    python benchmarks/scaleout.py [--tasks 30] [--sleep 2] [--workers 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sh(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(args, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def setup(tmp: Path, tasks: int, sleep: float, env: dict[str, str]) -> tuple[Path, subprocess.Popen[bytes], str]:
    """A project, its bare copy served by git daemon, and a task file; returns (task file, daemon, url)."""
    project = tmp / "project"
    project.mkdir()
    sh(["git", "init", "-q"], project, env)
    (project / "README").write_text("readme\n")
    sh(["git", "add", "."], project, env)
    sh(["git", "commit", "-q", "-m", "initial"], project, env)
    srv = tmp / "srv"
    srv.mkdir()
    agent = tmp / "agent.sh"
    agent.write_text(f"""#!/bin/sh
sleep {sleep}
echo "work of $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt"
git add "file-$GIT_AGENT_TASK.txt" && git commit -q -m "task $GIT_AGENT_TASK"
""")
    agent.chmod(0o755)
    taskfile = tmp / "tasks.toml"
    lines = [f'agent = "{agent}"', 'base = "main"']
    for i in range(1, tasks + 1):
        lines += ["[[task]]", f'id = "{i}"', f'prompt = "task {i}"']
    taskfile.write_text("\n".join(lines) + "\n")
    port = free_port()
    daemon = subprocess.Popen(["git", "daemon", "--reuseaddr", f"--base-path={srv}", "--export-all",
                               "--enable=receive-pack", "--listen=127.0.0.1", f"--port={port}", str(srv)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return taskfile, daemon, f"git://127.0.0.1:{port}"


def one_run(tmp: Path, project: Path, url_base: str, name: str, taskfile: Path, workers: int,
            env: dict[str, str]) -> float:
    """Publish the tasks to a fresh remote and time `workers` workers draining the queue."""
    sh(["git", "clone", "-q", "--bare", str(project), str(tmp / "srv" / f"{name}.git")], tmp, env)
    url = f"{url_base}/{name}.git"
    deadline = time.monotonic() + 10
    while subprocess.run(["git", "ls-remote", url], env=env, capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            sys.exit("git daemon did not start")
        time.sleep(0.05)
    clones = []
    for n in range(workers):
        where = tmp / f"{name}-machine{n}"
        sh(["git", "clone", "-q", url, str(where)], tmp, env)
        clones.append(where)
    sh(["git", "agent-queue", "push", str(taskfile)], clones[0], env)
    start = time.perf_counter()
    procs = [subprocess.Popen(["git-agent-worker", "--once", "--poll", "0.5", "--lease", "60"], cwd=c, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in clones]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - start
    if any(codes):
        sys.exit(f"a worker failed: exit codes {codes}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        home = tmp / "home"
        home.mkdir()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, "HOME": str(home),
               "GIT_CONFIG_NOSYSTEM": "1", "PATH": f"{ROOT / 'bin'}{os.pathsep}{os.environ['PATH']}",
               "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
               "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
        (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
        taskfile, daemon, url = setup(tmp, args.tasks, args.sleep, env)
        try:
            one = one_run(tmp, tmp / "project", url, "one", taskfile, 1, env)
            many = one_run(tmp, tmp / "project", url, "many", taskfile, args.workers, env)
        finally:
            daemon.terminate()
            daemon.wait()
    ideal_one = args.tasks * args.sleep
    ideal_many = ideal_one / args.workers
    print(f"{args.tasks} tasks, agents sleep {args.sleep:g} s, git daemon on 127.0.0.1, {os.cpu_count()} CPUs")
    print(f"1 worker:  {one:7.1f} s  (ideal {ideal_one:.1f} s; overhead {(one - ideal_one) / args.tasks:.2f} s/task)")
    print(f"{args.workers} workers: {many:7.1f} s  (ideal {ideal_many:.1f} s;"
          f" overhead {(many - ideal_many) * args.workers / args.tasks:.2f} s/task)")
    print(f"speed-up: {one / many:.2f}x (target >= 2.5x for 3 workers; ideal {args.workers:.1f}x)")


if __name__ == "__main__":
    main()
