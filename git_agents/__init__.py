"""git-agents: run many coding agents in parallel on one repository, each in its own worktree."""

__version__ = "0.1.0"
