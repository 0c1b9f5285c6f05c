"""Which interactive agent waits for you: a question, a permission, or a first-run dialog.

An agent in a tmux window (tasks/tmux.py) that stops to ask something is still running; this
module tells that it waits, and for what, from two kinds of signal:

- the CLI's own: Claude Code's hooks (Notification: it needs a permission or has waited for
  input; Stop: its turn ended; UserPromptSubmit and PreToolUse: it works again), given through
  a settings file of the session's own (`--settings`, never the user's settings), and codex's
  `notify` program (called when a turn completes). Each writes the task's attention file;
- the pane: what the window shows now (`tmux capture-pane`), matched against the prompts and
  dialogs each CLI draws. This is the only signal for gemini, opencode, aider and any other
  command, and for Claude Code's first-run dialogs, which come before any hook can run.

A first-run dialog (claude's trust-this-folder, custom-API-key and bypass-permissions
dialogs, codex's trust dialog) is named: typing text into it answers the dialog, so
`git agent-send` refuses, and the user is told the one-time step that makes it go away.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from git_agents.tasks.store import Task

ATTENTION_ENV = "GIT_AGENT_ATTENTION"  # the attention file, in each interactive agent's environment
CLAUDE_SETTINGS_ENV = "GIT_AGENT_CLAUDE_SETTINGS"  # the session's own Claude Code settings (its hooks)
CODEX_NOTIFY_ENV = "GIT_AGENT_CODEX_NOTIFY"  # codex's -c option naming the task's notify program


@dataclass(frozen=True)
class Waiting:
    """An agent waiting for its user: the question's first line ("" when unknown), and the
    first-run dialog it shows, if it is one (see DIALOGS)."""

    question: str
    dialog: str = ""

    @property
    def state(self) -> str:
        """The state as status shows it."""
        if self.dialog:
            return f"waiting: first-run dialog ({self.dialog})"
        return "waiting" + (f": {self.question}" if self.question else "")

    @property
    def hint(self) -> str:
        """What to do about it."""
        if self.dialog:
            return DIALOGS[self.dialog][1]
        return ""


# name -> (a line the dialog shows, the one-time step that answers it for good)
DIALOGS: dict[str, tuple[str, str]] = {
    "trust-folder": (
        r"Do you trust the files in this folder|Is this a project you (created|trust)|Yes, I trust this folder",
        "claude asks once per repository whether to trust it: run `claude` once in the repository (its "
        "worktrees share the answer) and accept, or attach (git agent-attach <id>) and answer it there"),
    "api-key": (
        r"Detected a custom API key",
        "claude asks once whether to use ANTHROPIC_API_KEY: run `claude` once and answer Yes, or attach "
        "(git agent-attach <id>) and answer it there"),
    "bypass-permissions": (
        r"Bypass Permissions mode",
        "claude asks once before --dangerously-skip-permissions: run `claude --dangerously-skip-permissions` "
        "once and accept, or attach (git agent-attach <id>) and answer it there"),
    "codex-trust": (
        r"Trust this folder\?|Do you trust the contents of this directory",
        "codex asks once per folder whether to trust it: attach (git agent-attach <id>) and answer it"),
}

# A question an agent asks in its window (the line shown as the question when it is the last one).
_PROMPTS = re.compile(
    r"Do you want to (proceed|make this edit|create|allow)|Would you like to run|Allow (command|execution)|"
    r"Apply this change\?|Waiting for user confirmation|Permission required|\(Y\)es/\(N\)o|\[y/N\]|\[Y/n\]",
    re.IGNORECASE)
_DIALOGS = [(name, re.compile(pattern)) for name, (pattern, _) in DIALOGS.items()]
_BOX = re.compile(r"^[\s│|╭╮╰╯─┌┐└┘>❯›●•*]+|[\s│|╭╮╰╯─┌┐└┘]+$")

STALE_AFTER = 2.0  # seconds of pane activity after a "waiting" signal that mean the agent works again


def from_pane(text: str) -> Waiting | None:
    """What a window's screen shows the agent waiting for, or None."""
    lines = [_BOX.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    tail = lines[-25:]
    for name, pattern in _DIALOGS:
        for line in tail:
            if pattern.search(line):
                return Waiting(line, name)
    for line in reversed(tail[-8:]):  # a question is at the bottom, above its choices
        if _PROMPTS.search(line):
            return Waiting(line)
    return None


def attention_path(task_dir: str) -> str:
    """The file the CLI's hooks (claude) or notify program (codex) write: alone in a directory
    of its own, the one place of the task's directory that an agent in the bubblewrap sandbox
    may write (tasks.isolation.sandbox_command), so it cannot touch its log, exit record or prompt."""
    return os.path.join(task_dir, "signals", "attention")


def from_signal(task_dir: str, last_activity: float | None) -> Waiting | None | bool:
    """What the CLI's own last signal says: Waiting, False (it works again), or None (no signal).

    A waiting signal older than the pane's last activity (by STALE_AFTER) is not believed: the
    agent was answered by keys the hooks do not see."""
    path = attention_path(task_dir)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            data = json.load(fh)
        stamp = os.stat(path).st_mtime
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    event = str(data.get("event", ""))
    payload: dict[str, object] = data["payload"] if isinstance(data.get("payload"), dict) else {}
    if event not in ("Notification", "Stop", "agent-turn-complete"):
        return False
    if last_activity is not None and last_activity > stamp + STALE_AFTER:
        return False
    message = str(payload.get("message") or payload.get("last-assistant-message") or "")
    if event == "Stop" and not message:
        message = "its turn ended: waiting for your input"
    return Waiting(message.strip().splitlines()[0] if message.strip() else "")


def detect(task: Task, task_dir: str) -> Waiting | None:
    """Whether the task's interactive agent (in tmux, running) waits for its user, and for what."""
    from git_agents.tasks import tmux

    window = tmux.Window.of(task)
    if window is None:
        return None
    shown = tmux.capture(window)
    if shown is None:
        return None
    screen, activity = shown
    pane = from_pane(screen)
    if pane is not None and pane.dialog:
        return pane  # a dialog comes before any hook runs, and outranks them
    signal = from_signal(task_dir, activity)
    return signal if isinstance(signal, Waiting) else pane


# The hooks of the session's own Claude Code settings: each writes the attention file.
def _hook(event: str) -> dict[str, object]:
    command = (f'[ -n "${ATTENTION_ENV}" ] || exit 0; '
               f'{{ printf \'{{"event": "{event}", "payload": \'; cat; printf \'}}\\n\'; }} '
               f'> "${ATTENTION_ENV}.tmp" && mv -f "${ATTENTION_ENV}.tmp" "${ATTENTION_ENV}"')
    return {"hooks": [{"type": "command", "command": command}]}


CLAUDE_SETTINGS = {"hooks": {event: [_hook(event)] for event in
                             ("Notification", "Stop", "UserPromptSubmit", "PreToolUse")}}

_NOTIFY = f"""#!/bin/sh
# codex's notify program for this task: called with the event's JSON as its last argument
[ -n "${ATTENTION_ENV}" ] || exit 0
eval "last=\\${{$#}}"
printf '{{"event": "agent-turn-complete", "payload": %s}}\\n' "$last" > "${ATTENTION_ENV}.tmp" &&
  mv -f "${ATTENTION_ENV}.tmp" "${ATTENTION_ENV}"
"""


def session_env(task_dir: str) -> dict[str, str]:
    """The environment an interactive agent gets for its signals: the attention file, the
    Claude Code settings file with its hooks and codex's notify option (the files written
    here, beside the task's log; the presets' interactive lines use them when they are set)."""
    os.makedirs(os.path.dirname(attention_path(task_dir)), exist_ok=True)
    settings = os.path.join(task_dir, "claude-settings.json")
    notify = os.path.join(task_dir, "codex-notify")
    with open(settings + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(CLAUDE_SETTINGS, fh, indent=2)
    os.replace(settings + ".tmp", settings)
    with open(notify + ".tmp", "w", encoding="utf-8") as fh:
        fh.write(_NOTIFY)
    os.chmod(notify + ".tmp", 0o755)
    os.replace(notify + ".tmp", notify)
    try:
        os.unlink(attention_path(task_dir))  # the previous launch's last word
    except FileNotFoundError:
        pass
    return {ATTENTION_ENV: attention_path(task_dir), CLAUDE_SETTINGS_ENV: settings,
            CODEX_NOTIFY_ENV: f"notify={json.dumps([notify])}"}
