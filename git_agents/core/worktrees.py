"""Adding, listing and removing worktrees: thin, serialised wrappers over `git worktree`.

Concurrent `git worktree add` calls fail while another one is half-way through creating its
administrative directory ("failed to read .git/worktrees/<name>/commondir"); every change to
the set of worktrees therefore runs under the repository's `worktrees` lock. The checkout
itself, the slow part on a large repository, runs outside the lock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from git_agents.core.errors import GitError
from git_agents.core.halfmade import half_made_entries, repair_half_made
from git_agents.core.lock import RepoLock
from git_agents.core.refs import branch_name, branch_ref, is_branch_ref
from git_agents.core.repo import Repo


@dataclass
class Worktree:
    """One entry of `git worktree list --porcelain`."""

    path: str
    head: str = ""
    branch: str = ""  # short name, empty when detached
    bare: bool = False
    locked: bool = False
    lock_reason: str = ""
    prunable: bool = False


def list_worktrees(repo: Repo) -> list[Worktree]:
    """Every worktree of the repository, the main one first.

    An entry half-made by a killed `git worktree add` (empty commondir) makes this fail; one of
    ours is repaired and the listing retried, any other is named (see repair_half_made).
    """
    try:
        out = repo.git.run("worktree", "list", "--porcelain", "-z").out
    except GitError:
        if not half_made_entries(repo):
            raise
        repair_half_made(repo, strict=True)
        out = repo.git.run("worktree", "list", "--porcelain", "-z").out
    result: list[Worktree] = []
    current: Worktree | None = None
    for field in out.split("\0"):
        if not field:
            current = None
            continue
        key, _, value = field.partition(" ")
        if key == "worktree":
            current = Worktree(value)
            result.append(current)
        elif current is None:
            continue
        elif key == "HEAD":
            current.head = value
        elif key == "branch":
            current.branch = branch_name(value)
        elif key == "bare":
            current.bare = True
        elif key == "locked":
            current.locked, current.lock_reason = True, value
        elif key == "prunable":
            current.prunable = True
    return result


def linked_worktrees(repo: Repo) -> list[Worktree]:
    """The linked worktrees as `git worktree list` finds them, read from the same files with no git
    call (a claim pays ~5-10 ms less): each entry of `<common-dir>/worktrees` whose `gitdir` file
    names the worktree's `.git`. `head` is filled only when HEAD is detached (the commit is then in
    the file; a HEAD on a branch, or a reftable repository's stub, leaves it empty: ask git) and
    `branch` when HEAD names a branch. Entries half-made by a killed add (no gitdir) are left out.
    """
    admin_root = os.path.join(repo.common_dir, "worktrees")
    try:
        names = sorted(os.listdir(admin_root))
    except OSError:
        return []
    found = []
    for name in names:
        entry = os.path.join(admin_root, name)
        texts = {}
        for key in ("gitdir", "HEAD"):
            try:
                with open(os.path.join(entry, key), encoding="utf-8", errors="surrogateescape") as fh:
                    texts[key] = fh.read().strip()
            except OSError:
                texts[key] = ""
        dot_git = texts["gitdir"]
        if not dot_git:
            continue
        if not os.path.isabs(dot_git):  # worktree.useRelativePaths (git 2.48): relative to the entry
            dot_git = os.path.normpath(os.path.join(entry, dot_git))
        path = dot_git.removesuffix("/.git") if dot_git.endswith("/.git") else dot_git.removesuffix("/.")
        head, ref = texts["HEAD"], texts["HEAD"].removeprefix("ref: ")
        detached = len(head) in (40, 64) and all(c in "0123456789abcdef" for c in head)
        locked = os.path.exists(os.path.join(entry, "locked"))
        found.append(Worktree(path, head=head if detached else "",
                              branch=branch_name(ref) if head.startswith("ref: ") and is_branch_ref(ref) else "",
                              locked=locked, prunable=not locked and not os.path.exists(dot_git)))
    return found


# Every worktree git-agents makes is locked with this reason: `git worktree remove` (even with
# --force) and `git worktree prune` run by an agent, or by anyone, leave it alone. git-agents
# unlocks it itself before removing it (remove_worktree, prune_worktrees).
LOCK_REASON = "git-agents task worktree: remove it with git agent-clean"


def make_parent(repo: Repo, path: str) -> None:
    """Create the directory that will hold the worktree `path`; an AgentError (naming
    agent.worktreeRoot when it is that directory) if it cannot be made."""
    from git_agents.core.errors import AgentError

    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        in_the_way = isinstance(exc, (FileExistsError, NotADirectoryError))
        why = "a file of that name is in the way" if in_the_way else exc.strerror
        configured = repo.setting("agent.worktreeRoot")
        if os.path.normpath(parent) == os.path.normpath(repo.worktree_root) and configured:
            hint = (f"agent.worktreeRoot is '{configured}'; point it at a directory" +
                    ("" if in_the_way else " you can write"))
        else:
            hint = "move the file out of the way" if in_the_way else "make it writable, or free some space"
        raise AgentError(f"cannot create the worktree directory '{parent}': {why}", hint=hint) from exc


def add_worktree(repo: Repo, path: str, branch: str | None, commit: str, *, sparse: Sequence[str] = (),
                 post_checkout: bool = False, branch_made: bool = False) -> None:
    """Create a worktree at `path` on a new `branch` (or detached when None) at `commit`; when
    that fails, nothing of it is left. `branch_made`: the caller has just made `branch` at
    `commit` (lifecycle.start makes many in one transaction), and a failure takes it back too.

    With `sparse` directories the worktree is a cone-mode sparse checkout of them (plus the
    files at the top level, as cone mode has it): the patterns are set while the worktree is
    still empty (`--no-checkout`), so the files outside the cone are never written.
    With `post_checkout`, the post-checkout hook then runs there as `git worktree add` runs it
    (the `--no-checkout` add and the reset run none): `<null id> <commit> 1`, output on stderr;
    as with git, its exit status does not undo the worktree.
    """
    make_parent(repo, path)
    with RepoLock(repo.common_dir, "worktrees"):
        args = ["worktree", "add", "--no-checkout", "--quiet", "--lock", "--reason", LOCK_REASON]
        if branch_made and branch:
            args += [path, branch]  # worktree add takes a name that is a branch as that branch
        else:
            args += ["-b", branch, path, commit] if branch else ["--detach", path, commit]
        made_branch = branch_made or (not repo.git.has_branch(branch) if branch else False)
        try:
            repo.git.run(*args)
        except GitError:
            # `worktree add -b` makes the branch before the worktree: take back the branch this
            # call made (compare-and-swap: only while it is still at `commit`) and the half-made entry.
            if made_branch and branch:
                repo.git.run("update-ref", "-d", branch_ref(branch), commit, ok=range(0, 256))
            _prune(repo)
            raise
    try:
        if sparse:
            set_sparse(repo, path, sparse)
        # Never into submodules (as `git worktree add` does, whatever submodule.recurse says): one
        # registered but not cloned would fail the checkout; prepare.make_ready initialises them.
        repo.git.at(path).run("reset", "--hard", "--quiet", "--no-recurse-submodules")
    except GitError:
        remove_worktree(repo, path, force=True)  # nothing of the failed add is left
        if branch:
            repo.git.run("update-ref", "-d", branch_ref(branch), commit, ok=range(0, 256))
        raise
    if post_checkout:
        run_post_checkout(repo, path, commit)


def run_post_checkout(repo: Repo, path: str, commit: str) -> int:
    """Run the post-checkout hook of a new worktree at `path` as `git worktree add` does; its exit status.

    A look at the hooks directory first (core.hooksPath honoured) spares a git call when there is none.
    """
    wt = repo.git.at(path)
    hook = os.path.join(hooks_dir(repo, path), "post-checkout")
    if not (os.path.isfile(hook) and os.access(hook, os.X_OK)):
        return 0
    head = wt("rev-parse", "HEAD")
    return wt.passthrough("hook", "run", "--ignore-missing", "post-checkout", "--", "0" * len(head), head, "1",
                          stdout_to_stderr=True)


def config_shared(repo: Repo) -> bool:
    """Whether every new worktree sees the configuration loaded in `repo` (so what git reads from it
    there needs no git call there): not with per-worktree config files (extensions.worktreeConfig)
    or conditional includes, which only git resolves for each worktree."""
    config = repo.config
    return not any(key.startswith("includeif.") for key in config) and \
        config.get("extensions.worktreeconfig", [""])[-1].lower() not in ("true", "yes", "on", "1")


def hooks_dir(repo: Repo, path: str) -> str:
    """The hooks directory of the worktree at `path`, as `git rev-parse --git-path hooks` says there.

    Read from the configuration already loaded (no git call: spawn of many asks once per task)
    when that is the worktree's (config_shared).
    """
    if not config_shared(repo):
        return os.path.join(path, repo.git.at(path)("rev-parse", "--git-path", "hooks"))
    configured = repo.config.get("core.hookspath", [""])[-1]
    # a relative core.hooksPath is relative to where hooks run: the top of the worktree
    return os.path.join(path, os.path.expanduser(configured)) if configured else \
        os.path.join(repo.common_dir, "hooks")


def sparse_dirs(values: Sequence[str]) -> list[str]:
    """Directories for a cone-mode sparse checkout, from --sparse arguments or agent.sparse values.

    Each value may hold several directories separated by whitespace; `./` and trailing slashes
    are dropped. Raises AgentError for a path outside the worktree.
    """
    from git_agents.core.errors import AgentError

    dirs: dict[str, None] = {}
    for value in values:
        for word in value.split():
            path = os.path.normpath(word).strip("/")
            if os.path.isabs(word) or path == ".." or path.startswith("../"):
                raise AgentError(f"sparse directory '{word}' is outside the worktree",
                                 hint="name directories relative to the top of the repository, e.g. src/mixer")
            if path and path != ".":
                dirs[path] = None
    return list(dirs)


def _enable_worktree_config(repo: Repo) -> None:
    """Set extensions.worktreeConfig once, under our lock: `git sparse-checkout` would set it itself,
    and two of those at once would fail with "could not lock config file"."""
    if repo.config.get("extensions.worktreeconfig", [""])[-1].lower() in ("true", "yes", "on", "1"):
        return
    with RepoLock(repo.common_dir):
        config = os.path.join(repo.common_dir, "config")
        if repo.git.run("config", "--file", config, "--bool", "--get", "extensions.worktreeConfig",
                        ok=(0, 1)).out.strip() != "true":
            repo.git.run("config", "--file", config, "extensions.worktreeConfig", "true")
    repo.reload_config()


def set_sparse(repo: Repo, path: str, dirs: Sequence[str]) -> None:
    """Make the worktree at `path` a cone-mode sparse checkout of `dirs` (its own setting alone:
    core.sparseCheckout goes into the worktree's config.worktree, not the shared config)."""
    _enable_worktree_config(repo)
    repo.git.at(path).run("sparse-checkout", "set", "--cone", "--", *dirs)


def is_sparse(repo: Repo, path: str) -> bool:
    """Whether the worktree at `path` is a sparse checkout."""
    res = repo.git.at(path).run("config", "--bool", "--get", "core.sparseCheckout", ok=(0, 1))
    return res.out.strip() == "true"


def git_dir_of(worktree: str) -> str | None:
    """The private git directory of the linked worktree `worktree`, from its `.git` file with no
    git call (None when that is not such a file, or unreadable)."""
    try:
        with open(os.path.join(worktree, ".git"), encoding="utf-8", errors="surrogateescape") as fh:
            line = fh.read().strip()
    except OSError:
        return None
    if not line.startswith("gitdir: "):
        return None
    path = line.removeprefix("gitdir: ")
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(worktree, path))


def git_file(worktree: str, name: str) -> str | None:
    """The text of the file `name` (HEAD, locked) in the linked worktree's git directory,
    stripped, read with no git call; None when there is none or it cannot be read."""
    git_dir = git_dir_of(worktree)
    if git_dir is None:
        return None
    try:
        with open(os.path.join(git_dir, name), encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read().strip()
    except OSError:
        return None


def detached_head(path: str) -> str | None:
    """The commit the worktree at `path` is detached at, read from its files with no git call
    (`<path>/.git` names its git directory, whose HEAD holds the commit); None when that is not
    plain to see there (HEAD on a branch; a reftable repository, whose HEAD file is a stub): ask git."""
    head = git_file(path, "HEAD") or ""
    return head if len(head) in (40, 64) and all(c in "0123456789abcdef" for c in head) else None


def newest_mtime(path: str) -> float:
    """The newest modification time of anything in the worktree at `path` (files and directories,
    its `.git` file left out, and the index git keeps for it): when it last changed."""
    newest, git_dir = 0.0, git_dir_of(path)
    try:
        newest = os.stat(path).st_mtime
        if git_dir is not None:
            newest = max(newest, os.stat(os.path.join(git_dir, "index")).st_mtime)
    except OSError:
        pass
    for _entry, st in _walk(path):
        newest = max(newest, st.st_mtime)
    return newest


def _walk(path: str) -> Iterator[tuple[os.DirEntry[str], os.stat_result]]:
    """Every file and directory under the worktree at `path` with its lstat, its `.git` left out."""
    stack = [path]
    while stack:
        top = stack.pop()
        try:
            entries = os.scandir(top)
        except OSError:
            continue
        with entries:
            for entry in entries:
                if entry.name == ".git" and top == path:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                yield entry, st


def worktree_size(path: str) -> int:
    """Bytes on disk under `path` (as du counts them), without its `.git` file or directory.

    A walk in Python (os.scandir, no subprocess); hard-linked files are counted once.
    """
    total = 0
    seen: set[tuple[int, int]] = set()
    for entry, st in _walk(path):
        if not entry.is_dir(follow_symlinks=False) and st.st_nlink > 1:
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        total += st.st_blocks * 512
    return total


def remove_worktree(repo: Repo, path: str, *, force: bool = False) -> None:
    """Remove a worktree (its directory and git's record of it), unlocking it first (see LOCK_REASON):
    a removal that fails (uncommitted work, without `force`) leaves it locked again."""
    with RepoLock(repo.common_dir, "worktrees"):
        if not os.path.isdir(path):
            _prune(repo)
            return
        # Ours is unlocked (read from its lock file, no git call); one someone else locked is
        # removed only with `force`, as before.
        unlocked = _locked_by_us(path) and repo.git.run("worktree", "unlock", path, ok=range(0, 256)).code == 0
        try:
            repo.git.run("worktree", "remove", *(["--force", "--force"] if force else []), path)
        except BaseException:
            if unlocked and os.path.isdir(path):
                repo.git.run("worktree", "lock", "--reason", LOCK_REASON, path, ok=range(0, 256))
            raise


def _locked_by_us(path: str) -> bool:
    """Whether the worktree at `path` is locked with LOCK_REASON (its admin dir's `locked` file)."""
    return git_file(path, "locked") == LOCK_REASON


def prune_worktrees(repo: Repo) -> None:
    """Forget worktrees whose directories were deleted by hand (ours are unlocked for it first)."""
    with RepoLock(repo.common_dir, "worktrees"):
        _prune(repo)


def _prune(repo: Repo) -> None:
    """`git worktree prune`, after unlocking the worktrees git-agents locked whose directories are
    gone (a worktree someone else locked, say on a removable disk, stays as it is). Under the lock."""
    listed = repo.git.run("worktree", "list", "--porcelain", "-z", ok=range(0, 256))
    path = ""
    for field in listed.out.split("\0"):
        key, _, value = field.partition(" ")
        if key == "worktree":
            path = value
        elif key == "locked" and value == LOCK_REASON and path and not os.path.lexists(path):
            repo.git.run("worktree", "unlock", path, ok=range(0, 256))
    repo.git.run("worktree", "prune", ok=range(0, 256))


def unsaved_work(repo: Repo, path: str) -> list[str]:
    """`git status --porcelain` lines for uncommitted and untracked work in a worktree."""
    # --no-optional-locks: a read must not take index.lock, which would make the agent's own
    # `git add`/`git commit` in that worktree fail; it is faster too (no index write-back).
    out = repo.git.at(path).run("--no-optional-locks", "status", "--porcelain", "-z",
                                "--untracked-files=all").out
    entries: list[str] = []
    fields = out.split("\0")
    i = 0
    while i < len(fields):
        entry = fields[i]
        if entry:
            entries.append(entry)
            if entry[0] in "RC":  # a rename carries its source path in the next field
                i += 1
        i += 1
    return entries


def describe_unsaved(entries: list[str], limit: int = 3) -> str:
    """The first few paths of `unsaved_work` entries, for a refusal message."""
    return ", ".join(e[3:] for e in entries[:limit]) + (", ..." if len(entries) > limit else "")

