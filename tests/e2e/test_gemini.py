"""The real gemini CLI (pinned in pins.py) run through the `gemini` preset against the scripted model.

The CLI talks the Gemini API (protocols/gemini.py) to a server on 127.0.0.1: its one tool call
runs the shell command that writes file-<task>.txt and commits it on the task's branch. What
a user sees is checked: exit codes, the commits on the task branches, clean worktrees, the
files on main after the merge.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Project

from .model_server import Script, ScriptedModel
from .protocols import gemini
from .usage_check import assert_usage_recorded

COMMAND = ('echo "work of task $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt" && '
           'git add "file-$GIT_AGENT_TASK.txt" && '
           'git commit -q -m "task $GIT_AGENT_TASK: add file-$GIT_AGENT_TASK.txt"')

# ~/.gemini/settings.json. selectedType: with GOOGLE_GEMINI_BASE_URL set and no auth chosen the CLI
# picks its "gateway" auth, which headless mode then rejects ("Invalid auth method selected.", exit 41).
# usageStatisticsEnabled: else it posts usage statistics to its vendor (refused here by the proxy).
SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
}


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """A proxy on 127.0.0.1 that answers nothing and records what was asked of it: the first line
    of each request (`CONNECT host:443 ...`). The CLI must ask it nothing (no telemetry, no update check)."""
    asked: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    asked.append(conn.recv(512).split(b"\r\n", 1)[0])
                except OSError:
                    asked.append(b"(nothing read)")

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, url)
    yield asked
    listener.close()


@pytest.fixture
def model(project: Project, cli_path: Callable[[str], Path], proxy: list[bytes],
          monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModel]:
    """The scripted model serving, gemini installed and configured in the test's HOME, identity in ~/.gitconfig."""
    cli_path("gemini")
    home = Path(os.environ["HOME"])
    with (home / ".gitconfig").open("a") as fh:
        fh.write("[user]\n\tname = Real User\n\temail = real.user@example.com\n")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    (home / ".gemini").mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS, indent=2))
    server = ScriptedModel(Script(COMMAND), gemini.ROUTES).start()
    monkeypatch.setenv("GEMINI_API_KEY", "scripted-test-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
    yield server
    server.stop()
    assert proxy == [], f"gemini tried to reach past the scripted model: {proxy}"


def assert_committed(project: Project, task: str) -> None:
    """The task's branch has the agent's commit, by the user's identity, and its worktree is clean."""
    assert project.git("show", f"task-{task}:file-{task}.txt") == f"work of task {task}"
    assert project.git("log", "-1", "--format=%an <%ae>", f"task-{task}") == "Real User <real.user@example.com>"
    assert project.git("status", "--porcelain", cwd=project.worktrees / f"task-{task}") == ""


def test_three_tasks_in_parallel(project: Project, model: ScriptedModel) -> None:
    project.ok("spawn", "1", "2", "3", "--agent", "gemini", "--prompt", "Add your file and commit it.")
    wait = project.agent("wait", "--all", timeout=110)
    logs = "\n".join(project.agent("logs", t).stdout for t in "123")
    assert wait.returncode == 0, f"{wait.stdout}\n{wait.stderr}\n{logs}"
    for task in "123":
        assert_committed(project, task)
    status = project.ok("status").stdout
    assert "uncommitted" not in status and "dirty" not in status, status
    project.ok("merge", "--all")
    for task in "123":
        assert (project.path / f"file-{task}.txt").read_text() == f"work of task {task}\n"
    assert project.git("status", "--porcelain") == ""
    # the CLI talked to the scripted model only, with the fake key
    streams = [r for r in model.requests if ":streamGenerateContent" in r.path]
    assert len(streams) >= 6 and all(r.headers.get("x-goog-api-key") == "scripted-test-key" for r in streams)


def test_the_tokens_gemini_reports_are_recorded(project: Project, model: ScriptedModel) -> None:
    project.ok("spawn", "1", "--agent", "gemini", "--prompt", "Add your file and commit it.")
    wait = project.agent("wait", "1", timeout=110)
    assert wait.returncode == 0, project.agent("logs", "1").stdout
    assert_committed(project, "1")
    assert_usage_recorded(project, "1", model, priced=False)  # gemini reports tokens, not money
    assert "Done: the change is committed." in project.ok("logs", "1").stdout


def test_run_a_task_file(project: Project, model: ScriptedModel, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.toml"
    tasks.write_text('agent = "gemini"\njobs = 2\n'
                     + "".join(f'[[task]]\nid = "{t}"\nprompt = "Add file {t} and commit it."\n' for t in "123"))
    proc = project.agent("run", str(tasks), timeout=110)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.splitlines()[-1] == "3 merged, 0 not merged"
    for task in "123":
        assert (project.path / f"file-{task}.txt").read_text() == f"work of task {task}\n"
    assert project.git("status", "--porcelain") == ""


def test_prompt_over_128_kib(project: Project, model: ScriptedModel, tmp_path: Path) -> None:
    big = tmp_path / "big.md"
    filler = "".join(f"Context line {i}: nothing to do here but read it.\n" for i in range(4000))
    big.write_text("Add your file and commit it.\n\n" + filler + "END OF THE LONG PROMPT\n")
    assert big.stat().st_size > 160 * 1024
    project.ok("spawn", "1", "--agent", "gemini", "--prompt-file", str(big))
    wait = project.agent("wait", "1", timeout=110)
    assert wait.returncode == 0, f"{wait.stdout}\n{wait.stderr}\n{project.agent('logs', '1').stdout}"
    assert_committed(project, "1")
    # the whole prompt reached the model
    assert any(b"END OF THE LONG PROMPT" in r.body and b"Context line 3999" in r.body for r in model.requests)
    project.ok("merge", "--all")
    assert (project.path / "file-1.txt").read_text() == "work of task 1\n"


def test_resume_continues_the_session(project: Project, model: ScriptedModel) -> None:
    """git agent-continue runs the preset's `resume` line: gemini picks up the task's session."""

    project.ok("spawn", "1", "--agent", "gemini", "--prompt", "Add your file and commit it.")
    assert project.agent("wait", "1", timeout=110).returncode == 0
    worktree = project.worktrees / "task-1"
    prompt = worktree.parent / "follow-up.md"
    prompt.write_text("FOLLOW-UP: now add the second file.\n")
    model.script.command = 'echo again > again.txt && git add again.txt && git commit -q -m "follow-up"'
    first = len(model.requests)
    project.ok("continue", "1", "--prompt-file", str(prompt))
    assert project.agent("wait", "1", timeout=110).returncode == 0
    assert project.git("log", "-2", "--format=%s", "task-1").splitlines() == ["follow-up", "task 1: add file-1.txt"]
    # the resumed conversation carried the first turn's prompt and tool result
    later = [r.json() for r in model.requests[first:] if ":streamGenerateContent" in r.path]
    history = json.dumps(later[-1]["contents"])
    assert "Add your file and commit it." in history and "FOLLOW-UP" in history and "functionResponse" in history
    # the second round's tokens are its own, not the resumed session's from its start
    rounds = next(t for t in json.loads(project.ok("status", "--json").stdout)["tasks"] if t["id"] == "1")["runs"]
    assert [(r["round"], r["tokens_in"]) for r in rounds] == \
        [("1", model.served(lambda r: r in model.requests[:first])[0]),
         ("2", model.served(lambda r: r in model.requests[first:])[0])]
