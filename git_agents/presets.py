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


_CODEX = ('codex exec --sandbox workspace-write'
          ' --add-dir "$(git rev-parse --path-format=absolute --git-common-dir)"'
          ' --add-dir "$(git rev-parse --absolute-git-dir)"')

# name -> preset; each command line runs with agent.shell in the task's worktree.
PRESETS: dict[str, Preset] = {
    "claude": Preset('claude -p --dangerously-skip-permissions "$(cat "$GIT_AGENT_PROMPT_FILE")"'),
    # codex's workspace-write sandbox keeps every git dir read-only, and a linked worktree's git
    # dirs (<common>/.git and <common>/.git/worktrees/<name>) lie outside the worktree: both are
    # added as writable roots so the agent can commit; the rest of the sandbox stays (no network).
    "codex": Preset(
        _CODEX + ' - < "$GIT_AGENT_PROMPT_FILE"',
        # the TUI takes its first message as one argument: past ~100 KB, point it at the file
        interactive='if [ "$(wc -c < "$GIT_AGENT_PROMPT_FILE")" -lt 100000 ]; then p=$(cat "$GIT_AGENT_PROMPT_FILE");'
                    ' else p="Your task is in the file $GIT_AGENT_PROMPT_FILE: read it and do it."; fi; '
                    + _CODEX.replace("codex exec ", "codex --no-daemon ") + ' "$p"',
        resume=_CODEX + ' resume --last - < "$GIT_AGENT_PROMPT_FILE"'),
    "aider": Preset('aider --yes-always --message-file "$GIT_AGENT_PROMPT_FILE"'),
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
