"""The real aider CLI through the built-in `aider` preset, against the scripted model.

aider speaks Chat Completions through litellm; ~/.aider.conf.yml points it at 127.0.0.1
(`model: openai/scripted`, `openai-api-base`). It edits files from the reply text rather than
with tools, so the scripted answer is a whole-file edit of file-<task>.txt; aider applies it and
commits it itself (its commit message comes from a second, unstreamed request).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.e2e.model_server import Request, Script, ScriptedModel
from tests.e2e.protocols import chat_completions
from tests.e2e.usage_check import assert_usage_recorded

# aider's "whole" edit format: the file's path, then its whole new content fenced
EDIT = "file-{task}.txt\n```\nwork of task {task}\n```\n"



@pytest.fixture
def model():  # type: ignore[no-untyped-def]
    server = ScriptedModel(Script("", EDIT), chat_completions.ROUTES).start()
    yield server
    server.stop()


@pytest.fixture
def aider(cli_path, model: ScriptedModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """The pinned aider on PATH, configured in the test's HOME, identity in ~/.gitconfig."""
    exe = cli_path("aider")
    home = Path(os.environ["HOME"])
    with open(home / ".gitconfig", "a") as fh:
        fh.write("[user]\n\tname = Real User\n\temail = user@example.com\n")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    (home / ".aider.conf.yml").write_text(
        f"model: openai/scripted\nopenai-api-base: {model.url}/v1\nopenai-api-key: x\n")
    # aider looks up an unknown model's context window and prices on the web (and warns);
    # metadata given here is used first. litellm is told to use its bundled price map too.
    (home / ".aider.model.metadata.json").write_text(json.dumps({"openai/scripted": {
        "max_input_tokens": 128000, "max_output_tokens": 8192, "max_tokens": 8192,
        "input_cost_per_token": 0, "output_cost_per_token": 0, "litellm_provider": "openai", "mode": "chat"}}))
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return exe


def _check_merged(project: Project, ids: list[str]) -> None:
    for task in ids:
        assert (project.path / f"file-{task}.txt").read_text() == f"work of task {task}\n"
    authors = project.git("log", "--format=%an <%ae>", "main").splitlines()
    assert authors.count("Real User <user@example.com>") >= len(ids) + 1  # aider's commits and the merges
    assert not (project.path / ".gitignore").exists()
    assert project.git("status", "--porcelain") == ""


def test_three_parallel_tasks_commit_and_merge(project: Project, aider: Path, model: ScriptedModel) -> None:
    project.ok("spawn", "1", "2", "3", "--agent", "aider", "--prompt", "Add your file.")
    wait = project.agent("wait", "--all", timeout=110)
    logs = {t: project.agent("logs", t).stdout for t in "123"}
    assert wait.returncode == 0, (wait.stdout, wait.stderr, logs)
    for task in "123":
        branch = f"task-{task}"
        assert project.git("show", f"{branch}:file-{task}.txt") == f"work of task {task}", logs[task]
        assert project.git("log", "-1", "--format=%an <%ae>", branch) == "Real User <user@example.com>"
        assert project.git("rev-list", "--count", f"main..{branch}") == "1"
        worktree = project.worktrees / branch
        assert (worktree / ".aider.chat.history.md").exists()  # aider's own files stay, excluded
        assert project.git("status", "--porcelain", "--untracked-files=all", cwd=worktree) == ""
    project.ok("merge", "--all")
    _check_merged(project, ["1", "2", "3"])
    turns = [r.json() for r in model.requests if r.path.endswith("/chat/completions")]
    assert turns and not any(t.get("stream") for t in turns)  # --no-stream: the provider's usage figures


def _main_turn(req: Request) -> bool:
    """A request of aider's main model (not its weak model's commit message, whose tokens it does not show)."""
    return b"commit message" not in req.body


def test_the_tokens_aider_reports_are_recorded(project: Project, aider: Path, model: ScriptedModel) -> None:
    project.ok("spawn", "1", "--agent", "aider", "--prompt", "Add your file.")
    assert project.agent("wait", "1", timeout=110).returncode == 0, project.agent("logs", "1").stdout
    # the model metadata prices tokens at 0, so aider reports no cost
    assert_usage_recorded(project, "1", model, priced=False, counted=_main_turn)
    assert "Applied edit to file-1.txt" in project.ok("logs", "1").stdout


def test_run_a_task_file_two_at_a_time(project: Project, aider: Path, tmp_path: Path) -> None:
    (tmp_path / "tasks.toml").write_text(
        'agent = "aider"\njobs = 2\n'
        '[[task]]\nid = "a"\nprompt = "Add file a."\n'
        '[[task]]\nid = "b"\nprompt = "Add file b."\n'
        '[[task]]\nid = "c"\nprompt = "Add file c."\n')
    run = project.agent("run", str(tmp_path / "tasks.toml"), timeout=110)
    assert run.returncode == 0, (run.stdout, run.stderr, {t: project.agent("logs", t).stdout for t in "abc"})
    assert run.stdout.splitlines()[-1] == "3 merged, 0 not merged"
    _check_merged(project, ["a", "b", "c"])


def test_a_prompt_over_128_kib(project: Project, aider: Path, model: ScriptedModel, tmp_path: Path) -> None:
    big = "Add your file.\n" + ("All work and no play makes Jack a dull boy. " * 4000)
    assert len(big.encode()) > 128 * 1024
    (tmp_path / "big.md").write_text(big)
    project.ok("spawn", "1", "--agent", "aider", "--prompt-file", str(tmp_path / "big.md"))
    wait = project.agent("wait", "1", timeout=110)
    assert wait.returncode == 0, (wait.stdout, wait.stderr, project.agent("logs", "1").stdout)
    project.ok("merge", "--all")
    _check_merged(project, ["1"])
    assert any(big[-2000:].encode() in r.body for r in model.requests)  # the whole prompt reached the model
