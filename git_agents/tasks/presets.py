"""Agent presets: the one table of known coding agents and how each is run.

`--agent claude` (or `agent = "claude"` in a task file) runs the preset's command line; every
preset reads the prompt from the file named by `$GIT_AGENT_PROMPT_FILE` (by file or standard
input, never as one argument: a long prompt would pass the kernel's argument limit).
`git config agent.preset.<name> "<command>"` adds a preset or overrides a built-in one's
unattended command line. Any other value of --agent is a shell command line, run as given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from git_agents.core.lock import RepoLock
from git_agents.core.repo import Repo
from git_agents.tasks.guard import EXCLUDE_MARK


@dataclass(frozen=True)
class Preset:
    """One coding agent CLI: its command lines and what it leaves in a worktree."""

    command: str  # unattended: runs the prompt to the end and exits
    interactive: str = ""  # the tool's own interactive UI with the prompt as its first message (tmux)
    resume: str = ""  # a follow-up in the tool's previous session (git agent-continue)
    exclude: tuple[str, ...] = ()  # the tool's own files, kept out of "uncommitted work" (info/exclude)
    env: dict[str, str] = field(default_factory=dict)  # extra environment the tool needs
    root_env: dict[str, str] = field(default_factory=dict)  # ... and only when run as root (containers, CI)
    # The tool's own state under $HOME (sessions, credentials, caches), writable in --isolation=sandbox.
    state: tuple[str, ...] = ()


_CODEX = ('codex exec --sandbox workspace-write'
          ' --add-dir "$(git rev-parse --path-format=absolute --git-common-dir)"'
          ' --add-dir "$(git rev-parse --absolute-git-dir)"')

# name -> preset; each command line runs with agent.shell in the task's worktree.
PRESETS: dict[str, Preset] = {
    # Claude Code: -p reads the prompt from standard input; as root it refuses to skip permissions
    # unless told it is in a sandbox (IS_SANDBOX=1). --continue resumes the last session of the
    # current directory, so each worktree resumes its own. The unattended forms of every preset
    # print their CLI's machine-readable events (stream-json, --json, --format json): the agent
    # runs under tasks/usage.py, which turns them back into text in its log and keeps the tokens
    # and cost they report.
    "claude": Preset(
        'claude -p --output-format stream-json --verbose --dangerously-skip-permissions < "$GIT_AGENT_PROMPT_FILE"',
        # the prompt is one argument here: past ~100 kB (the kernel takes 128 KiB) it names the file instead
        # the session's own settings (tasks/waiting.py: hooks that tell when it waits for you)
        interactive='claude ${GIT_AGENT_CLAUDE_SETTINGS:+--settings "$GIT_AGENT_CLAUDE_SETTINGS"}'
                    ' --dangerously-skip-permissions "$(if [ "$(wc -c < "$GIT_AGENT_PROMPT_FILE")" -le 100000 ]; '
                    'then cat "$GIT_AGENT_PROMPT_FILE"; '
                    'else printf \'Read the file %s and do the task it describes.\' "$GIT_AGENT_PROMPT_FILE"; fi)"',
        resume='claude -p --continue --output-format stream-json --verbose --dangerously-skip-permissions'
               ' < "$GIT_AGENT_PROMPT_FILE"',
        root_env={"IS_SANDBOX": "1"},
        state=(".claude", ".claude.json", ".claude.json.backup", ".config/claude", ".cache/claude"),
    ),
    # codex's workspace-write sandbox keeps every git dir read-only, and a linked worktree's git
    # dirs (<common>/.git and <common>/.git/worktrees/<name>) lie outside the worktree: both are
    # added as writable roots so the agent can commit; the rest of the sandbox stays (no network).
    "codex": Preset(
        _CODEX + ' --json - < "$GIT_AGENT_PROMPT_FILE"',
        # the TUI takes its first message as one argument: past ~100 KB, point it at the file
        interactive='if [ "$(wc -c < "$GIT_AGENT_PROMPT_FILE")" -lt 100000 ]; then p=$(cat "$GIT_AGENT_PROMPT_FILE");'
                    ' else p="Your task is in the file $GIT_AGENT_PROMPT_FILE: read it and do it."; fi; '
                    + _CODEX.replace("codex exec ", "codex --no-daemon ")
                    # its notify program tells when a turn ended (tasks/waiting.py)
                    + ' ${GIT_AGENT_CODEX_NOTIFY:+-c "$GIT_AGENT_CODEX_NOTIFY"} "$p"',
        resume=_CODEX + ' --json resume --last - < "$GIT_AGENT_PROMPT_FILE"',
        state=(".codex",)),
    # aider: edits from the model's reply and commits each edit itself. It would otherwise write
    # `.aider*` into a new .gitignore (--no-gitignore), look for a new version and ask about
    # analytics, and fetch any URL in the prompt (--no-detect-urls). Its history files and tag
    # cache (.aider.chat.history.md, .aider.input.history, .aider.tags.cache.v4/) stay in the
    # worktree: --restore-chat-history reads the history back. No way to open its UI with a
    # first message, so the interactive line runs the prompt, then opens the UI on that chat.
    # Unattended it does not stream (--no-stream): then its "Tokens: …" line holds the figures
    # the provider reported, not its own estimate (streamed replies carry no usage for it).
    "aider": Preset(
        'aider --yes-always --no-check-update --no-analytics --no-gitignore --no-show-release-notes'
        ' --no-detect-urls --no-stream --message-file "$GIT_AGENT_PROMPT_FILE"',
        interactive='aider --no-check-update --no-analytics --no-gitignore --no-show-release-notes'
                    ' --no-detect-urls --message-file "$GIT_AGENT_PROMPT_FILE";'
                    ' exec aider --no-check-update --no-analytics --no-gitignore --no-show-release-notes'
                    ' --restore-chat-history',
        resume='aider --yes-always --no-check-update --no-analytics --no-gitignore --no-show-release-notes'
               ' --no-detect-urls --no-stream --restore-chat-history --message-file "$GIT_AGENT_PROMPT_FILE"',
        exclude=(".aider*",),
        state=(".aider", ".cache/aider"),
    ),
    # opencode: `run` reads the prompt from standard input (not a TTY) and appends it to any
    # message; --auto approves the permission prompts it would otherwise reject unattended.
    # --continue takes the last session of this directory (the worktree).
    "opencode": Preset(
        'opencode run --auto --format json < "$GIT_AGENT_PROMPT_FILE"',
        interactive='opencode --auto --prompt "$(cat "$GIT_AGENT_PROMPT_FILE")"',
        resume='opencode run --auto --continue --format json < "$GIT_AGENT_PROMPT_FILE"',
        state=(".local/share/opencode", ".config/opencode", ".cache/opencode", ".local/state/opencode"),
    ),
    # gemini: stdin not a terminal = headless; --skip-trust, since a new worktree is an untrusted
    # folder (headless gemini exits 55 there); --resume latest is this worktree's last session.
    # Its UI takes a first message only as an argument (stdin must be the terminal; @file is
    # truncated), so the interactive line is limited to prompts under 128 KiB.
    "gemini": Preset(
        'gemini --skip-trust --approval-mode=yolo --output-format stream-json < "$GIT_AGENT_PROMPT_FILE"',
        interactive='gemini --skip-trust --approval-mode=yolo --prompt-interactive "$(cat "$GIT_AGENT_PROMPT_FILE")"',
        resume='gemini --skip-trust --approval-mode=yolo --output-format stream-json --resume latest'
               ' < "$GIT_AGENT_PROMPT_FILE"',
        state=(".gemini",),
    ),
}

_CONFIG_PREFIX = "agent.preset."


def presets(repo: Repo) -> dict[str, str]:
    """The built-in presets' command lines with the repository's `agent.preset.<name>` entries over them."""
    table = {name: preset.command for name, preset in PRESETS.items()}
    for key, values in repo.config.items():
        if key.startswith(_CONFIG_PREFIX) and values:
            table[key[len(_CONFIG_PREFIX):].lower()] = values[-1]
    return table


def expand(repo: Repo, agent: str) -> str:
    """The command line for `agent`: a preset's when it names one, else `agent` itself."""
    return presets(repo).get(agent.strip().lower(), agent) if agent.strip() else agent


def preset_for(repo: Repo, command: str) -> Preset | None:
    """The built-in preset whose command line (any of its forms, or this repository's override of it) is `command`."""
    overrides = presets(repo)
    for name, preset in PRESETS.items():
        if command.strip() in (overrides.get(name), preset.command, preset.interactive, preset.resume):
            return preset
    return None


def preset_env(preset: Preset | None) -> dict[str, str]:
    """The environment a preset's tool needs, here (as root or not)."""
    if preset is None:
        return {}
    return {**preset.env, **(preset.root_env if os.geteuid() == 0 else {})}


def exclude_tool_files(repo: Repo, patterns: tuple[str, ...], git_dir: str = "") -> None:
    """Add `patterns` to the repository's shared info/exclude (once; with `git_dir`, that git
    directory's: a task's clone), so that the files a tool leaves behind are never taken for the
    task's uncommitted work."""
    if not patterns:
        return
    path = os.path.join(git_dir or repo.common_dir, "info", "exclude")
    with RepoLock(repo.common_dir, "exclude"):
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                text = fh.read()
        except FileNotFoundError:
            text = ""
        have = set(text.splitlines())
        missing = [p for p in patterns if p not in have]
        if not missing:
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        block = ("" if not text or text.endswith("\n") else "\n") + \
            ("" if EXCLUDE_MARK in have else EXCLUDE_MARK + "\n") + "".join(p + "\n" for p in missing)
        with open(path, "a", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(block)


def expand_interactive(repo: Repo, agent: str) -> str:
    """The command line for `agent` in a tmux window: a built-in preset's interactive form when
    it has one, else what `expand` gives (a tool without one runs its unattended form there)."""
    preset = PRESETS.get(agent.strip().lower())
    return preset.interactive if preset is not None and preset.interactive else expand(repo, agent)


def resume_command(repo: Repo, command: str) -> str:
    """What `git agent-continue` runs after `command`: the preset's resume form (the tool's own
    session goes on) when it has one, else the unattended form of a preset run interactively,
    else `command` itself."""
    preset = preset_for(repo, command)
    if preset is None:
        return command
    return preset.resume or preset.command
