"""Which interactive agent waits for you (tasks/waiting.py): status, wait --until-input, send's refusal.

Scripted agents in a real tmux (the fixture of test_tmux.py) draw what the CLIs draw, or call
the hooks and notify program git-agents gives Claude Code and codex, as those CLIs would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from git_agents.core.repo import Repo
from git_agents.tasks.waiting import CLAUDE_SETTINGS, from_pane
from git_agents.tui.model import Overview

from .conftest import Project, write_script
from .test_tmux import eventually, tmux_server, typed  # noqa: F401 - tmux_server is a fixture

pytestmark = [pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)"),
              pytest.mark.usefixtures("tmux_server")]

# Asks, reads the answer, clears its screen (as a TUI redraws), works, then asks nothing more.
ASKING = r"""
    printf 'About to run: git push\n\nDo you want to proceed?\n> 1. Yes\n  2. No\n'
    IFS= read -r answer
    printf '%s\n' "$answer" >> "$GIT_AGENT_WORKTREE/../typed-$GIT_AGENT_TASK.txt"
    printf '\033[2J\033[H'
    echo "working on it"
    sleep 600
"""

# claude's first-run dialog as it draws it.
TRUST_DIALOG = r"""
    printf '╭──────────────────────────────╮\n│ Do you trust the files in this folder? │\n'
    printf '│ ❯ 1. Yes, proceed │\n│   2. No, exit │\n╰──────────────────────────────╯\n'
    IFS= read -r answer
    printf '%s\n' "$answer" >> "$GIT_AGENT_WORKTREE/../typed-$GIT_AGENT_TASK.txt"
    exit 1
"""


def _state(project: Project, task: str = "1") -> dict[str, object]:
    return next(t for t in json.loads(project.ok("status", "--json").stdout)["tasks"] if t["id"] == task)


def test_a_question_in_the_window_is_waiting_until_answered(project: Project, tmp_path: Path) -> None:
    script = write_script(tmp_path / "asking.sh", ASKING)
    project.ok("spawn", "--tmux", "1", "--agent", str(script), "--prompt", "p")
    eventually(lambda: _state(project)["state"] == "waiting: Do you want to proceed?")
    row = _state(project)
    assert (row["agent"], row["waiting"], row["dialog"]) == ("running", "Do you want to proceed?", None)
    table = project.ok("status").stdout.splitlines()
    assert table[1].split()[:5] == ["1", "waiting:", "Do", "you", "want"]
    top = Overview(Repo.discover(str(project.path)))
    assert [r.state for r in top.refresh()] == ["waiting: Do you want to proceed?"]  # git agent-top's row
    # status --watch (in a log: a table on each change) until its first table is out, then Ctrl-C
    watch = subprocess.Popen(["git-agent-status", "--watch=0.1"], cwd=project.path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert watch.stdout is not None
    first = [watch.stdout.readline() for _ in range(3)]
    os.killpg(watch.pid, signal.SIGINT)
    watch.communicate(timeout=30)
    assert first[2].split()[:2] == ["1", "waiting:"] and "Do you want to proceed?" in first[2], first
    waited = project.agent("wait", "--until-input", "1", timeout=30)
    assert (waited.returncode, waited.stdout) == (0, "task 1: waiting: Do you want to proceed?\n")
    timed = project.agent("wait", "--timeout", "0.5", "1")  # without --until-input it still runs
    assert (timed.returncode, timed.stdout) == (1, "timed out; still running: 1\n")
    project.ok("send", "1", "1")
    eventually(lambda: typed(project, "1") == "1\n")
    eventually(lambda: _state(project)["state"] == "running")
    project.ok("stop", "1")


def test_a_first_run_dialog_is_named_and_send_types_nothing_into_it(project: Project, tmp_path: Path) -> None:
    script = write_script(tmp_path / "dialog.sh", TRUST_DIALOG)
    project.ok("spawn", "--tmux", "1", "--agent", str(script), "--prompt", "p")
    eventually(lambda: _state(project)["state"] == "waiting: first-run dialog (trust-folder)")
    assert _state(project)["dialog"] == "trust-folder"
    refused = project.agent("send", "1", "hello")
    assert refused.returncode == 128 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "fatal: task 1's agent shows a first-run dialog (trust-folder): Do you trust the files in this folder?; "
        "nothing was typed",
        "hint: claude asks once per repository whether to trust it: run `claude` once in the repository (its "
        "worktrees share the answer) and accept, or attach (git agent-attach 1) and answer it there"]
    assert typed(project, "1") == ""  # nothing reached the dialog: the agent still runs
    assert _state(project)["agent"] == "running"
    waited = project.agent("wait", "--until-input", "--all", timeout=30)
    assert waited.stdout == "task 1: waiting: first-run dialog (trust-folder)\n"
    project.ok("stop", "1")


def test_claude_hooks_and_codex_notify_say_when_it_waits(project: Project, tmp_path: Path) -> None:
    # what Claude Code runs from the session's own settings (--settings "$GIT_AGENT_CLAUDE_SETTINGS")
    hooks = {event: entries[0]["hooks"][0]["command"] for event, entries in CLAUDE_SETTINGS["hooks"].items()}
    (tmp_path / "hooks.json").write_text(json.dumps(hooks))
    script = write_script(tmp_path / "hooked.sh", f"""
        settings=$(cat "$GIT_AGENT_CLAUDE_SETTINGS")
        case "$settings" in *Notification*) ;; *) echo "no hooks"; exit 9;; esac
        hook() {{ python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \\
                  {tmp_path}/hooks.json "$1"; }}
        echo "working"
        echo '{{"message": "Claude needs your permission to use Bash"}}' | sh -c "$(hook Notification)"
        IFS= read -r line
        echo '{{"prompt": "x"}}' | sh -c "$(hook UserPromptSubmit)"
        IFS= read -r line
        program=$(printf '%s' "$GIT_AGENT_CODEX_NOTIFY" |
                  python3 -c 'import json,sys; print(json.loads(sys.stdin.read()[7:])[0])')
        "$program" \\
            '{{"type": "agent-turn-complete", "last-assistant-message": "Shall I also update the docs?"}}'
        sleep 600
    """)
    project.ok("spawn", "--tmux", "1", "--agent", str(script), "--prompt", "p")
    eventually(lambda: _state(project)["state"] == "waiting: Claude needs your permission to use Bash")
    project.ok("send", "1", "go")
    eventually(lambda: _state(project)["state"] == "running")
    project.ok("send", "1", "go")
    eventually(lambda: _state(project)["state"] == "waiting: Shall I also update the docs?")
    project.ok("stop", "1")
    assert not (project.path / ".claude").exists() and not Path(os.environ["HOME"], ".claude").exists()


@pytest.mark.parametrize(("screen", "expected"), [
    ("│ Detected a custom API key in your environment │\n│ ❯ 2. No (recommended) │", ("api-key", True)),
    ("WARNING: Claude Code running in Bypass Permissions mode\n❯ 1. No, exit\n  2. Yes, I accept",
     ("bypass-permissions", True)),
    ("> You are in /repo\n\n  Do you trust the contents of this directory?\n› 1. Yes", ("codex-trust", True)),
    ("Add file-1.txt to the chat? (Y)es/(N)o/(D)on't ask again [Yes]:", ("", True)),
    ("just working\nstill working", ("", False)),
])
def test_the_prompts_each_cli_draws(screen: str, expected: tuple[str, bool]) -> None:
    found = from_pane(screen)
    assert (found.dialog if found else "", found is not None) == expected
