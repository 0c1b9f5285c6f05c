"""Agent presets: the one table of known coding agents and how each is run.

`--agent claude` (or `agent = "claude"` in a task file) runs the preset's command line; every
preset reads the prompt from the file named by `$GIT_AGENT_PROMPT_FILE` (by file or standard
input, never as one argument: a long prompt would pass the kernel's argument limit).
`git config agent.preset.<name> "<command>"` adds a preset or overrides a built-in one's
unattended command line. Any other value of --agent is a shell command line, run as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .repo import Repo


@dataclass(frozen=True)
class Preset:
    """One coding agent CLI: its command lines and what it leaves in a worktree."""

    command: str  # unattended: runs the prompt to the end and exits
    interactive: str = ""  # the tool's own interactive UI with the prompt as its first message (tmux)
    resume: str = ""  # a follow-up in the tool's previous session (git agent-continue)
    exclude: tuple[str, ...] = ()  # the tool's own files, kept out of "uncommitted work" (info/exclude)
    env: dict[str, str] = field(default_factory=dict)  # extra environment the tool needs


# name -> preset; each command line runs with agent.shell in the task's worktree.
PRESETS: dict[str, Preset] = {
    "claude": Preset('claude -p --dangerously-skip-permissions "$(cat "$GIT_AGENT_PROMPT_FILE")"'),
    "codex": Preset('codex exec --full-auto "$(cat "$GIT_AGENT_PROMPT_FILE")"'),
    # aider: edits from the model's reply and commits each edit itself. It would otherwise write
    # `.aider*` into a new .gitignore (--no-gitignore), look for a new version and ask about
    # analytics, and fetch any URL in the prompt (--no-detect-urls). Its history files and tag
    # cache (.aider.chat.history.md, .aider.input.history, .aider.tags.cache.v4/) stay in the
    # worktree: --restore-chat-history reads the history back. No way to open its UI with a
    # first message, so the interactive line runs the prompt, then opens the UI on that chat.
    "aider": Preset(
        'aider --yes-always --no-check-update --no-analytics --no-gitignore --no-show-release-notes'
        ' --no-detect-urls --message-file "$GIT_AGENT_PROMPT_FILE"',
        interactive='aider --no-check-update --no-analytics --no-gitignore --no-show-release-notes'
                    ' --no-detect-urls --message-file "$GIT_AGENT_PROMPT_FILE";'
                    ' exec aider --no-check-update --no-analytics --no-gitignore --no-show-release-notes'
                    ' --restore-chat-history',
        resume='aider --yes-always --no-check-update --no-analytics --no-gitignore --no-show-release-notes'
               ' --no-detect-urls --restore-chat-history --message-file "$GIT_AGENT_PROMPT_FILE"',
        exclude=(".aider*",),
    ),
    # opencode: `run` reads the prompt from standard input (not a TTY) and appends it to any
    # message; --auto approves the permission prompts it would otherwise reject unattended.
    # --continue takes the last session of this directory (the worktree).
    "opencode": Preset(
        'opencode run --auto < "$GIT_AGENT_PROMPT_FILE"',
        interactive='opencode --auto --prompt "$(cat "$GIT_AGENT_PROMPT_FILE")"',
        resume='opencode run --auto --continue < "$GIT_AGENT_PROMPT_FILE"',
    ),
    "gemini": Preset('gemini --yolo --prompt "$(cat "$GIT_AGENT_PROMPT_FILE")"'),
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
