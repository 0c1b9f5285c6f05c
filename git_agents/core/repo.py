"""Finding the repository from wherever a command is run, and reading its configuration once."""

from __future__ import annotations

import os
from functools import cached_property

from git_agents.core.errors import AgentError
from git_agents.core.git import Git
from git_agents.core.settings import DEFAULTS


def parse_config_list(raw: str) -> dict[str, list[str]]:
    """Parse `git config -z --list` output into {key: [values]} (section and name lower-cased)."""
    config: dict[str, list[str]] = {}
    for entry in raw.split("\0"):
        if not entry:
            continue
        key, sep, value = entry.partition("\n")
        if not sep:
            value = "true"  # a bare `key` line is a boolean true
        config.setdefault(_normalise_key(key), []).append(value)
    return config


def _normalise_key(key: str) -> str:
    section, _, rest = key.partition(".")
    if "." in rest:
        sub, _, name = rest.rpartition(".")
        return f"{section.lower()}.{sub}.{name.lower()}"
    return f"{section.lower()}.{rest.lower()}"


class Repo:
    """A non-bare repository seen from one of its worktrees."""

    def __init__(self, toplevel: str, git_dir: str, common_dir: str) -> None:
        self.toplevel = toplevel
        self.git_dir = git_dir
        self.common_dir = common_dir
        self.git = Git(toplevel)

    @classmethod
    def discover(cls, cwd: str | None = None) -> Repo:
        """The repository around `cwd`; a clear error outside one or in a bare one."""
        res = Git(cwd).run("rev-parse", "--path-format=absolute", "--git-common-dir", "--git-dir",
                           "--is-bare-repository", "--is-inside-work-tree", "--show-toplevel",
                           ok=range(0, 256))
        lines = res.out.splitlines()
        if len(lines) < 4:
            msg = res.err.strip().removeprefix("fatal: ") or "not a git repository"
            raise AgentError(msg, hint="run git agent commands inside a git repository (or `git init` one)")
        common_dir, git_dir, bare, inside = lines[:4]
        if bare == "true":
            raise AgentError(f"'{common_dir}' is a bare repository; git-agents needs a work tree to merge into",
                             hint="run it in a clone with a work tree (git clone <repo>)")
        if inside != "true" or len(lines) < 5:
            raise AgentError("this operation must be run in a work tree",
                             hint="cd into the repository's work tree (not its .git directory)")
        repo = cls(lines[4], git_dir, common_dir)
        # A worktree entry half-made by a killed `git worktree add` breaks every git command that
        # looks at all worktrees (rev-list --all, worktree list): repair ours before any of them.
        from git_agents.core.halfmade import repair_half_made

        repair_half_made(repo, strict=False)
        return repo

    # -- configuration -------------------------------------------------------------------------
    @cached_property
    def config(self) -> dict[str, list[str]]:
        """All of git's configuration as seen here, read with one git call."""
        return parse_config_list(self.git.run("config", "-z", "--list").out)

    def reload_config(self) -> None:
        """Forget the cached configuration (after writing to it)."""
        self.__dict__.pop("config", None)

    def setting(self, key: str) -> str:
        """The value of an `agent.*` setting, or its default."""
        values = self.config.get(_normalise_key(key))
        if values:
            return values[-1]
        return DEFAULTS.get(_normalise_key(key), "")

    # -- places --------------------------------------------------------------------------------
    @cached_property
    def main_worktree(self) -> str:
        """The main worktree (where the repository's .git directory lives)."""
        if os.path.basename(self.common_dir) == ".git":
            return os.path.dirname(self.common_dir)
        first = self.git("worktree", "list", "--porcelain").splitlines()[0]
        return first.removeprefix("worktree ")

    @property
    def state_dir(self) -> str:
        """`<common-git-dir>/agents`: prompts, logs, exit records and locks."""
        return os.path.join(self.common_dir, "agents")

    def task_dir(self, task_id: str) -> str:
        """Where one task's prompt, log and exit record live."""
        return os.path.join(self.state_dir, "tasks", task_id)

    @property
    def worktree_root(self) -> str:
        """The directory that holds task worktrees (agent.worktreeRoot)."""
        configured = self.setting("agent.worktreeRoot")
        if configured == DEFAULTS["agent.worktreeroot"]:
            name = os.path.basename(self.main_worktree.rstrip("/"))
            return os.path.join(os.path.dirname(self.main_worktree.rstrip("/")), f"{name}-worktrees")
        path = os.path.expanduser(configured)
        return os.path.normpath(os.path.join(self.main_worktree, path))

    @property
    def branch_prefix(self) -> str:
        """The prefix of task branches (agent.branchPrefix)."""
        return self.setting("agent.branchPrefix")
