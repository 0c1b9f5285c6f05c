"""Several git agent-* processes at once: nothing may be lost or half-written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import BIN, ROOT, Project, run, write_script


def _start_together(commands: list[list[str]], cwd: Path,
                    env: dict[str, str] | None = None) -> list[subprocess.CompletedProcess[str]]:
    """Start every command at the same moment (they wait on a barrier file), collect the results."""
    go = cwd.parent / "go"
    procs = [subprocess.Popen(["sh", "-c", f'while [ ! -e "{go}" ]; do sleep 0.01; done; exec "$@"', "racer", *cmd],
                              cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for cmd in commands]
    go.write_text("go")
    results = []
    for cmd, proc in zip(commands, procs):
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    go.unlink()
    return results


def test_twenty_spawns_at_the_same_moment(project: Project, committing_agent: Path) -> None:
    ids = [str(i) for i in range(1, 21)]
    results = _start_together([["git", "agent-spawn", i, "--title", f"title {i}", "--prompt", f"do {i}",
                                "--agent", str(committing_agent)] for i in ids], project.path)
    failures = [(r.args, r.returncode, r.stderr) for r in results if r.returncode != 0]
    assert failures == []
    project.ok("wait", "--all", "--timeout", "120")
    rows = json.loads(project.ok("status", "--json").stdout)["tasks"]
    assert [r["id"] for r in rows] == ids
    for r in rows:
        assert r["title"] == f"title {r['id']}"
        assert (r["branch"], r["state"], r["ahead"], r["files_changed"]) == (f"task-{r['id']}", "exited 0", 1, 1)
        assert r["worktree_exists"] and r["pid"] is not None and r["started"]
    worktrees = project.git("worktree", "list", "--porcelain").count("\nworktree ")
    assert worktrees == 20
    merge = project.ok("merge", "--all")
    assert merge.stdout.splitlines()[-1] == "20 merged, 0 not merged"
    assert len(project.git("notes", "--ref=refs/notes/agents", "list").splitlines()) == 20


def _race_python(project: Project, script: str, args: list[list[str]]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = _start_together([[sys.executable, "-c", script, *a] for a in args], project.path, env)
    assert [(r.returncode, r.stderr) for r in results if r.returncode] == []


def test_config_metadata_writes_race_without_loss(project: Project) -> None:
    """40 processes write task metadata at once (plain `git config` loses a quarter of these)."""
    script = (
        "import sys\n"
        "from git_agents.core.repo import Repo\n"
        "from git_agents.tasks.store import write_task\n"
        "i = sys.argv[1]\n"
        "write_task(Repo.discover(), 'r' + i, title='title ' + i, branch='b' + i, state='s' + i)\n"
    )
    _race_python(project, script, [[str(i)] for i in range(40)])
    for i in range(40):
        assert project.git("config", "--get-regexp", f"^agent-task\\.r{i}\\.").splitlines() == [
            f"agent-task.r{i}.title title {i}", f"agent-task.r{i}.branch b{i}", f"agent-task.r{i}.state s{i}"]


def test_notes_race_without_loss(project: Project) -> None:
    """30 processes add notes to 30 commits at once (plain `git notes add` keeps only a few), while 10
    more write a merge run's notes (three commits in one notes commit each): every note survives."""
    base = project.git("rev-parse", "HEAD")
    commits = [project.git("commit-tree", "HEAD^{tree}", "-p", base, "-m", f"c{i}") for i in range(60)]
    script = (
        "import sys\n"
        "from git_agents.core.repo import Repo\n"
        "from git_agents.tasks.notes import add_note, add_notes\n"
        "if len(sys.argv) == 3:\n"
        "    add_note(Repo.discover(), sys.argv[2], {'task': sys.argv[1]})\n"
        "else:\n"
        "    add_notes(Repo.discover(), {c: {'task': c[:7]} for c in sys.argv[1:]})\n"
    )
    runs = [commits[i:i + 3] for i in range(30, 60, 3)]
    _race_python(project, script, [[str(i), c] for i, c in enumerate(commits[:30])] + runs)
    for i, commit in enumerate(commits):
        task = str(i) if i < 30 else commit[:7]
        assert project.git("notes", "--ref=refs/notes/agents", "show", commit) == f"git-agents-note: 1\ntask: {task}"


def test_whole_records_race_with_each_other_and_with_git_config(project: Project) -> None:
    """30 processes record whole tasks while 20 `git config` writers run beside them: every record
    is whole (written in one step, git's config.lock honoured), every git write survives, and a
    record costs no git process."""
    script = (
        "import sys\n"
        "from git_agents.core.repo import Repo\n"
        "from git_agents.tasks.store import Task, create_task\n"
        "i = sys.argv[1]\n"
        "create_task(Repo.discover(), Task('r' + i, title='title ' + i + '\\nsecond line', branch='b' + i,\n"
        "            worktree='/w/caf\\udce9 ' + i, slot='pool-' + i, base='main', created='2024-01-01'))\n"
    )
    trace = project.path.parent / "trace"
    writers = [["sh", "-c", f'until git config --add user.race{i} v{i} 2>/dev/null; do sleep 0.01; done']
               for i in range(20)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GIT_AGENTS_TRACE": str(trace)}
    results = _start_together([[sys.executable, "-c", script, str(i)] for i in range(30)] + writers,
                              project.path, env)
    assert [(r.returncode, r.stderr) for r in results if r.returncode] == []
    for i in range(30):
        raw = subprocess.run(["git", "config", "--get-regexp", f"^agent-task\\.r{i}\\."], cwd=project.path,
                             capture_output=True, check=True).stdout
        assert raw.decode("latin-1").splitlines() == [  # the exact bytes, \xe9 included
            f"agent-task.r{i}.title title {i}", "second line", f"agent-task.r{i}.branch b{i}",
            f"agent-task.r{i}.worktree /w/caf\xe9 {i}", f"agent-task.r{i}.base main",
            f"agent-task.r{i}.slot pool-{i}", f"agent-task.r{i}.created 2024-01-01"]
    for i in range(20):
        assert project.git("config", "--get", f"user.race{i}") == f"v{i}"
    # per process: the rev-parse of Repo.discover (and `git version` until one of them cached it,
    # core/git.py); the record itself runs no git
    calls = [line.split(": git ", 1)[1].split(" ")[0] for line in trace.read_text().splitlines()]
    assert calls.count("rev-parse") == 30 and len(calls) - calls.count("version") == 30
    assert not (project.path / ".git" / "config.lock").exists()


def test_spawns_of_the_same_ids_race_and_each_id_is_made_once(project: Project, committing_agent: Path) -> None:
    """Four `git agent-spawn 1 ... 6` at once, each making its tasks side by side (issue 22): every id
    is made exactly once, with its agent; a process that loses an id says which (exit 1) or, when
    it saw another's task or branch before creating any, refuses as a whole (exit 128); nothing
    else is left."""
    ids = [str(i) for i in range(1, 7)]
    results = _start_together([["git", "agent-spawn", *ids, "--prompt", "do it", "--agent", str(committing_agent)]
                               for _ in range(4)], project.path)
    for r in results:
        assert r.returncode in (0, 1, 128), (r.returncode, r.stderr)
        assert "Traceback" not in r.stderr
        for line in r.stderr.splitlines():
            assert line.startswith(("error: task ", "hint: ", "fatal: task ", "fatal: a branch named 'task-")), \
                r.stderr
    spawned = [line.split()[2] for r in results for line in r.stdout.splitlines() if line.startswith("Spawned task ")]
    assert sorted(spawned, key=int) == ids
    lost = [line.split()[2].rstrip(":") for r in results for line in r.stderr.splitlines()
            if line.startswith("error: task ")]
    assert all(i in ids for i in lost)
    project.ok("wait", "--all", "--timeout", "120")
    rows = json.loads(project.ok("status", "--json").stdout)["tasks"]
    assert [(r["id"], r["state"], r["ahead"]) for r in rows] == [(i, "exited 0", 1) for i in ids]
    assert project.git("worktree", "list", "--porcelain").count("\nworktree ") == 6
    assert sorted(project.git("branch", "--format=%(refname:short)", "--list", "task-*").split()) == \
        sorted(f"task-{i}" for i in ids)


def test_one_failure_among_many_leaves_the_others_made_and_says_which(project: Project, committing_agent: Path,
                                                                      tmp_path: Path) -> None:
    """`spawn 1 ... 5` whose checkout of task 3 fails (real git, but for that one call) while the others
    are checked out beside it: exit 1, task 3 named with git's reason, nothing of it left (no record,
    branch, worktree or port lease); the others are made and their agents run; 3 can be spawned again."""
    real = shutil.which("git")
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    write_script(wrap / "git", f"""
        case "$PWD $*" in
          *"/task-3 reset --hard"*) echo "fatal: unable to write new index file" >&2; exit 128 ;;
        esac
        exec "{real}" "$@"
    """)
    env = {"PATH": f"{wrap}{os.pathsep}{os.environ['PATH']}"}
    ids = ["1", "2", "3", "4", "5"]
    proc = run([str(BIN / "git-agent-spawn"), *ids, "--prompt", "do it", "--agent", str(committing_agent)],
               project.path, env=env)
    assert proc.returncode == 1, proc
    assert [line.split(" (agent pid")[0] for line in proc.stdout.splitlines()] == [
        f"Spawned task {i} on branch task-{i} in ../{project.worktrees.name}/task-{i}" for i in ("1", "2", "4", "5")]
    assert proc.stderr == "error: task 3: unable to write new index file\n" \
                          "(while running: git reset --hard --quiet --no-recurse-submodules)\n", proc.stderr
    project.ok("wait", "--all", "--timeout", "120")
    rows = json.loads(project.ok("status", "--json").stdout)["tasks"]
    assert [(r["id"], r["state"], r["ahead"]) for r in rows] == [(i, "exited 0", 1) for i in ("1", "2", "4", "5")]
    assert project.git("branch", "--format=%(refname:short)", "--list", "task-*").split() == \
        ["task-1", "task-2", "task-4", "task-5"]
    assert not (project.worktrees / "task-3").exists()
    assert project.git("worktree", "list", "--porcelain").count("\nworktree ") == 4
    assert project.git("config", "--get-regexp", r"^agent-task\.3\.", check=False) == ""
    leases = project.git("for-each-ref", "--format=%(refname)", "refs/agents/").split()
    assert len([ref for ref in leases if ref.startswith("refs/agents/ports/")]) == 4
    assert not [ref for ref in leases if ref.startswith("refs/agents/port-holds/")]
    again = project.ok("spawn", "3", "--prompt", "do it", "--agent", str(committing_agent))
    assert again.stdout.startswith("Spawned task 3 on branch task-3 in ")
