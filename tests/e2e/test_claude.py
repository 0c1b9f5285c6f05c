"""The real Claude Code CLI (`--agent claude`) against the scripted Anthropic model on 127.0.0.1.

Claude Code is pointed at the server by ANTHROPIC_BASE_URL with a made-up ANTHROPIC_API_KEY;
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 turns off its update checks, telemetry and error
reports. The scripted model answers the first turn with one Bash call that writes and commits
file-<task>.txt, and the turn after it with the final text. The user's identity comes from
~/.gitconfig, as on a real machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from git_agents.tasks import usage
from git_agents.tasks.presets import PRESETS, preset_env

from ..conftest import Project, run
from ..test_tmux import tmux_server  # noqa: F401 - a fixture
from .model_server import Script, ScriptedModel
from .protocols.anthropic import ROUTES
from .usage_check import assert_usage_recorded

COMMAND = ('echo "work of task $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt" && '
           'git add "file-$GIT_AGENT_TASK.txt" && '
           'git commit -q -m "task $GIT_AGENT_TASK: add file-$GIT_AGENT_TASK.txt"')



@pytest.fixture
def model(cli_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModel]:  # type: ignore[no-untyped-def]
    """The pinned claude on PATH, a hermetic home set up for it, and the scripted model it talks to."""
    cli_path("claude")
    server = ScriptedModel(Script(COMMAND), ROUTES).start()
    home = Path(os.environ["HOME"])
    with (home / ".gitconfig").open("a") as fh:
        fh.write("[user]\n\tname = Real User\n\temail = real.user@example.com\n")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    for var in list(os.environ):  # nothing of a Claude Code session these tests may run inside
        if var.startswith(("ANTHROPIC_", "CLAUDE_", "CLAUDECODE")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-scripted-model-0123456789")
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    yield server
    server.stop()


def _task_log(project: Project, task: str) -> str:
    log = project.path / ".git" / "agents" / "tasks" / task / "agent.log"
    return log.read_text() if log.exists() else "(no agent.log)"


def _assert_committed(project: Project, tasks: list[str]) -> None:
    project.ok("status")  # as a user looks: a clone task's branch is fetched back (agent.isolation)
    for task in tasks:
        assert project.git("show", f"task-{task}:file-{task}.txt", check=False) == f"work of task {task}", \
            _task_log(project, task)
        assert project.git("log", "-1", "--format=%an <%ae>", f"task-{task}") == \
            "Real User <real.user@example.com>"


def _assert_merged(project: Project, tasks: list[str], branches: bool = True) -> None:
    for task in tasks:
        assert (project.path / f"file-{task}.txt").read_text() == f"work of task {task}\n"
        assert not branches or run(["git", "merge-base", "--is-ancestor", f"task-{task}", "main"],
                                   project.path).returncode == 0
    assert project.git("status", "--porcelain") == ""


def test_three_parallel_tasks_commit_and_merge(project: Project, model: ScriptedModel) -> None:
    project.ok("spawn", "1", "2", "3", "--agent", "claude", "--prompt", "Add your task's file and commit it.")
    project.ok("wait", "--all", timeout=100)
    _assert_committed(project, ["1", "2", "3"])
    status = project.ok("status").stdout
    for task in ("1", "2", "3"):
        assert project.git("status", "--porcelain", "--untracked-files=all",
                           cwd=project.worktrees / f"task-{task}") == "", status
    merged = project.ok("merge", "--all")
    assert "3 merged" in merged.stdout, merged.stdout + merged.stderr
    _assert_merged(project, ["1", "2", "3"])
    # one scripted Bash call and one final turn per agent, nothing else needed from the model
    assert sum(r.path.startswith("/v1/messages") for r in model.requests) >= 6


def test_run_of_a_task_file_with_two_jobs(project: Project, model: ScriptedModel, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.toml"
    tasks.write_text('agent = "claude"\njobs = 2\n'
                     + "".join(f'[[task]]\nid = "{n}"\nprompt = "Add file-{n}.txt and commit it."\n'
                               for n in ("4", "5", "6")))
    proc = project.ok("run", str(tasks), timeout=110)
    assert proc.stdout.splitlines()[-1] == "3 merged, 0 not merged", proc.stdout + proc.stderr
    _assert_merged(project, ["4", "5", "6"], branches=False)  # agent-run names its branches itself


def test_a_prompt_over_128_kib(project: Project, model: ScriptedModel, tmp_path: Path) -> None:
    marker = "END-OF-THE-LONG-PROMPT-7f3a"
    text = "Context line for the agent to read, long enough.\n" * 3000 + marker  # ~147 KiB
    assert len(text.encode()) > 128 * 1024
    (tmp_path / "long.md").write_text(text)
    project.ok("spawn", "7", "--agent", "claude", "--prompt-file", str(tmp_path / "long.md"))
    project.ok("wait", "7", timeout=100)
    _assert_committed(project, ["7"])
    first = [r for r in model.requests if r.path.startswith("/v1/messages") and marker.encode() in r.body]
    assert first, "the whole prompt never reached the model"
    project.ok("merge", "--all")
    _assert_merged(project, ["7"])


def _preset_env(project: Project, task: str, prompt_file: Path) -> dict[str, str]:
    """What the engine gives an agent, for running a preset's other command lines by hand."""
    return {**preset_env(PRESETS["claude"]), "GIT_AGENT_TASK": task, "GIT_AGENT_BRANCH": f"task-{task}",
            "GIT_AGENT_WORKTREE": str(project.worktrees / f"task-{task}"), "GIT_AGENT_PROMPT_FILE": str(prompt_file)}


def test_resume_continues_each_worktrees_own_session(project: Project, model: ScriptedModel,
                                                     tmp_path: Path) -> None:
    project.ok("spawn", "8", "--agent", "claude", "--prompt", "TASK-EIGHT: add your file.")
    project.ok("spawn", "9", "--agent", "claude", "--prompt", "TASK-NINE: add your file.")
    project.ok("wait", "--all", timeout=100)
    _assert_committed(project, ["8", "9"])
    follow_up = tmp_path / "follow-up.md"
    follow_up.write_text("FOLLOW-UP: and now say what you did.")
    seen = len(model.requests)
    before = model.served()
    # as the engine runs it: under the usage filter, which shows the events as text
    counted = usage.usage_path(str(project.path / ".git" / "agents" / "tasks" / "8"), "by-hand")
    proc = run(["/bin/sh", "-c", usage.wrap(PRESETS["claude"].resume, str(counted), "2", "agent", "/bin/sh")],
               project.worktrees / "task-8", env=_preset_env(project, "8", follow_up), timeout=100)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == "Done: the change is committed.", proc.stdout
    figures = usage.read(str(counted))  # this round's own tokens, not the continued session's from its start
    assert figures is not None
    assert (figures.tokens_in, figures.tokens_out) == (model.served()[0] - before[0], model.served()[1] - before[1])
    bodies = [r.body for r in model.requests[seen:] if r.path.startswith("/v1/messages")]
    assert any(b"FOLLOW-UP" in b and b"TASK-EIGHT" in b for b in bodies)  # the same conversation, told more
    assert not any(b"TASK-NINE" in b for b in bodies)  # not the other worktree's


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_interactive_ui_starts_with_the_prompt_under_tmux(project: Project, model: ScriptedModel,
                                                          tmp_path: Path, isolation: str) -> None:
    # What a user has done once by hand: finished onboarding, approved the API key, trusted the
    # repository (its worktrees share that trust) and accepted bypass mode.
    home = Path(os.environ["HOME"])
    key = os.environ["ANTHROPIC_API_KEY"]
    (home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True,
        "customApiKeyResponses": {"approved": [key[-20:]], "rejected": []},
        "projects": {str(project.path.resolve()): {"hasTrustDialogAccepted": True},
                     # a clone is a repository of its own: claude asks to trust it as any other
                     **({str((project.worktrees / "task-10").resolve()): {"hasTrustDialogAccepted": True}}
                        if isolation != "worktree" else {})}}))
    (home / ".claude").mkdir(exist_ok=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"skipDangerousModePermissionPrompt": True}))
    project.ok("spawn", "10", "--prompt", "TASK-TEN: add your file.")  # no agent: the worktree only
    prompt = tmp_path / "prompt.md"
    prompt.write_text("TASK-TEN: add your file and commit it.")
    worktree = project.worktrees / "task-10"
    socket = str(tmp_path / "tmux.sock")
    env = {**os.environ, **_preset_env(project, "10", prompt)}
    subprocess.run(["tmux", "-S", socket, "new-session", "-d", "-x", "120", "-y", "40", "-c", str(worktree),
                    PRESETS["claude"].interactive], env=env, check=True, cwd=worktree)
    try:
        screen = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            screen = subprocess.run(["tmux", "-S", socket, "capture-pane", "-p"], capture_output=True,
                                    text=True, check=False).stdout
            if "Done: the change is committed." in screen:
                break
            time.sleep(0.5)
        assert "TASK-TEN: add your file and commit it." in screen, screen
        assert "bypass permissions on" in screen, screen
        assert "Done: the change is committed." in screen, screen
        _assert_committed(project, ["10"])
        assert project.git("status", "--porcelain", "--untracked-files=all", cwd=worktree) == ""
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, check=False)


def test_a_conflict_is_resolved_by_claude_through_the_preset(project: Project, model: ScriptedModel) -> None:
    """merge --resolve starts the task's own agent (the claude preset) on the conflicted merge; the
    scripted model keeps both lines and commits the merge; git-agents verifies it and merges."""
    model.script = Script('echo "line of task $GIT_AGENT_TASK" > shared.txt && git add shared.txt && '
                          'git commit -q -m "task $GIT_AGENT_TASK: rewrite shared.txt"')
    project.ok("spawn", "1", "2", "--agent", "claude", "--prompt", "Rewrite shared.txt and commit it.")
    project.ok("wait", "--all", timeout=100)
    assert project.git("show", "task-2:shared.txt") == "line of task 2"
    # the resolver's turn: keep both intents, commit the merge
    model.script = Script("printf 'line of task 1\\nline of task 2\\n' > shared.txt && git add shared.txt && "
                          "git commit -q --no-edit", "Resolved: both lines kept, merge committed.")
    seen = len(model.requests)
    merged = project.agent("merge", "--all", "--resolve", timeout=200)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert merged.stdout.splitlines()[-1] == "2 merged, 0 not merged"
    assert (project.path / "shared.txt").read_text() == "line of task 1\nline of task 2\n"
    # the resolver was told which file conflicted
    bodies = [r.body for r in model.requests[seen:] if r.path.startswith("/v1/messages")]
    assert any(b"shared.txt" in b and b"CONFLICT" in b for b in bodies)
    note = project.git("notes", "--ref=agents", "show", "main")
    assert "resolved-by:" in note and "resolve-attempts: 1" in note
    # the resolver's run is counted apart from the task's own, and in the task's totals
    rounds = next(line for line in note.splitlines() if line.startswith("usage-rounds: "))
    assert rounds.startswith("usage-rounds: agent=1 in=") and "; resolve=1 in=" in rounds, note


def test_the_tokens_and_cost_claude_reports_are_recorded(project: Project, model: ScriptedModel) -> None:
    """What the model server reported as usage is what status shows, the merge note keeps and log
    totals; the agent's log stays text."""
    project.ok("spawn", "11", "--agent", "claude", "--prompt", "Add your file and commit it.")
    project.ok("wait", "11", timeout=100)
    _assert_committed(project, ["11"])
    assert_usage_recorded(project, "11", model, priced=True)  # Claude Code prices the tokens itself
    assert "Done: the change is committed." in project.ok("logs", "11").stdout
    served = model.served()
    project.ok("merge", "11")
    note = project.git("notes", "--ref=agents", "show", "main")
    assert f"tokens-in: {served[0]}\ntokens-out: {served[1]}\ncost: " in note
    merges = json.loads(project.ok("log", "--json").stdout)["merges"]
    assert merges[0]["tokens-in"] == str(served[0])
    assert f"Total: {served[0]} in, {served[1]} out" in project.ok("log").stdout


def _first_run_answered(project: Project) -> None:
    """What a user has done once by hand (see test_interactive_ui_starts_with_the_prompt_under_tmux)."""
    home = Path(os.environ["HOME"])
    key = os.environ["ANTHROPIC_API_KEY"]
    (home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True,
        "customApiKeyResponses": {"approved": [key[-20:]], "rejected": []},
        # a clone task (--isolation=clone|sandbox) is a repository of its own: claude asks about each
        "projects": {str(path): {"hasTrustDialogAccepted": True}
                     for path in [project.path.resolve(), *_task_dirs(project)]}}))
    (home / ".claude").mkdir(exist_ok=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"skipDangerousModePermissionPrompt": True}))


def _task_dirs(project: Project) -> list[Path]:
    """Where spawn puts the tasks of these tests (../<repo>-worktrees/task-<id>)."""
    root = project.path.resolve().parent / f"{project.path.name}-worktrees"
    return [root / f"task-{n}" for n in range(1, 21)]


def _status_of(project: Project, task: str) -> dict[str, object]:
    return next(t for t in json.loads(project.ok("status", "--json").stdout)["tasks"] if t["id"] == task)


def _until(probe: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not probe():
        assert time.monotonic() < deadline, f"timed out: {probe}"
        time.sleep(0.3)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
@pytest.mark.usefixtures("tmux_server")
def test_a_first_run_dialog_in_tmux_is_waiting_and_send_refuses(project: Project, model: ScriptedModel) -> None:
    # a claude that never ran interactively: onboarding done, nothing else answered
    (Path(os.environ["HOME"]) / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))
    project.ok("spawn", "--tmux", "12", "--agent", "claude", "--prompt", "Add your file and commit it.")
    _until(lambda: str(_status_of(project, "12")["state"]).startswith("waiting: first-run dialog"))
    dialog = _status_of(project, "12")["dialog"]
    assert dialog in ("trust-folder", "api-key", "bypass-permissions")
    refused = project.agent("send", "12", "hello")
    assert refused.returncode == 128 and f"first-run dialog ({dialog})" in refused.stderr, refused.stderr
    assert "hint: claude asks once" in refused.stderr
    assert _status_of(project, "12")["agent"] == "running"  # nothing answered the dialog
    waited = project.agent("wait", "--until-input", "12", timeout=30)
    assert (waited.returncode, waited.stdout) == (0, f"task 12: waiting: first-run dialog ({dialog})\n")
    project.ok("stop", "12")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
@pytest.mark.usefixtures("tmux_server")
def test_a_permission_prompt_in_tmux_is_waiting(project: Project, model: ScriptedModel) -> None:
    _first_run_answered(project)
    # claude's own UI without bypass: the scripted Bash call needs the user's permission
    agent = 'claude --settings "$GIT_AGENT_CLAUDE_SETTINGS" "$(cat "$GIT_AGENT_PROMPT_FILE")"'
    project.ok("spawn", "--tmux", "13", "--agent", agent, "--prompt", "Add your file and commit it.")
    _until(lambda: str(_status_of(project, "13")["state"]).startswith("waiting"))
    row = _status_of(project, "13")
    assert row["agent"] == "running" and row["dialog"] is None
    assert row["waiting"], row  # the question's first line, from its Notification hook or the window
    waited = project.agent("wait", "--until-input", "--all", timeout=30)
    assert waited.returncode == 0 and waited.stdout.startswith("task 13: waiting"), waited.stdout
    assert project.git("rev-list", "--count", "main..task-13") == "0"  # nothing ran without permission
    project.ok("stop", "13")
