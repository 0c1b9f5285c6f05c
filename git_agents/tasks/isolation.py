"""Tasks in a clone of their own (`--isolation=clone|sandbox`): nothing of the user's repository shared.

A worktree shares the object store, every ref, the config and the hooks with the user and the
other tasks. A `clone` task's directory (the same path a worktree would have) is instead a
self-contained `git clone --local` of the repository (objects hard-linked: it costs what a
worktree costs). Whatever the agent's git does there — gc, prune, stash, tags, config, hooks,
`update-ref` of main, a push to its `origin` — stays in the clone. Its branch is fetched back
into `refs/heads/task-<id>` of the user's repository (`sync`) whenever git-agents looks at a task
whose agent has ended, so status, diff, conflicts, merge, continue, clean and the notes work as
for a worktree. `sandbox` is the same clone with the agent run under bubblewrap
(`sandbox_command`): the filesystem read-only but the clone, a private temp directory and the
agent CLI's own state directories.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterable, Sequence

from git_agents.core.errors import AgentError, UsageError
from git_agents.core.refs import branch_ref
from git_agents.core.repo import Repo
from git_agents.tasks.store import Task, TaskState

MODES = ("worktree", "clone", "sandbox")
NO_PUSH = "git-agents-no-push://push from the task's clone is left to the user"


def mode(repo: Repo, given: str | None) -> str:
    """The isolation of new tasks: `given` (--isolation, a task file's `isolation`) or agent.isolation;
    "" for a worktree. A UsageError for anything else; sandbox without bwrap is refused with a hint."""
    value = (given if given is not None else repo.setting("agent.isolation")).strip().lower() or "worktree"
    if value not in MODES:
        raise UsageError(f"unknown isolation '{value}': use one of {', '.join(MODES)}")
    if value == "sandbox":
        _bwrap()
    return "" if value == "worktree" else value


def _bwrap() -> str:
    """The bubblewrap program; an AgentError with how to get it when it is not installed."""
    found = shutil.which("bwrap")
    if found is None:
        raise AgentError("--isolation=sandbox needs bubblewrap (bwrap), which is not installed",
                         hint="install it (Debian/Ubuntu: apt-get install bubblewrap), or use --isolation=clone")
    return found


def is_clone(task: Task) -> bool:
    """Whether the task's directory is a clone of its own (not a worktree)."""
    return task.isolation in ("clone", "sandbox")


def make_clone(repo: Repo, path: str, branch: str, commit: str, *, sparse: Sequence[str] = (),
               checkout: str = "") -> None:
    """Make `path` a local clone of the repository on a new `branch` at `commit`, and the same
    branch in the repository (what the task's branch is until its work is fetched back).

    The clone has the user's hooks (a copy) and info/exclude, no remote that leads back into the
    repository (its `origin` is the repository's own `origin`, for fetching; pushing is refused).
    With `checkout` (a clean worktree of the repository detached at `commit`: a claimed pool
    slot), the clone takes over that worktree's files and index instead of writing every file
    again (see adopt_worktree): the worktree is moved to `path` and is no longer one. On failure
    nothing of the clone is left (nor, once it was moved, of that worktree).
    """
    from git_agents.core.worktrees import make_parent

    make_parent(repo, path)
    ref = branch_ref(branch)
    repo.git.update_ref(ref, commit, "")  # fails if the branch exists: nothing is made then
    # with `checkout` the clone is made aside, in a directory of ours, and its .git moved in
    made = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}-", dir=os.path.dirname(path)) if checkout else path
    cloned = False  # a failed clone removes what it made itself; a directory in its way is not ours
    try:
        repo.git.run("clone", "--local", "--no-checkout", "--quiet", "--", repo.common_dir, made)
        cloned = True
        clone = repo.git.at(made)
        upstream = repo.config.get("remote.origin.url")
        if upstream:
            clone.run("remote", "set-url", "origin", upstream[-1])
        else:
            clone.run("remote", "remove", "origin")
        if upstream:
            clone.run("remote", "set-url", "--push", "origin", NO_PUSH)
        if checkout:
            clone.run("update-ref", ref, commit)
            clone.run("symbolic-ref", "HEAD", ref)
            _copy_shared(repo, made)
            adopt_worktree(repo, checkout, path, os.path.join(made, ".git"))
            if sparse:  # the full checkout taken over, narrowed: the files outside the cone go
                repo.git.at(path).run("sparse-checkout", "set", "--cone", "--", *sparse)
        else:
            if sparse:
                clone.run("sparse-checkout", "set", "--cone", "--", *sparse)
            clone.run("switch", "--quiet", "--no-guess", "-c", branch, commit)
            _copy_shared(repo, path)
    except BaseException:
        if checkout:
            shutil.rmtree(made, ignore_errors=True)
            if not os.path.lexists(checkout):  # moved to `path` (adopt_worktree): the clone's files now
                shutil.rmtree(path, ignore_errors=True)
        elif cloned:
            shutil.rmtree(path, ignore_errors=True)
        repo.git.run("update-ref", "-d", ref, commit, ok=range(0, 256))
        raise


def adopt_worktree(repo: Repo, worktree: str, path: str, git_dir: str) -> None:
    """Turn the linked worktree `worktree` (clean, at the commit `git_dir`'s HEAD names) into the
    checkout of the repository whose git directory is `git_dir`, at `path`: its index (the stat
    data of every file, still true: no file is touched) is copied, the directory renamed, its
    `.git` pointer replaced by `git_dir`, and the repository forgets the worktree. This is what
    makes a clone from a warm pool slot cost a few git calls instead of writing every file."""
    from git_agents.core.worktrees import prune_worktrees

    index = repo.git.at(worktree)("rev-parse", "--path-format=absolute", "--git-path", "index")
    admin = os.path.dirname(index)
    for name in os.listdir(admin):  # a split index (core.splitIndex) needs its shared part too
        if name == "index" or name.startswith("sharedindex."):
            shutil.copy2(os.path.join(admin, name), os.path.join(git_dir, name))
    os.rename(worktree, path)
    os.unlink(os.path.join(path, ".git"))  # "gitdir: <the repository>/worktrees/<name>"
    os.rename(git_dir, os.path.join(path, ".git"))
    os.rmdir(os.path.dirname(git_dir))
    prune_worktrees(repo)  # its directory is gone from where the repository knew it: forgotten


def made_aside(path: str) -> list[str]:
    """The directories make_clone made aside for the clone at `path` (`.<name>-*` beside it), which
    a killed clone from a pool slot leaves behind: its git directory, or nothing once it moved in."""
    parent, name = os.path.split(path)
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    # mkdtemp's 8 random characters have no "-": the same for task-1-2 is not task-1's
    return sorted(os.path.join(parent, n) for n in names
                  if n.startswith(f".{name}-") and re.fullmatch(r"[a-z0-9_]{8}", n[len(name) + 2:]))


def finish_adoption(repo: Repo, path: str, branch: str) -> bool:
    """Finish, from the files alone, what adopt_worktree began for the clone at `path` when a kill
    cut it short between moving the slot's directory to `path` and moving the clone's `.git` in:
    the worktree pointer (ours: into this repository's worktrees/) goes, the `.git` made aside (on
    `branch`, its index already copied) comes in; what else was made aside goes, as does all of it
    when nothing was moved to `path` (a clone begun and abandoned holds nothing of the user's:
    copies of the repository's refs, its objects linked). True if the clone was finished.
    Nothing is done when `path` holds a `.git` that is not ours, or no `.git` made aside fits."""
    pointer = os.path.join(path, ".git")
    aside = made_aside(path)
    finished = False
    if os.path.isdir(path) and not os.path.isdir(pointer):
        fits = [m for m in aside if _on_branch(os.path.join(m, ".git"), branch)]
        if not fits or (os.path.lexists(pointer) and not _points_into(repo, path)):
            return False
        if os.path.lexists(pointer):
            os.unlink(pointer)
        os.rename(os.path.join(max(fits, key=os.path.getmtime), ".git"), pointer)
        finished = True
    if os.path.isdir(pointer) or not os.path.lexists(path):  # whole, or never moved: what is aside is abandoned
        for made in aside:
            shutil.rmtree(made, ignore_errors=True)
    return finished


def _on_branch(git_dir: str, branch: str) -> bool:
    """Whether the git directory's HEAD names `branch` (read from its file: no git call)."""
    from pathlib import Path

    try:
        head = Path(git_dir, "HEAD").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return head.strip() == f"ref: {branch_ref(branch)}"


def _points_into(repo: Repo, worktree: str) -> bool:
    """Whether the worktree's `.git` file names a linked worktree's entry of this repository."""
    from git_agents.core.worktrees import git_dir_of

    admin = git_dir_of(worktree)
    return admin is not None and \
        os.path.dirname(os.path.realpath(admin)) == os.path.realpath(os.path.join(repo.common_dir, "worktrees"))


def _copy_shared(repo: Repo, path: str) -> None:
    """The user's hooks (not the samples) and info/exclude, into the clone's git directory."""
    from git_agents.tasks.guard import user_hooks

    git_dir = os.path.join(path, ".git")
    hooks, relative = user_hooks(repo)
    if relative:
        repo.git.at(path).run("config", "core.hooksPath", hooks)
    elif os.path.isdir(hooks):
        for name in os.listdir(hooks):
            source = os.path.join(hooks, name)
            if not name.endswith(".sample") and os.path.isfile(source):
                shutil.copy2(source, os.path.join(git_dir, "hooks", name))
    exclude = os.path.join(repo.common_dir, "info", "exclude")
    if os.path.isfile(exclude):
        os.makedirs(os.path.join(git_dir, "info"), exist_ok=True)
        shutil.copyfile(exclude, os.path.join(git_dir, "info", "exclude"))


def sync(repo: Repo, task: Task, *, ended: bool = False) -> bool:
    """Fetch a clone task's branch back into the repository when it moved there (forced: a
    rewrite is recorded in the branch's reflog, where tasks.integrity finds it); True if it moved.
    Nothing happens while its agent runs (unless the caller has its exit record: `ended`, and
    a process it left behind does not hold the fetch back), or when the clone or its branch is gone."""
    from git_agents.tasks import agent

    if not is_clone(task) or not task.worktree or not os.path.isdir(task.worktree) or \
            (not ended and agent.running(task)):
        return False
    ref = branch_ref(task.branch)
    there = repo.git.at(task.worktree).run("rev-parse", "--verify", "--quiet", ref, ok=range(0, 256)).out.strip()
    here = repo.git.run("rev-parse", "--verify", "--quiet", ref, ok=range(0, 256)).out.strip()
    if not there or there == here:
        return False
    repo.git.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", task.worktree, f"+{ref}:{ref}")
    return True


def refresh_target(repo: Repo, task: Task, target: str) -> None:
    """Give a clone task's clone the repository's `target` as it is now (its own copy of that
    branch, overwritten): what `merge --rebase` and `--resolve` replay or merge the task onto there."""
    if is_clone(task):
        ref = branch_ref(target)
        repo.git.at(task.worktree).run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--",
                                       repo.common_dir, f"+{ref}:{ref}")


def sync_all(repo: Repo, tasks: Iterable[Task] | None = None) -> None:
    """`sync` every clone task (of `tasks`, default all)."""
    from git_agents.tasks.store import load_tasks

    for task in (load_tasks(repo).values() if tasks is None else tasks):
        if is_clone(task) and task.state != TaskState.MERGED:
            sync(repo, task)


def clone_head(repo: Repo, task: Task) -> tuple[str, str] | None:
    """(branch or "", commit) of a clone task's HEAD when it is not on the task's branch, else None."""
    clone = repo.git.at(task.worktree)
    branch = clone.run("symbolic-ref", "--quiet", "--short", "HEAD", ok=range(0, 256)).out.strip()
    if branch == task.branch:
        return None
    head = clone.run("rev-parse", "--verify", "--quiet", "HEAD", ok=range(0, 256)).out.strip()
    return branch, head


def unfetched_commits(repo: Repo, task: Task) -> int:
    """Commits the clone holds on other branches or its HEAD that its task branch does not: work
    that removing the clone would lose."""
    clone = repo.git.at(task.worktree)
    res = clone.run("rev-list", "--count", "--branches", "HEAD", "--not", branch_ref(task.branch),
                    task.base_commit, "--", ok=range(0, 256))
    return int(res.out.strip()) if res.code == 0 and res.out.strip().isdigit() else 0


def remove_clone(path: str) -> None:
    """Delete a task's clone (the caller has checked what would be lost)."""
    shutil.rmtree(path)


def sandbox_command(repo: Repo, task: Task, command: str, shell: str, state: Sequence[str] = ()) -> str:
    """`command` run under bubblewrap: everything read-only but the task's clone, a private temp
    directory (TMPDIR, `<task dir>/tmp`; /tmp itself is read-only), the directory of the task's
    waiting signal (the CLI's hooks write it: tasks.waiting.attention_path) and the preset's state
    directories; no network with agent.sandboxNetwork=false; agent.sandboxWritable adds paths."""
    from git_agents.core.settings import parse_bool
    from git_agents.tasks.waiting import attention_path

    bwrap = _bwrap()
    home = os.path.expanduser("~")
    writable = [task.worktree]
    for name in state:
        path = os.path.join(home, name)
        if not os.path.lexists(path) and "." not in os.path.basename(name).lstrip("."):
            os.makedirs(path, exist_ok=True)  # a directory the tool makes on first use
        if os.path.lexists(path):
            writable.append(path)
    for value in repo.config.get("agent.sandboxwritable", []):
        for word in value.split():
            path = os.path.abspath(os.path.expanduser(word))
            os.makedirs(path, exist_ok=True)
            writable.append(path)
    tmp = os.path.join(repo.task_dir(task.id), "tmp")
    signals = os.path.dirname(attention_path(repo.task_dir(task.id)))
    for path in (tmp, signals):
        os.makedirs(path, exist_ok=True)
        writable.append(path)
    argv = [bwrap, "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for path in writable:
        argv += ["--bind", path, path]
    if not parse_bool(repo.setting("agent.sandboxNetwork"), True):
        argv.append("--unshare-net")
    argv += ["--setenv", "TMPDIR", tmp, "--chdir", task.worktree, "--", shell, "-c", command]
    return shlex.join(argv)
