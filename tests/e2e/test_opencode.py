"""The real opencode CLI through the built-in `opencode` preset, against the scripted model.

opencode is pointed at 127.0.0.1 by a custom OpenAI-compatible provider in
~/.config/opencode/opencode.json (Chat Completions, streamed, with tool calls for its bash tool).
The scripted model makes it run one shell command that writes file-<task>.txt and commits it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.e2e.model_server import Script, ScriptedModel
from tests.e2e.protocols import chat_completions
from tests.e2e.usage_check import assert_usage_recorded

COMMAND = ('echo "work of task $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt" && '
           'git add "file-$GIT_AGENT_TASK.txt" && '
           'git commit -q -m "task $GIT_AGENT_TASK: add file-$GIT_AGENT_TASK.txt"')



@pytest.fixture
def model():  # type: ignore[no-untyped-def]
    server = ScriptedModel(Script(COMMAND), chat_completions.ROUTES).start()
    yield server
    server.stop()


@pytest.fixture
def opencode(cli_path, model: ScriptedModel, monkeypatch: pytest.MonkeyPatch) -> Path:  # type: ignore[no-untyped-def]
    """The pinned opencode on PATH, configured in the test's HOME, identity in ~/.gitconfig."""
    exe = cli_path("opencode")
    home = Path(os.environ["HOME"])
    with open(home / ".gitconfig", "a") as fh:
        fh.write("[user]\n\tname = Real User\n\temail = user@example.com\n")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    config = home / ".config" / "opencode"
    config.mkdir(parents=True)
    (config / "opencode.json").write_text(json.dumps({
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "provider": {"scripted": {
            "npm": "@ai-sdk/openai-compatible",
            "name": "Scripted",
            "options": {"baseURL": f"{model.url}/v1", "apiKey": "x"},
            "models": {"scripted": {"name": "Scripted"}},
        }},
        "model": "scripted/scripted",
        "small_model": "scripted/scripted",
    }, indent=2))
    # the model catalogue (models.dev) is fetched at start; our provider needs none of it
    monkeypatch.setenv("OPENCODE_DISABLE_MODELS_FETCH", "1")
    # opencode's first start creates its database (~/.local/share/opencode/opencode.db); three
    # first starts at once race on the migration ("Failed query: CREATE TABLE `workspace`"). A
    # user has run opencode before; so does this test, once, as `opencode db path` (it migrates).
    subprocess.run([str(exe), "db", "path"], check=True, capture_output=True, timeout=60,
                   stdin=subprocess.DEVNULL)
    return exe


def _check_merged(project: Project, ids: list[str]) -> None:
    for task in ids:
        assert (project.path / f"file-{task}.txt").read_text() == f"work of task {task}\n"
    log = project.git("log", "--format=%an <%ae>|%s", "main")
    assert f"Real User <user@example.com>|task {ids[0]}: add file-{ids[0]}.txt" in log.splitlines()


def test_three_parallel_tasks_commit_and_merge(project: Project, opencode: Path, model: ScriptedModel) -> None:
    project.ok("spawn", "1", "2", "3", "--agent", "opencode", "--prompt", "Add your file and commit it.")
    wait = project.agent("wait", "--all", timeout=110)
    logs = {t: project.agent("logs", t).stdout for t in "123"}
    assert wait.returncode == 0, (wait.stdout, wait.stderr, logs)
    for task in "123":
        branch = f"task-{task}"
        assert project.git("show", f"{branch}:file-{task}.txt") == f"work of task {task}", logs[task]
        assert project.git("log", "-1", "--format=%an <%ae>", branch) == "Real User <user@example.com>"
        worktree = project.worktrees / branch
        assert project.git("status", "--porcelain", "--untracked-files=all", cwd=worktree) == ""
    project.ok("merge", "--all")
    _check_merged(project, ["1", "2", "3"])
    assert project.git("status", "--porcelain") == ""
    tools = [r for r in model.requests if b'"tools"' in r.body]
    assert tools and all(r.json().get("stream") for r in tools)  # opencode streams its turns


def test_the_tokens_opencode_reports_are_recorded(project: Project, opencode: Path, model: ScriptedModel) -> None:
    project.ok("spawn", "1", "--agent", "opencode", "--prompt", "Add your file and commit it.")
    assert project.agent("wait", "1", timeout=110).returncode == 0, project.agent("logs", "1").stdout
    # opencode prices each step (0 for our model); its side requests (the session's title) are not
    # steps of the task and it does not count them: only the requests offering its tools are
    assert_usage_recorded(project, "1", model, priced=True, counted=lambda req: b'"tools"' in req.body)
    assert "Done: the change is committed." in project.ok("logs", "1").stdout


def test_run_a_task_file_two_at_a_time(project: Project, opencode: Path, tmp_path: Path) -> None:
    (tmp_path / "tasks.toml").write_text(
        'agent = "opencode"\njobs = 2\n'
        '[[task]]\nid = "a"\nprompt = "Add file a."\n'
        '[[task]]\nid = "b"\nprompt = "Add file b."\n'
        '[[task]]\nid = "c"\nprompt = "Add file c."\n')
    run = project.agent("run", str(tmp_path / "tasks.toml"), timeout=110)
    assert run.returncode == 0, (run.stdout, run.stderr, {t: project.agent("logs", t).stdout for t in "abc"})
    assert run.stdout.splitlines()[-1] == "3 merged, 0 not merged"
    _check_merged(project, ["a", "b", "c"])


def test_a_prompt_over_128_kib(project: Project, opencode: Path, model: ScriptedModel, tmp_path: Path) -> None:
    big = "Add your file and commit it.\n" + ("All work and no play makes Jack a dull boy. " * 4000)
    assert len(big.encode()) > 128 * 1024
    (tmp_path / "big.md").write_text(big)
    project.ok("spawn", "1", "--agent", "opencode", "--prompt-file", str(tmp_path / "big.md"))
    wait = project.agent("wait", "1", timeout=110)
    assert wait.returncode == 0, (wait.stdout, wait.stderr, project.agent("logs", "1").stdout)
    project.ok("merge", "--all")
    _check_merged(project, ["1"])
    assert any(big[-2000:].encode() in r.body for r in model.requests)  # the whole prompt reached the model
