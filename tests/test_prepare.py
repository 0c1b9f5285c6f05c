"""Worktrees that are ready to work in: ignored files, links, submodules, ports, presets, logs, stop."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from git_agents.tasks.presets import PRESETS

from .conftest import Project, run, write_script


def test_worktreeinclude_copy_and_link(project: Project) -> None:
    p = project.path
    (p / ".gitignore").write_text(".env\nsecrets/\nbuild/\nnode_modules/\nlocal.cfg\n")
    (p / ".worktreeinclude").write_text(".env\nsecrets/\nnotes.txt\nREADME\n")
    project.git("add", ".gitignore", ".worktreeinclude")
    project.git("commit", "-q", "-m", "ignore rules")
    (p / ".env").write_text("TOKEN=1\n")
    (p / "secrets").mkdir()
    (p / "secrets" / "key").write_text("k\n")
    (p / "build").mkdir()
    (p / "build" / "out.o").write_text("o\n")
    (p / "build" / "app.cfg").write_text("cfg\n")
    (p / "notes.txt").write_text("untracked, not ignored\n")
    (p / "README").write_text("modified in main\n")
    (p / "node_modules" / "left-pad").mkdir(parents=True)
    (p / "node_modules" / "left-pad" / "index.js").write_text("pad\n")
    project.git("config", "--add", "agent.copy", "build/*.cfg")
    project.git("config", "--add", "agent.link", "node_modules")

    project.ok("spawn", "1", "--prompt", "x")
    wt = project.worktrees / "task-1"
    assert (wt / ".env").read_text() == "TOKEN=1\n"
    assert (wt / "secrets" / "key").read_text() == "k\n"
    assert (wt / "build" / "app.cfg").read_text() == "cfg\n"
    assert not (wt / "build" / "out.o").exists()  # ignored, but not listed
    assert not (wt / "notes.txt").exists()  # listed, but not ignored
    assert (wt / "README").read_text() == "readme\n"  # tracked: the branch's version stays
    assert os.readlink(wt / "node_modules") == str(p / "node_modules")
    assert (wt / "node_modules" / "left-pad" / "index.js").read_text() == "pad\n"
    # nothing prepared shows up as work to save, so merge and clean are not blocked
    assert project.git("status", "--porcelain", cwd=wt) == ""
    project.ok("clean", "1")
    assert (p / "node_modules" / "left-pad" / "index.js").exists()
    assert project.git("status", "--porcelain") == "M README\n?? notes.txt"  # (leading space stripped)


def test_submodules_are_initialised(project: Project, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    run(["git", "init", "-q"], lib, check=True)
    (lib / "lib.txt").write_text("lib\n")
    run(["git", "add", "."], lib, check=True)
    run(["git", "commit", "-q", "-m", "lib"], lib, check=True)
    project.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    project.git("commit", "-q", "-m", "add lib")
    project.git("config", "--global", "protocol.file.allow", "always")  # the submodule's clone reads no local config
    project.ok("spawn", "1", "--prompt", "x")
    assert (project.worktrees / "task-1" / "lib" / "lib.txt").read_text() == "lib\n"


def test_port_leases_are_distinct_under_ten_simultaneous_spawns(project: Project, tmp_path: Path) -> None:
    low = 21000 + os.getpid() % 100 * 20  # a range of our own (below the ephemeral ports), per test process
    project.git("config", "agent.portRange", f"{low}-{low + 199}")
    with socket.socket() as busy:
        busy.bind(("", low + 3))  # something already listens in the first block: it is skipped
        busy.listen()
        _race_spawns(project, low, tmp_path)


def _race_spawns(project: Project, low: int, tmp_path: Path) -> None:
    procs = [subprocess.Popen(["git", "agent-spawn", str(n), "--prompt", "x",
                               "--agent", f'echo "$GIT_AGENT_PORT $GIT_AGENT_INDEX" > {tmp_path}/port-$GIT_AGENT_TASK'],
                              cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(1, 11)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    assert results == [(0, "")] * 10
    project.ok("wait", "--all")
    seen = [tuple((tmp_path / f"port-{n}").read_text().split()) for n in range(1, 11)]
    ports = sorted(int(port) for port, _ in seen)
    assert ports == [low + 10 * k for k in range(1, 11)]
    assert sorted(int(index) for _, index in seen) == list(range(2, 12))
    assert all(int(index) == (int(port) - low) // 10 + 1 for port, index in seen)
    refs = project.git("for-each-ref", "--format=%(refname)", "refs/agents/ports/").split()
    assert sorted(refs) == sorted(f"refs/agents/ports/{port}" for port in ports)

    freed = int(project.git("config", "agent-task.4.port"))
    project.ok("clean", "4")
    assert f"refs/agents/ports/{freed}" not in project.git("for-each-ref", "refs/agents/ports/")
    project.ok("spawn", "11", "--prompt", "x")
    assert project.git("config", "agent-task.11.port") == str(freed)


def _fake(bin_dir: Path, name: str, out: Path) -> None:
    write_script(bin_dir / name, f"""
        printf '%s\\0' "$@" > {out / name}.args
        cat > {out / name}.stdin
        echo "{name} ran" > {name}.txt && git add . && git commit -q -m "{name}"
    """)


def test_presets_expand_to_the_tools_command_lines(project: Project, tmp_path: Path) -> None:
    fake = tmp_path / "fakebin"
    fake.mkdir()
    for name in ("claude", "codex"):
        _fake(fake, name, tmp_path)
    env = {"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    project.ok("spawn", "1", "--prompt", "do one", "--agent", "claude", env=env)
    project.ok("wait", "1")
    assert (tmp_path / "claude.args").read_text().split("\0") == \
        ["-p", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions", ""]
    assert (tmp_path / "claude.stdin").read_text() == project.ok("prompt", "1").stdout
    assert project.git("config", "agent-task.1.agent") == \
        PRESETS["claude"].command

    # a task file: a global preset, a per-task preset, and a preset overridden in git config
    project.git("config", "agent.preset.claude", 'claude --model opus --print < "$GIT_AGENT_PROMPT_FILE"')
    (tmp_path / "tasks.toml").write_text('agent = "claude"\n[[task]]\nid = "2"\nprompt = "two"\n'
                                         '[[task]]\nid = "3"\nprompt = "three"\nagent = "codex"\n')
    proc = project.ok("run", str(tmp_path / "tasks.toml"), env=env)
    assert proc.stdout.splitlines()[-1] == "2 merged, 0 not merged"
    assert (tmp_path / "claude.args").read_text().split("\0") == ["--model", "opus", "--print", ""]
    codex = (tmp_path / "codex.args").read_text().split("\0")
    common = project.path / ".git"
    assert codex == ["exec", "--sandbox", "workspace-write", "--add-dir", str(common),
                     "--add-dir", str(common / "worktrees" / "task-3"), "--json", "-", ""]
    assert (tmp_path / "codex.stdin").read_text().endswith("Your task: three\n")

    missing = project.agent("spawn", "4", "--prompt", "x", "--agent", "gemini")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: task 4: agent command not found: gemini\n")


def test_logs_follow_and_stop(project: Project, tmp_path: Path) -> None:
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "step 1"
        while [ ! -e {tmp_path}/next-$GIT_AGENT_TASK ]; do sleep 0.05; done
        echo "step 2"
    """)
    project.ok("spawn", "1", "2", "--prompt", "x", "--agent", str(agent))
    follow = subprocess.Popen(["git", "agent-logs", "-f", "1"], cwd=project.path, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while "step 1" not in project.agent("logs", "1").stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "next-1").touch()
    out, _ = follow.communicate(timeout=20)
    assert (follow.returncode, out) == (0, "step 1\nstep 2\n")

    stop = project.ok("stop", "2")
    pid = project.git("config", "agent-task.2.pid")
    assert stop.stdout == f"Stopped task 2 (agent pid {pid})\n"
    status = {t["id"]: t for t in json.loads(project.ok("status", "--json").stdout)["tasks"]}
    assert (status["2"]["agent"], status["2"]["exit_code"]) == ("exited", 143)
    assert "step 2" not in project.ok("logs", "2").stdout
    again = project.agent("stop", "2")
    assert (again.returncode, again.stdout) == (1, "Task 2: agent not running\n")
    assert project.agent("logs", "3").stderr == "fatal: no such task: '3'\nhint: `git agent-status` lists the tasks\n"


def test_a_lease_whose_task_is_gone_is_taken_back_and_none_left_fails_the_task(project: Project) -> None:
    low = 23000 + os.getpid() % 100 * 20
    project.git("config", "agent.portRange", f"{low}-{low + 19}")
    orphan = project.git("hash-object", "-w", "--stdin", input="task gone\n")
    project.git("update-ref", f"refs/agents/ports/{low}", orphan, "")
    project.ok("spawn", "1", "2", "--prompt", "x")
    assert [project.git("config", f"agent-task.{n}.port") for n in (1, 2)] == [str(low), str(low + 10)]
    full = project.agent("spawn", "3", "--prompt", "x")
    assert (full.returncode, full.stdout) == (1, "")
    assert full.stderr == (
        f"error: task 3: no free block of 10 ports left in {low}-{low + 19}; the agent was not started\n"
        "  | clean finished tasks (git agent-clean --merged) or widen agent.portRange\n"
        "hint: the worktree is kept at ../project-worktrees/task-3; fix the setup and run the agent there,"
        " or remove the task with: git agent-clean 3\n")


def test_a_lease_of_a_task_made_after_this_process_read_the_tasks_is_not_taken_back(project: Project) -> None:
    """The tasks a process read at its start serve its lease while they name every lease's task; a
    lease whose task they do not know makes it read them again (a task exists before its lease),
    so a task another process made meanwhile keeps its block. A damaged lease (its blob missing)
    is read through cat-file and taken back."""
    from git_agents.core.repo import Repo
    from git_agents.tasks import ports
    from git_agents.tasks.store import Task, create_task, load_tasks

    low = 24000 + os.getpid() % 100 * 30
    project.git("config", "agent.portRange", f"{low}-{low + 29}")
    repo = Repo.discover(str(project.path))
    create_task(repo, Task("1", created="2026-12-01T00:00:00+00:00"))
    assert set(load_tasks(repo)) == {"1"}  # the tasks as this process knows them
    project.ok("spawn", "2", "--prompt", "x", "--no-agent")  # another process: task 2 and its lease
    assert project.git("config", "agent-task.2.port") == str(low)
    assert ports.lease(repo, Task("1")) == ports.Lease(low + 10, 2)
    assert project.git("for-each-ref", "--format=%(refname)", "refs/agents/port-holds/") == ""

    blob = project.git("hash-object", "-w", "--stdin", input="task gone\n")
    project.git("update-ref", f"refs/agents/ports/{low + 20}", blob, "")
    os.unlink(project.path / ".git" / "objects" / blob[:2] / blob[2:])  # a damaged repository
    create_task(repo, Task("3", created="2026-12-01T00:00:00+00:00"))
    assert ports.lease(repo, Task("3")) == ports.Lease(low + 20, 3)
    assert project.git("cat-file", "-p", f"refs/agents/ports/{low + 20}") == "task 3"


def test_agents_commit_as_the_user_even_when_their_shell_hides_the_global_config(
        project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # gemini's shell tool runs with GIT_CONFIG_GLOBAL=/dev/null: the identity must come in the environment
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var)
    with open(Path(os.environ["HOME"]) / ".gitconfig", "a") as fh:
        fh.write("[user]\n\tname = Ada Lovelace\n\temail = ada@example.com\n")
    agent = write_script(tmp_path / "hidden.sh", """
        echo x > x.txt && git add x.txt && GIT_CONFIG_GLOBAL=/dev/null git commit -q -m x
    """)
    project.ok("spawn", "1", "--agent", str(agent))
    project.ok("spawn", "2", "3", "--agent", str(agent))  # many: the identity is asked once for all
    assert project.agent("wait", "1", "2", "3").returncode == 0
    for task in ("1", "2", "3"):
        assert project.git("log", "-1", "--format=%an <%ae> %cn <%ce>", f"task-{task}") == \
            "Ada Lovelace <ada@example.com> Ada Lovelace <ada@example.com>"
