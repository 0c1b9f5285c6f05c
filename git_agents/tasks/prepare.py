"""Making a new worktree ready to work in: what git does not check out, then agent.setup.

A fresh worktree lacks every ignored file (`.env`, build output, `node_modules`), and an agent
working there then draws wrong conclusions or cannot build. This module:
- copies the ignored files listed in `.worktreeinclude` at the main worktree's root (gitignore
  syntax; git itself does the matching) and the `agent.copy` globs, copy-on-write where the
  filesystem supports it (`cp --reflink=auto`);
- symlinks the `agent.link` paths (large directories such as node_modules) from the main worktree;
- initialises the submodules that are initialised in the main worktree, cloning each from the
  main worktree's own submodule repository (local: no network, so an unreachable URL in
  `.gitmodules` never stops a spawn); one that fails is a warning in the task's log unless
  agent.submodules is `required`;
- leases the task's port block;
- runs `agent.setup` in the worktree, its output appended to the task's log.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess

from git_agents.core.errors import AgentError
from git_agents.core.git import Git
from git_agents.core.lock import RepoLock
from git_agents.core.repo import Repo
from git_agents.tasks import ports
from git_agents.tasks.store import Task

INCLUDE_FILE = ".worktreeinclude"


class SetupFailed(AgentError):
    """agent.setup (or submodule initialisation) failed; the agent must not start."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


def _values(repo: Repo, key: str) -> list[str]:
    return [v for v in repo.config.get(key.lower(), []) if v.strip()]


def included_files(repo: Repo) -> list[str]:
    """Ignored files of the main worktree that `.worktreeinclude` lists (paths relative to it)."""
    main = repo.main_worktree
    if not os.path.isfile(os.path.join(main, INCLUDE_FILE)):
        return []
    git = repo.git.at(main)
    listed = git.run("ls-files", "-z", "--others", "--ignored", f"--exclude-from={INCLUDE_FILE}").out
    candidates = [p for p in listed.split("\0") if p]
    if not candidates:
        return []
    # Only files git ignores: a listed file that is tracked or merely untracked is not copied.
    ignored = git.run("check-ignore", "-z", "--stdin", input="\0".join(candidates) + "\0", ok=(0, 1)).out
    return [p for p in ignored.split("\0") if p]


def _globbed(root: str, patterns: list[str]) -> list[str]:
    found: dict[str, None] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, root_dir=root, recursive=True, include_hidden=True)):
            found[os.path.normpath(path)] = None
    # Nothing of or inside a .git (the repository's own files: linking .git/config into a worktree
    # would let an agent rewrite the repository's configuration), whatever the glob matched.
    return [p for p in found if not p.startswith("..") and not os.path.isabs(p) and ".git" not in p.split(os.sep)]


def check_patterns(repo: Repo) -> None:
    """Refuse agent.copy and agent.link values that name the git directory or a path inside it or
    outside the main worktree (AgentError naming the key and value), before any task is created."""
    for key in ("agent.copy", "agent.link"):
        for value in _values(repo, key):
            parts = os.path.normpath(value.strip()).split(os.sep)
            if ".git" in parts:
                raise AgentError(f"{key} '{value}' names a path inside the git directory",
                                 hint=f"name files of the main worktree; remove this value with:"
                                      f" git config --fixed-value --unset {key} '{value}'")
            if os.path.isabs(value.strip()) or parts[0] == "..":
                raise AgentError(f"{key} '{value}' names a path outside the main worktree",
                                 hint=f"name files relative to the main worktree; remove this value with:"
                                      f" git config --fixed-value --unset {key} '{value}'")


def copy_files(source: str, dest: str, paths: list[str]) -> None:
    """Copy `paths` (relative to `source`) to the same places under `dest`, keeping what dest has."""
    todo = [p for p in paths if not os.path.lexists(os.path.join(dest, p))]
    for i in range(0, len(todo), 500):
        proc = subprocess.run(["cp", "-R", "-p", "--reflink=auto", "--parents", "-t", dest, "--", *todo[i:i + 500]],
                              cwd=source, capture_output=True, text=True)
        if proc.returncode != 0:
            raise AgentError(f"could not copy ignored files into {dest}: {proc.stderr.strip()}")


def link_paths(repo: Repo, dest: str, paths: list[str]) -> None:
    """Symlink `paths` of the main worktree into `dest`; keep git from seeing the links as untracked."""
    made = []
    for path in paths:
        link = os.path.join(dest, path)
        if os.path.lexists(link):
            continue
        try:
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(os.path.join(repo.main_worktree, path), link)
        except OSError as exc:
            raise SetupFailed(f"cannot link {path} (agent.link) into the worktree: {exc.strerror}", "") from exc
        made.append(path)
    if not made:
        return
    # `node_modules/` in .gitignore matches directories only, not a symlink: exclude the links
    # in the repository's info/exclude, which the main worktree (where they are real) shares.
    shown = repo.git.at(dest).run("check-ignore", "-z", "--stdin", input="\0".join(made) + "\0", ok=(0, 1)).out
    missing = [p for p in made if p not in set(shown.split("\0"))]
    if missing:
        exclude = os.path.join(repo.common_dir, "info", "exclude")
        with RepoLock(repo.common_dir):
            os.makedirs(os.path.dirname(exclude), exist_ok=True)
            with open(exclude, "a", encoding="utf-8") as fh:
                fh.write("# symlinked into task worktrees by git-agents (agent.link)\n")
                fh.write("".join(f"/{p}\n" for p in missing))


def populate(repo: Repo, worktree: str) -> None:
    """Copy included and agent.copy files, make agent.link symlinks."""
    main = repo.main_worktree
    copy_files(main, worktree, included_files(repo) + _globbed(main, _values(repo, "agent.copy")))
    link_paths(repo, worktree, _globbed(main, _values(repo, "agent.link")))


def init_submodules(repo: Repo, worktree: str) -> tuple[list[str], str]:
    """Initialise in `worktree` the submodules initialised in the main worktree; return (paths that
    failed, git's output for them).

    Each is cloned from the main worktree's own submodule repository (`submodule.<name>.url`
    pointed there for this one call, with protocol.file allowed for it), so no network is used;
    afterwards the clone's origin is the submodule's real URL again, as a clone of it would have.
    A submodule not initialised in the main worktree, or outside a sparse worktree's cone, is left
    alone. Nested submodules are not initialised.
    """
    if not os.path.isfile(os.path.join(worktree, ".gitmodules")):
        return [], ""
    git = repo.git.at(worktree)
    listed = git.run("config", "--file", ".gitmodules", "-z", "--get-regexp", r"^submodule\..*\.path$",
                     ok=(0, 1)).out
    failed: list[str] = []
    output = ""
    for entry in filter(None, listed.split("\0")):
        key, _, path = entry.partition("\n")
        name = key[len("submodule."):-len(".path")]
        source = os.path.join(repo.main_worktree, path)
        if not path or not os.path.exists(os.path.join(source, ".git")) \
                or not os.path.isdir(os.path.join(worktree, path)):
            continue  # not initialised in the main worktree, or outside the sparse cone
        found = repo.git.at(source).run("rev-parse", "--absolute-git-dir", ok=range(0, 256))
        if found.code != 0:
            continue
        url = git.run("config", "--get", f"submodule.{name}.url", ok=(0, 1)).out.strip() or \
            git.run("config", "--file", ".gitmodules", "--get", f"submodule.{name}.url", ok=(0, 1)).out.strip()
        res = git.run("-c", "protocol.file.allow=always", "-c", f"submodule.{name}.url={found.out.strip()}",
                      "submodule", "update", "--init", "--", path, ok=range(0, 256), env={"LC_ALL": "C"})
        if res.code != 0:
            failed.append(path)
            output += res.out + res.err
            _undo_submodule(git, worktree, name, path)
            continue
        if url:
            repo.git.at(os.path.join(worktree, path)).run("remote", "set-url", "origin", url, ok=range(0, 256))
    return failed, output


def _undo_submodule(git: Git, worktree: str, name: str, path: str) -> None:
    """Leave a submodule whose update failed half-way as an uninitialised one (an empty directory),
    so the worktree shows no change; only this worktree's own copy goes (`submodule deinit` would
    unset the URL in the shared config, de-initialising it in the main worktree too)."""
    git_dir = git.run("rev-parse", "--absolute-git-dir").out.strip()
    if os.path.basename(os.path.dirname(git_dir)) != "worktrees":
        return  # not a linked worktree's own git dir: touch nothing
    shutil.rmtree(os.path.join(git_dir, "modules", name), ignore_errors=True)
    target = os.path.join(worktree, path)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target, exist_ok=True)


def _submodules(repo: Repo, task: Task) -> None:
    """init_submodules for a task: a failure is a warning in its log, or with agent.submodules =
    required a SetupFailed; agent.submodules = none skips them."""
    mode = repo.setting("agent.submodules").strip().lower()
    if mode in ("none", "false", "no", "off"):
        return
    failed, output = init_submodules(repo, task.worktree)
    if not failed:
        return
    message = f"submodule initialisation failed: {', '.join(failed)}"
    if mode == "required":
        raise SetupFailed(message, output)
    from git_agents.tasks import agent  # only a failure or a setup writes the log (start-up: issue 22)

    os.makedirs(repo.task_dir(task.id), exist_ok=True)
    with open(agent.log_path(repo.task_dir(task.id)), "a", encoding="utf-8") as log:
        log.write(f"git-agents: warning: {message} (left uninitialised; agent.submodules = required "
                  f"would fail the task)\n{output}")


def _unblock_sigint() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def run_setup(repo: Repo, task: Task, prompt_file: str) -> None:
    """Run agent.setup in the task's worktree; its output goes to the task's log. Raise on failure."""
    command = repo.setting("agent.setup")
    if not command.strip():
        return
    from git_agents.tasks import agent

    task_dir = repo.task_dir(task.id)
    os.makedirs(task_dir, exist_ok=True)
    # git agent-run blocks SIGINT while it works (it acts on a Ctrl-C between steps) and a child
    # inherits the mask: unblock it in the setup alone, so a Ctrl-C ends a long setup at once.
    proc = subprocess.run([repo.setting("agent.shell"), "-c", command], cwd=task.worktree,
                          env=agent.agent_env(task, prompt_file), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_unblock_sigint)
    output = proc.stdout.decode("utf-8", "replace")
    with open(agent.log_path(task_dir), "a", encoding="utf-8") as log:
        log.write(f"git-agents: setup: {command}\n{output}")
        if proc.returncode != 0:
            log.write(f"git-agents: setup failed (exit {proc.returncode}); the agent was not started\n")
    if proc.returncode < 0:  # a signal ended it (Ctrl-C)
        raise SetupFailed(f"setup stopped by {signal.Signals(-proc.returncode).name}: {command}", output)
    if proc.returncode != 0:
        raise SetupFailed(f"setup failed (exit {proc.returncode}): {command}", output)


def make_ready(repo: Repo, task: Task, prompt_file: str, *, leased: bool = False) -> None:
    """Everything a new task's worktree needs before its agent starts (raises SetupFailed).
    `leased`: its port block was leased with others' (ports.lease_all), when `task.port` is set.
    A hold of the lease's blob made beforehand (ports.hold_for: a pool claim) is dropped when the
    lease is not reached."""
    try:
        populate(repo, task.worktree)
        _submodules(repo, task)
    except BaseException:
        if not (leased and task.port):
            ports.drop_hold(repo, task)
        raise
    try:
        if not (leased and task.port):
            ports.lease(repo, task)
    except AgentError as exc:
        raise SetupFailed(exc.message, exc.hint or "") from exc
    run_setup(repo, task, prompt_file)
