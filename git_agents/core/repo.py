"""Finding the repository from wherever a command is run, and reading its configuration once."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from functools import cached_property

from git_agents.core.configfile import config_after_edit
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
        self._config_file: bytes | None = None  # the repository's config file as `config` was read from it
        self._config_edits = threading.Lock()  # config_written's check and update are one step
        self._idents: tuple[str, str] | None = None

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
        """All of git's configuration as seen here, read with one git call (once: see config_written)."""
        try:  # first: a write between this and git's read makes config_written read again
            with open(os.path.join(self.common_dir, "config"), "rb") as fh:
                self._config_file = fh.read()
        except OSError:
            self._config_file = None
        return parse_config_list(self.git.run("config", "-z", "--list").out)

    def refresh_config(self) -> None:
        """Read the configuration again if the repository's config file changed since it was read
        (where other processes record tasks); one file read instead of a git call when it has not."""
        if "config" not in self.__dict__:
            return
        try:
            with open(os.path.join(self.common_dir, "config"), "rb") as fh:
                now: bytes | None = fh.read()
        except OSError:
            now = None
        if now is None or now != self._config_file:
            self.reload_config()

    def reload_config(self) -> None:
        """Forget the cached configuration: the next look-up reads it again (to see other processes' writes)."""
        self.__dict__.pop("config", None)
        self._idents = None

    def idents(self) -> tuple[str, str]:
        """(author, committer) as `git commit-tree` records them (core.git.idents), read once for the
        configuration read (reload_config forgets them): a merge run's commits and its notes commit
        share one `git var`. Read again, they carry the time of now, as `git var` would (core.git.redated)."""
        from git_agents.core.git import idents, redated

        if self._idents is None:
            self._idents = idents(self.git, self.config)
            return self._idents
        author, committer = self._idents
        return redated(author, "GIT_AUTHOR_DATE"), redated(committer, "GIT_COMMITTER_DATE")

    def config_written(self, before: bytes, after: bytes, values: Mapping[str, str | None],
                       remove_sections: Iterable[tuple[str, str | None]] = ()) -> None:
        """This process edited the repository's config file (core.configfile; it held `before`, now
        `after`): apply the edit to the cached configuration, as reading it again would give it, with
        no git call. When another process changed the file since it was read, or an edited key has
        values in other files too, the cache is dropped instead and read again when next needed."""
        with self._config_edits:  # threads of one spawn record their tasks side by side
            cached = self.__dict__.get("config")
            if cached is None:
                return
            edited = config_after_edit(cached, before, values, remove_sections) if before == self._config_file \
                else None
            if edited is None:
                self.reload_config()
                return
            self.__dict__["config"] = edited
            self._config_file = after
            if any(key.lower().startswith(("user.", "author.", "committer.")) for key in values):
                self._idents = None  # an identity set here: the next commit uses it

    def setting(self, key: str) -> str:
        """The value of an `agent.*` setting, or its default."""
        values = self.config.get(_normalise_key(key))
        if values:
            return values[-1]
        return DEFAULTS.get(_normalise_key(key), "")

    def setting_number(self, key: str, *, integer: bool = False, minimum: float | None = None,
                       positive: bool = False, meaning: str = "") -> float:
        """A numeric setting, checked: an AgentError naming the key and its value when it is not a
        number (a whole one with `integer`), is below `minimum`, or is not above 0 with `positive`.

        `meaning` says what the number counts ("seconds", "tasks"), for the message.
        """
        raw = self.setting(key)
        kind = "a whole number" if integer else "a number"
        if meaning:
            kind += f" of {meaning}"
        if positive:
            wanted = f"{kind} greater than 0"
        elif minimum is not None:
            wanted = f"{kind} of at least {minimum:g}"
        else:
            wanted = kind
        try:
            value = float(int(raw.strip(), 10)) if integer else float(raw.strip())
        except ValueError:
            value = None
        if value is None or value != value or value in (float("inf"), float("-inf")) \
                or (positive and not value > 0) or (minimum is not None and value < minimum):
            raise AgentError(f"bad value '{raw}' for {key}: {wanted} is expected",
                             hint=f"fix it with: git config {key} <value>, or go back to the default"
                                  f" with: git config --unset-all {key}")
        return value

    def setting_int(self, key: str, *, minimum: int | None = None, positive: bool = False,
                    meaning: str = "") -> int:
        """A whole-number setting, checked as setting_number does."""
        return int(self.setting_number(key, integer=True, minimum=minimum, positive=positive, meaning=meaning))

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
        hint = ("set a directory outside the repository, e.g. git config agent.worktreeRoot ../worktrees,"
                " or go back to the default with: git config --unset-all agent.worktreeRoot")
        if not configured.strip():
            raise AgentError("agent.worktreeRoot is empty; it must name the directory that holds task worktrees",
                             hint=hint)
        path = os.path.expanduser(configured)
        root = os.path.normpath(os.path.join(self.main_worktree, path))
        # Worktrees inside the git directory would be taken for its own files (and removed with it);
        # one that is the main worktree would put task checkouts among the user's files.
        real, git_dir = os.path.realpath(root), os.path.realpath(self.common_dir)
        if real == git_dir or real.startswith(git_dir.rstrip("/") + "/"):
            raise AgentError(f"agent.worktreeRoot '{configured}' is inside the git directory {self.common_dir}",
                             hint=hint)
        if real == os.path.realpath(self.main_worktree):
            raise AgentError(f"agent.worktreeRoot '{configured}' is the main worktree itself", hint=hint)
        return root

    @property
    def branch_prefix(self) -> str:
        """The prefix of task branches (agent.branchPrefix)."""
        return self.setting("agent.branchPrefix")
