"""Running `git agent-<verb>` as a child of a long-lived git-agents process (git agent-top, git agent mcp).

`python -m git_agents <verb>` with this package's own directory first on PYTHONPATH: the child
runs the very code of its parent, not another installation that a bare `-m` would find from
the child's directory (a checkout's `bin/`, an editable install of another worktree).
"""

from __future__ import annotations

import os
import sys


def argv(verb: str, *args: str) -> list[str]:
    """The command line of `git agent-<verb> args` in this installation."""
    return [sys.executable, "-m", "git_agents", verb, *args]


def env(**extra: str) -> dict[str, str]:
    """The environment for such a child: ours, this package first on PYTHONPATH, plus `extra`."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds git_agents/
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else ""), **extra}
