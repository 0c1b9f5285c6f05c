"""Interactive agents in tmux (spawn --tmux, attach, send) and follow-up rounds (continue).

These drive a real tmux server of their own: TMUX_TMPDIR points into a short temporary
directory (a socket path must stay under ~100 bytes), so nothing reaches the user's server.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import Project, write_script

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")

# Reads what is typed into its window line by line: writes each to typed-<id>.txt beside the
# worktrees, commits on "commit", exits on "quit" (with the status given after it).
INTERACTIVE = """
    echo "agent $GIT_AGENT_TASK ready"
    while IFS= read -r line; do
        printf '%s\\n' "$line" >> "$GIT_AGENT_WORKTREE/../typed-$GIT_AGENT_TASK.txt"
        case "$line" in
            commit) echo "work of task $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt"
                    git add "file-$GIT_AGENT_TASK.txt"
                    git commit -q -m "task $GIT_AGENT_TASK: add file-$GIT_AGENT_TASK.txt";;
            quit*) exit ${line#quit };;
        esac
    done
"""


@pytest.fixture
def tmux_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """A tmux of the test's own (TMUX_TMPDIR); yields `tmux(*args)`; kills its servers at the end."""
    tmpdir = tempfile.mkdtemp(prefix="gat-", dir="/tmp")
    monkeypatch.setenv("TMUX_TMPDIR", tmpdir)
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.delenv("TMUX_PANE", raising=False)

    def tmux(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["tmux", *args], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        assert not check or proc.returncode == 0, (args, proc.stderr)
        return proc

    yield tmux
    for server in ("default", "term"):
        tmux("-L", server, "kill-server", check=False)
    shutil.rmtree(tmpdir, ignore_errors=True)


def session_of(project: Project) -> str:
    common = os.path.realpath(project.path / ".git")
    return f"git-agents-project-{hashlib.sha1(common.encode()).hexdigest()[:7]}"


def eventually(probe: Callable[[], object], timeout: float = 20) -> None:
    """Wait until probe() is true (tmux and the agents run asynchronously)."""
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {probe}"
        time.sleep(0.05)


def typed(project: Project, task: str) -> str:
    path = project.worktrees / f"typed-{task}.txt"
    return path.read_text() if path.exists() else ""


def task_key(project: Project, task: str, key: str) -> str:
    return project.git("config", f"agent-task.{task}.{key}", check=False)


def test_three_interactive_agents_send_literally_exit_recorded_and_merge(
        project: Project, tmp_path: Path, tmux_server: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    script = write_script(tmp_path / "interactive.sh", INTERACTIVE)
    spawned = project.ok("spawn", "--tmux", "1", "2", "3", "--agent", str(script), "--prompt", "talk to me")
    session = session_of(project)
    pids = {t: task_key(project, t, "pid") for t in "123"}
    assert spawned.stdout.splitlines() == [
        f"Spawned task {t} on branch task-{t} in ../project-worktrees/task-{t} (agent pid {pids[t]},"
        f" tmux window {session}:{t}: git agent-attach {t})" for t in "123"]
    # one window per task, named after it; the recorded pid is the process in its pane (the supervisor)
    windows = tmux_server("list-windows", "-t", f"={session}", "-F", "#{window_name} #{pane_pid}").stdout
    assert sorted(windows.splitlines()) == [f"{t} {pids[t]}" for t in "123"]
    for t in "123":
        eventually(lambda t=t: f"agent {t} ready" in (project.path / ".git/agents/tasks" / t / "agent.log").read_text())

    # the words arrive as text, never as tmux key names or shell syntax
    project.ok("send", "2", "C-c", "Enter", "$(id)", "'quoted'")
    project.ok("send", "--no-enter", "2", "-- half")
    project.ok("send", "2", " line")
    eventually(lambda: typed(project, "2") == "C-c Enter $(id) 'quoted'\n-- half line\n")
    for t, code in (("1", "0"), ("2", "0"), ("3", "3")):
        project.ok("send", t, "commit")
        project.ok("send", t, f"quit {code}")
    assert project.agent("wait", "1", "2", "3", timeout=60).returncode == 1  # task 3 exited 3

    for t, code in (("1", "0"), ("2", "0"), ("3", "3")):
        assert (project.path / ".git/agents/tasks" / t / "exit").read_text().split()[0] == code
        log = (project.path / ".git/agents/tasks" / t / "agent.log").read_text()
        assert f"agent {t} ready" in log and "commit" in log  # the window was copied to the log
    status = json.loads(project.ok("status", "--json").stdout)["tasks"]
    assert [(t["id"], t["agent"], t["exit_code"], t["ahead"]) for t in status] == [
        ("1", "exited", 0, 1), ("2", "exited", 0, 1), ("3", "exited", 3, 1)]
    assert tmux_server("has-session", "-t", f"={session}", check=False).returncode != 0  # the windows closed

    merged = project.agent("merge", "--all")
    assert merged.returncode == 1, merged.stderr  # task 3 failed: not merged
    assert project.git("log", "--format=%s", "main").splitlines()[:2] == [
        "feat: Task 2 - talk to me", "feat: Task 1 - talk to me"]
    assert (project.path / "file-1.txt").read_text() == "work of task 1\n"

    ended = project.agent("send", "3", "hello")
    assert (ended.returncode, ended.stdout, ended.stderr) == (
        128, "", "fatal: task 3's agent is not running (exited with status 3)\n"
                 "hint: give it a follow-up with: git agent-continue 3 --prompt <text>\n")
    gone = project.agent("attach", "3")
    assert (gone.returncode, gone.stderr) == (
        128, "fatal: task 3's tmux window is gone (its agent has ended)\n"
             "hint: see its output with: git agent-logs 3; to attach it again: "
             "git agent-continue 3 --tmux --prompt <text>\n")


def test_attach_reaches_the_task_window_from_outside_and_inside_tmux(
        project: Project, tmp_path: Path, tmux_server: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    script = write_script(tmp_path / "interactive.sh", INTERACTIVE)
    project.ok("spawn", "--tmux", "a", "b", "--agent", str(script), "--prompt", "p")
    session = session_of(project)
    socket = task_key(project, "a", "tmuxSocket")

    def clients() -> list[str]:
        out = tmux_server("-S", socket, "list-clients", "-F", "#{client_session}:#{window_name}", check=False).stdout
        return sorted(out.splitlines())

    # A terminal of our own: a second tmux server whose panes are the terminals the clients run in.
    tmux_server("-L", "term", "new-session", "-d", "-s", "t", "-x", "120", "-y", "40", "-c", str(project.path), "sh")
    tmux_server("-L", "term", "send-keys", "-t", "t:0", "git agent-attach b", "Enter")
    eventually(lambda: clients() == [f"{session}:b"])

    # Inside tmux on the same server: a shell there switches its own client to the window.
    tmux_server("-S", socket, "new-session", "-d", "-s", "viewer", "-c", str(project.path), "sh")
    # "t:" is the session; a bare "t" would also match window 0, named "tmux" once it runs the attach
    tmux_server("-L", "term", "new-window", "-t", "t:", "-c", str(project.path), "sh")
    tmux_server("-L", "term", "send-keys", "-t", "t:1", f"tmux -S {socket} attach -t viewer", "Enter")
    eventually(lambda: len(clients()) == 2)
    tmux_server("-S", socket, "send-keys", "-t", "viewer", "git agent-attach a", "Enter")
    # the viewer's client left its session for the agents'; a session shows one window to all its clients
    eventually(lambda: clients() == [f"{session}:a", f"{session}:a"])
    assert typed(project, "a") == typed(project, "b") == ""  # attaching types nothing into the agents

    # no terminal: a clear error, not tmux's own
    proc = project.agent("attach", "a")
    assert (proc.returncode, proc.stderr) == (
        128, "fatal: git agent-attach needs a terminal: standard input is not one\n"
             f"hint: run it in a terminal, or: {shutil.which('tmux')} -S {socket} attach-session -t "
             f"{task_key(project, 'a', 'tmuxPane')}\n")
    for t in "ab":
        project.ok("send", t, "quit 0")
    project.ok("wait", "a", "b", timeout=60)


def test_control_characters_in_the_text_never_act_as_keys_and_keys_are_sent_explicitly(
        project: Project, tmp_path: Path, tmux_server: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    script = write_script(tmp_path / "interactive.sh", INTERACTIVE)
    project.ok("spawn", "--tmux", "1", "--agent", str(script), "--prompt", "p")
    eventually(lambda: "agent 1 ready" in (project.path / ".git/agents/tasks/1/agent.log").read_text())
    for text, shown, at in (("stop\x03", "\\x03", 5), ("a\nquit 7", "\\n", 2), ("\x1b[A", "\\x1b", 1)):
        proc = project.agent("send", "1", text)
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            128, "", f"fatal: the text holds a control character ({shown} at character {at}); nothing was typed\n"
                     "hint: text is typed as text: send a key with --key (e.g. git agent-send 1 --key C-c), "
                     "each line with its own git agent-send\n"), text
    project.ok("send", "1", "still here")
    eventually(lambda: typed(project, "1") == "still here\n")
    assert json.loads(project.ok("status", "1", "--json").stdout)["tasks"][0]["agent"] == "running"

    # keys are an explicit choice: typed as keys, no Enter after them
    project.ok("send", "1", "--key", "q", "--key", "u")
    project.ok("send", "1", "--no-enter", "it 5")
    project.ok("send", "1", "--key", "Enter")
    assert project.agent("wait", "1", timeout=60).returncode == 1
    assert (project.path / ".git/agents/tasks/1/exit").read_text().split()[0] == "5"
    bad = project.agent("send", "1", "--key", "Ctrl-C")
    assert (bad.returncode, bad.stderr) == (
        129, "error: --key 'Ctrl-C' is not a key: name one as tmux does, e.g. C-c, Escape, Enter, Tab, Up, F1, M-x\n"
             "usage: git agent-send [--no-enter] <id> <text>...\n   or: git agent-send <id> --key <key>...\n")


def test_attach_and_send_refuse_a_task_that_is_not_interactive(project: Project, committing_agent: Path) -> None:
    project.ok("spawn", "7", "--agent", str(committing_agent), "--prompt", "p")
    project.ok("wait", "7")
    hint = "hint: only agents started with --tmux run in a tmux window; follow this one with: git agent-logs -f 7\n"
    for verb, args in (("attach", ["7"]), ("send", ["7", "hello"])):
        proc = project.agent(verb, *args)
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            128, "", "fatal: task 7 is not an interactive agent\n" + hint), verb


def test_task_file_tmux_runs_agents_in_windows(
        project: Project, tmp_path: Path, tmux_server: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    script = write_script(tmp_path / "interactive.sh", INTERACTIVE)
    (tmp_path / "tasks.toml").write_text(
        f'agent = "{script}"\njobs = 2\ntmux = true\n[[task]]\nid = "x"\nprompt = "do x"\n'
        '[[task]]\nid = "y"\nprompt = "do y"\n')
    run = subprocess.Popen(["git", "agent-run", str(tmp_path / "tasks.toml")], cwd=project.path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for t in "xy":
        eventually(lambda t=t: bool(task_key(project, t, "tmuxPane")))
        eventually(lambda t=t: "ready" in (project.path / ".git/agents/tasks" / t / "agent.log").read_text())
        project.ok("send", t, "commit")
        project.ok("send", t, "quit 0")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    assert sorted(project.git("log", "--format=%s", "main").splitlines()[:2]) == [
        "feat: Task x - do x", "feat: Task y - do y"]


def _note_rounds(project: Project) -> list[dict[str, str]]:
    note = project.git("notes", "--ref=agents", "show", "main").splitlines()
    line = next(line for line in note if line.startswith("rounds: "))
    return [dict(f.split("=", 1) for f in part.split(" ")) for part in line[len("rounds: "):].split("; ")]


def test_continue_runs_a_second_round_with_the_follow_up_and_the_note_lists_both(
        project: Project, tmp_path: Path) -> None:
    # fails until it is told to fix it; commits its prompt so we see what each round was given
    agent = write_script(tmp_path / "agent.sh", """
        cp "$GIT_AGENT_PROMPT_FILE" given.txt
        grep -q "please fix" "$GIT_AGENT_PROMPT_FILE" || exit 4
        git add given.txt && git commit -q -m "task $GIT_AGENT_TASK: done"
    """)
    project.ok("spawn", "5", "--agent", str(agent), "--prompt", "do the thing")
    assert project.agent("wait", "5").returncode == 1
    first = (project.path / ".git/agents/tasks/5/prompt.md").read_text()

    cont = project.ok("continue", "5", "--prompt", "please fix it")
    pid = task_key(project, "5", "pid")
    assert cont.stdout == ("Continued task 5 (round 2) on branch task-5 in ../project-worktrees/task-5"
                           f" (agent pid {pid})\n")
    project.ok("wait", "5")
    given = (project.worktrees / "task-5" / "given.txt").read_text()
    assert given == first.rstrip() + "\n\nFollow-up (round 2):\n\nplease fix it\n"
    assert (project.path / ".git/agents/tasks/5/prompt-2.md").read_text() == given
    assert (project.path / ".git/agents/tasks/5/prompt.md").read_text() == first  # round 1's is kept

    project.ok("merge", "5")
    r1, r2 = _note_rounds(project)
    assert (r1["round"], r1["exit"], r2["round"], r2["exit"]) == ("1", "4", "2", "0")
    assert r1["prompt-hash"] == hashlib.sha256(first.encode()).hexdigest()[:16]
    assert r2["prompt-hash"] == hashlib.sha256(given.encode()).hexdigest()[:16]
    stamp = r"\d{4}-\d\d-\d\dT[\d:]+[+-][\d:]+"
    assert all(re.fullmatch(stamp, r[k]) for r in (r1, r2) for k in ("started", "finished"))
    assert "\ngit-agents: round 2 of task 5: " in (project.path / ".git/agents/tasks/5/agent.log").read_text()

    merged = project.agent("continue", "5", "--prompt", "more")
    assert (merged.returncode, merged.stderr) == (
        128, "fatal: task 5 is already merged\n"
             "hint: spawn a new task for further work: git agent-spawn <new-id> --prompt <text>\n")


def test_continue_resumes_the_preset_session_with_the_follow_up_alone(project: Project, tmp_path: Path) -> None:
    # a stand-in `claude` that records its arguments and what it read, and commits
    fake = tmp_path / "fakebin"
    fake.mkdir()
    write_script(fake / "claude", """
        n=$(ls "$GIT_AGENT_WORKTREE/.." | grep -c '^call-')
        { echo "args: $*"; cat; } > "$GIT_AGENT_WORKTREE/../call-$n.txt"
        echo "$n" > "round-$n.txt" && git add . && git commit -q -m "round $n"
    """)
    env = {"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    project.ok("spawn", "c", "--agent", "claude", "--prompt", "start", env=env)
    project.ok("wait", "c")
    project.ok("continue", "c", "--prompt", "and now the docs", env=env)
    project.ok("wait", "c")
    second = (project.worktrees / "call-1.txt").read_text()
    assert second == "args: -p --continue --output-format stream-json --verbose --dangerously-skip-permissions\n" \
                     "and now the docs\n"
    assert (project.worktrees / "call-0.txt").read_text().startswith(
        "args: -p --output-format stream-json --verbose --dangerously-skip-permissions\n")
    assert task_key(project, "c", "round") == "2"


def test_continue_refuses_a_running_agent(project: Project, tmp_path: Path) -> None:
    sleeper = write_script(tmp_path / "sleeper.sh", "exec sleep 300\n")
    project.ok("spawn", "9", "--agent", str(sleeper), "--prompt", "p")
    before = project.snapshot()
    proc = project.agent("continue", "9", "--prompt", "more")
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        128, "", "fatal: task 9's agent is still running\n"
                 "hint: wait for it (git agent-wait 9) or stop it (git agent-stop 9)\n")
    assert project.snapshot() == before
    assert not (project.path / ".git/agents/tasks/9/prompt-2.md").exists()
    project.ok("stop", "9")


def test_continue_needs_a_follow_up(project: Project) -> None:
    project.ok("spawn", "4", "--prompt", "p")
    proc = project.agent("continue", "4")
    assert proc.returncode == 129
    assert proc.stderr.startswith("error: give the follow-up with --prompt or --prompt-file\nusage: git agent-continue")


def test_parallel_spawns_share_one_session(
        project: Project, tmp_path: Path, tmux_server: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    # the session does not exist yet: every spawn races to create it, and must end up in it
    script = write_script(tmp_path / "interactive.sh", INTERACTIVE)
    procs = [subprocess.Popen(["git", "agent-spawn", "--tmux", f"p{n}", "--agent", str(script), "--prompt", "p"],
                              cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(6)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0] * 6, results
    sessions = tmux_server("list-sessions", "-F", "#{session_name}").stdout.split()
    assert sessions == [session_of(project)]
    names = tmux_server("list-windows", "-t", f"={sessions[0]}", "-F", "#{window_name}").stdout.split()
    assert sorted(names) == [f"p{n}" for n in range(6)]
    for n in range(6):
        project.ok("send", f"p{n}", "quit 0")
    project.ok("wait", "--all", timeout=60)


def test_concurrent_continues_start_one_round(project: Project, tmp_path: Path) -> None:
    agent = write_script(tmp_path / "agent.sh", "sleep 2\n")
    project.ok("spawn", "r", "--agent", str(agent), "--prompt", "p")
    project.ok("wait", "r")
    procs = [subprocess.Popen(["git", "agent-continue", "r", "--prompt", f"follow-up {n}"], cwd=project.path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(5)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert sorted(r[2] for r in results) == [0, 128, 128, 128, 128], results
    assert {r[1] for r in results if r[2]} == {
        "fatal: task r's agent is still running\nhint: wait for it (git agent-wait r) or stop it (git agent-stop r)\n"}
    assert task_key(project, "r", "round") == "2"
    assert not (project.path / ".git/agents/tasks/r/prompt-3.md").exists()
    project.ok("wait", "r")
