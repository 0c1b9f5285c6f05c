"""Agent presets: the one table of known coding agents and their non-interactive command lines.

`--agent claude` (or `agent = "claude"` in a task file) runs the preset's command line; every
preset reads the prompt from the file named by `$GIT_AGENT_PROMPT_FILE`.
`git config agent.preset.<name> "<command>"` adds a preset or overrides a built-in one. Any
other value of --agent is a shell command line, run as given.
"""

from __future__ import annotations

from .repo import Repo

# name -> command line, run with agent.shell in the task's worktree.
PRESETS: dict[str, str] = {
    "claude": 'claude -p --dangerously-skip-permissions "$(cat "$GIT_AGENT_PROMPT_FILE")"',
    "codex": 'codex exec --full-auto "$(cat "$GIT_AGENT_PROMPT_FILE")"',
    "aider": 'aider --yes-always --message-file "$GIT_AGENT_PROMPT_FILE"',
    "gemini": 'gemini --yolo --prompt "$(cat "$GIT_AGENT_PROMPT_FILE")"',
}

_CONFIG_PREFIX = "agent.preset."


def presets(repo: Repo) -> dict[str, str]:
    """The built-in presets with the repository's `agent.preset.<name>` entries over them."""
    table = dict(PRESETS)
    for key, values in repo.config.items():
        if key.startswith(_CONFIG_PREFIX) and values:
            table[key[len(_CONFIG_PREFIX):].lower()] = values[-1]
    return table


def expand(repo: Repo, agent: str) -> str:
    """The command line for `agent`: a preset's when it names one, else `agent` itself."""
    return presets(repo).get(agent.strip().lower(), agent) if agent.strip() else agent
