"""Merging task branches into a target branch without touching any worktree until the end.

Each merge is computed with `git merge-tree --write-tree` (git >= 2.38) and recorded with
`git commit-tree`, exactly as `git merge --no-ff -m <message>` would have made it: the same
parents, tree and message. The target branch then moves once, by fast-forward in the
worktree that has it checked out (or by a compare-and-swap `update-ref` when none has), so
it is only ever at its old commit or at one where every merged task is completely in.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from git_agents.core.errors import AgentError, GitError
from git_agents.core.git import Git, decode, encode, idents, quote_path
from git_agents.core.refs import branch_name, branch_ref, is_branch_ref
from git_agents.merging.hooks import MergeHooks
from git_agents.tasks.store import TaskState


@dataclass
class Attempt:
    """The result of merging one task in memory."""

    task_id: str
    status: str  # "merged", "conflict", "up-to-date", "check-failed", "blocked" (untracked file in the way),
    # "hook-refused" (a pre-merge-commit, prepare-commit-msg or commit-msg hook exited non-zero)
    commit: str = ""
    conflicts: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # git's CONFLICT lines, e.g. "CONFLICT (rename/delete): ..."
    check: str = ""  # "passed", "failed", or "" when no check ran
    check_output: str = ""
    rebased: bool = False  # merged after `--rebase` replayed it onto the target
    tree: str = ""  # the tree of the merge commit (merged) or of the unchanged target (up-to-date)
    resolved_by: str = ""  # --resolve: who resolved its conflict with the target (merged), or tried (conflict)
    resolve_attempts: int = 0
    resolve_log: str = ""  # the tail of a failed resolver's log


@dataclass(frozen=True)
class MergeTreeResult:
    """`git merge-tree --write-tree -z --name-only` output, parsed."""

    tree: str
    conflicted: list[str]  # paths left with conflict stages
    messages: list[tuple[str, list[str], str]]  # (type, paths involved, message), in git's order

    @property
    def conflict_paths(self) -> list[str]:
        """Every path a conflict involves: the conflicted ones, then e.g. a rename's source path."""
        paths = list(self.conflicted)
        for kind, involved, _ in self.messages:
            if kind.startswith("CONFLICT"):
                paths += involved
        return list(dict.fromkeys(paths))


def parse_merge_tree(out: str) -> MergeTreeResult:
    """Parse `merge-tree --write-tree -z --name-only` output (with or without its messages section).

    Layout: `<tree> NUL`, then one `<path> NUL` per conflicted file, then (after an empty field,
    only when there were conflicts) per message `<n> NUL <path> NUL x n <type> NUL <message> NUL`.
    Paths may hold any byte but NUL, so nothing is split on newlines.
    """
    fields = out.split("\0")
    tree = fields[0].strip()
    i = 1
    conflicted: list[str] = []
    while i < len(fields) and fields[i] != "":
        conflicted.append(fields[i])
        i += 1
    i += 1  # the empty field that ends the conflicted-file section
    messages: list[tuple[str, list[str], str]] = []
    while i < len(fields) and fields[i].isdigit():
        count = int(fields[i])
        paths = fields[i + 1:i + 1 + count]
        i += 1 + count
        if i + 1 >= len(fields):
            break
        messages.append((fields[i], paths, fields[i + 1].rstrip("\n")))
        i += 2
    return MergeTreeResult(tree, list(dict.fromkeys(conflicted)), messages)


def merge_trees(git: Git, ours: str, theirs: str) -> tuple[bool, MergeTreeResult]:
    """Merge two commits in memory (no ref, index or worktree touched): (clean?, parsed result)."""
    res = git.run("merge-tree", "--write-tree", "-z", "--name-only", ours, theirs, ok=(0, 1))
    return res.code == 0, parse_merge_tree(res.out)


STYLES = ("merge", "squash", "rebase")
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree (SHA-1 repositories)


CommitMaker = Callable[[str, Sequence[str], str], str]  # (tree, parents, message) -> the new commit


def commit_tree(git: Git, tree: str, parents: Sequence[str], text: str, *, sign: bool = False) -> str:
    """A new commit of `tree` on `parents` with the message `text`, made by `git commit-tree`."""
    # commit-tree ignores commit.gpgSign: -S (which takes user.signingKey) signs as `git merge` would.
    return git("commit-tree", *(["-S"] if sign else []), tree, *(a for p in parents for a in ("-p", p)), "-F", "-",
               input=text)


@contextmanager
def commit_maker(git: Git, config: Mapping[str, list[str]], scratch_dir: str, count: int,
                 read_idents: Callable[[], tuple[str, str]] | None = None) -> Iterator[CommitMaker | None]:
    """Makes up to `count` unsigned commits as `git commit-tree` does, byte for byte (tree, parents,
    author, committer, message: commit_tree_extended in git's commit.c), through one `git
    hash-object` for them all instead of a commit-tree process each (each commit passes through a
    file of its own in `scratch_dir`, removed at the end). None (use commit_tree) for fewer than
    4, which cannot pay for reading the idents, or when the repository writes commit messages
    in another encoding than UTF-8 (commit-tree adds a header then). A message commit-tree would
    change or refuse goes to commit_tree. `read_idents`: (author, committer), e.g. Repo.idents
    (default: core.git.idents)."""
    import tempfile

    encoding = (config.get("i18n.commitencoding") or ["utf-8"])[-1].lower()
    if count < 4 or encoding not in ("utf-8", "utf8") or "\n" in scratch_dir or not os.path.isdir(scratch_dir):
        yield None  # (a path with a newline cannot go through --stdin-paths)
        return
    author, committer = read_idents() if read_idents is not None else idents(git, config)
    ident_lines = f"author {author}\ncommitter {committer}\n"
    fd, scratch = tempfile.mkstemp(prefix="commit-", dir=scratch_dir)
    os.close(fd)

    def make(tree: str, parents: Sequence[str], text: str) -> str:
        data = encode(f"tree {tree}\n" + "".join(f"parent {p}\n" for p in parents) + ident_lines + "\n" + text)
        if len(set(parents)) < len(parents) or not _plain_utf8(data):
            return commit_tree(git, tree, parents, text)  # commit-tree drops the parent, or rewrites the text
        with open(scratch, "wb") as fh:
            fh.write(data)
        return decode(ask(encode(scratch)))
    try:
        with git.session("hash-object", "-w", "-t", "commit", "--stdin-paths", "--no-filters") as ask:
            yield make
    finally:
        with contextlib.suppress(OSError):
            os.unlink(scratch)


def _plain_utf8(data: bytes) -> bool:
    """Whether commit-tree writes `data` as it is: no NUL (refused) and UTF-8 that git's verify_utf8
    accepts (else it re-encodes the bytes it rejects as Latin-1, and warns)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "\0" not in text and not any((ord(c) & 0x1FFFFE) == 0xFFFE or 0xFDD0 <= ord(c) <= 0xFDEF
                                        for c in text if ord(c) >= 0xFDD0)


def merge_in_memory(git: Git, current: str, tip: str, message: str, task_id: str,
                    current_tree: str | None = None, *, sign: bool = False, hooks: MergeHooks | None = None,
                    branch: str = "", style: str = "merge", make: CommitMaker | None = None) -> Attempt:
    """Merge `tip` into the commit `current` like `git merge --no-ff`; no ref or worktree changes.

    Given `current_tree` (the tree of `current`), the "already up to date" test, a second git
    call, runs only when the merge leaves that tree unchanged, as it must when `tip` is in.
    With `hooks`, git merge's commit hooks run on the result first (merging/hooks.py): one that
    refuses makes the attempt "hook-refused" (why in check_output); `branch` names the tip for them.
    `style` "squash" makes one commit with `current` as its only parent (`git merge --squash` and
    a commit with `message`); "rebase" replays the task's commits (see `rebase_in_memory`).
    `make` makes the commit (see commit_maker; default commit_tree).
    """
    if make is None:
        def make(tree: str, parents: Sequence[str], text: str) -> str:
            return commit_tree(git, tree, parents, text, sign=sign)
    if style == "rebase":
        return rebase_in_memory(git, current, tip, task_id, sign=sign)
    if current_tree is None and git.ok("merge-base", "--is-ancestor", tip, current):
        return Attempt(task_id, "up-to-date", tree=git("rev-parse", f"{current}^{{tree}}"))
    clean, result = merge_trees(git, current, tip)
    if not clean:
        return Attempt(task_id, TaskState.CONFLICT, conflicts=result.conflict_paths,
                       messages=[m for kind, _, m in result.messages if kind.startswith("CONFLICT")])
    if result.tree == current_tree and git.ok("merge-base", "--is-ancestor", tip, current):
        return Attempt(task_id, "up-to-date", tree=result.tree)
    tree, text = result.tree, message + "\n"
    if style == "squash":
        if tree == (current_tree or git("rev-parse", f"{current}^{{tree}}")):  # its changes are all in already
            return Attempt(task_id, "up-to-date", tree=tree)
        return Attempt(task_id, TaskState.MERGED, commit=make(tree, [current], text), tree=tree)
    if hooks is not None and hooks.any_commit_hook:
        tree, text, refused = hooks.before_commit(tree, message, branch or tip)
        if refused:
            return Attempt(task_id, "hook-refused", check_output=refused)
    return Attempt(task_id, TaskState.MERGED, commit=make(tree, [current, tip], text), tree=tree)


def rebase_in_memory(git: Git, current: str, tip: str, task_id: str, *, sign: bool = False) -> Attempt:
    """Replay the task's commits onto `current` as `git rebase` does, in memory; the last one is `commit`.

    The commits are those `git rebase` picks: not merges, not already in `current` (by patch id),
    oldest first; one that becomes empty is dropped. Each keeps its author and message.
    git 2.39's merge-tree has no --merge-base, so each pick merges two stand-in commits whose
    only common ancestor has the tree of the picked commit's parent: the three-way merge a
    cherry-pick makes (base: the parent, ours: the chain so far, theirs: the commit).
    """
    picks = git("rev-list", "--reverse", "--no-merges", "--right-only", "--cherry-pick", f"{current}...{tip}").split()
    if not picks:
        return Attempt(task_id, "up-to-date", tree=git("rev-parse", f"{current}^{{tree}}"))
    head = current
    tree = git("rev-parse", f"{current}^{{tree}}")
    for pick in picks:
        header, _, message = git.run("cat-file", "commit", pick).out.partition("\n\n")
        lines = header.split("\n")
        pick_tree = lines[0].split()[1]
        parents = [line.split()[1] for line in lines if line.startswith("parent ")]
        author = next(line for line in lines if line.startswith("author "))[len("author "):]
        name, _, rest = author.partition(" <")
        email, _, date = rest.partition("> ")
        parent_tree = git("rev-parse", f"{parents[0]}^{{tree}}") if parents else EMPTY_TREE
        base = git("commit-tree", parent_tree, "-m", "base")
        ours = git("commit-tree", tree, "-p", base, "-m", "ours")
        theirs = git("commit-tree", pick_tree, "-p", base, "-m", "theirs")
        clean, result = merge_trees(git, ours, theirs)
        if not clean:
            return Attempt(task_id, TaskState.CONFLICT, conflicts=result.conflict_paths,
                           messages=[m for kind, _, m in result.messages if kind.startswith("CONFLICT")])
        if result.tree == tree:  # became empty: git rebase drops it
            continue
        env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": "@" + date}
        head = git.run("commit-tree", *(["-S"] if sign else []), result.tree, "-p", head, "-F", "-",
                       input=message, env=env).out.strip()
        tree = result.tree
    if head == current:
        return Attempt(task_id, "up-to-date", tree=tree)
    return Attempt(task_id, TaskState.MERGED, commit=head, tree=tree)


def untracked_files(git: Git, worktree: str) -> list[str]:
    """Untracked, not ignored entries of a worktree (an untracked directory as one `dir/` entry).

    Ignored files are left out: `git merge` (and the `read-tree -m -u` we land with) overwrite them.
    """
    out = git.at(worktree).run("--no-optional-locks", "ls-files", "-z", "--others", "--exclude-standard",
                               "--directory", "--no-empty-directory").out
    return [p for p in out.split("\0") if p]


def path_in_the_way(worktree: str, untracked: list[str], added: list[str]) -> str | None:
    """The first untracked path of `worktree` that adding the files `added` would overwrite, or None.

    In the way, as `git merge` sees it: an untracked file at an added path or where an added path
    needs a directory, or an untracked directory's file at (or on the way to) an added path.
    """
    files = {p for p in untracked if not p.endswith("/")}
    dirs = [p for p in untracked if p.endswith("/")]
    for path in added:
        parts = path.split("/")
        leading = ["/".join(parts[:n]) for n in range(1, len(parts))]
        for name in [*leading, path]:
            if name in files:
                return name
        if path + "/" in dirs:  # an untracked directory (with files in it) where the task adds a file
            return path + "/"
        for d in dirs:
            if path.startswith(d):
                # Inside an untracked directory: only what exists on the way to the path is in the way.
                for name in [*leading, path]:
                    if len(name) >= len(d) and os.path.lexists(os.path.join(worktree, name)) and \
                            (name == path or not os.path.isdir(os.path.join(worktree, name))):
                        return name
    return None


def added_paths(git: Git, old: str, new: str) -> list[str]:
    """Paths that exist in commit `new` but not in `old`."""
    return [path for path, (existed, _) in _changed(git, old, new).items() if not existed]


class TargetMoved(AgentError):
    """A landing found the target, or its worktree's HEAD, not where it expected them, and wrote
    nothing. `live_message`/`live_hint` say it for the run that has just journalled the landing
    (which then drops its journal: there is nothing to continue or undo)."""

    def __init__(self, message: str, *, hint: str, live_message: str = "", live_hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.live_message = live_message or message
        self.live_hint = live_hint or hint


class Head(NamedTuple):
    """A worktree's HEAD as `rev-parse HEAD --symbolic-full-name HEAD` gives it."""

    commit: str
    ref: str  # the full name of the branch checked out there; "HEAD" when detached


def advance_branch(git: Git, branch: str, old: str, new: str, worktree: str | None, reason: str,
                   record: str | None = None, *, head: Head | None = None) -> None:
    """Move `branch` from `old` to its descendant `new`, updating the worktree that has it checked out.

    `record`: the file in which what the update writes into the worktree is kept (see `Writes`),
    so that a later put-back (merge --continue, --abort) restores only that; None: kept in memory.
    `head`: the worktree's HEAD, if the caller has just read it (else read here).
    """
    if worktree:
        # No update of a worktree whose HEAD is not where the plan started (a commit made there
        # meanwhile), nor of one switched to another branch (even at the same commit): read-tree
        # would write into that branch's worktree; update-ref's compare-and-swap refuses only after it.
        if head is None:
            head = Head(*git.at(worktree)("rev-parse", "HEAD", "--symbolic-full-name", "HEAD").split("\n")[:2])
        if head.ref != branch_ref(branch):
            now = branch_name(head.ref) if is_branch_ref(head.ref) else "a detached HEAD"
            raise TargetMoved(f"{quote_path(worktree)} no longer has '{branch}' checked out (now {now})",
                              hint=f"switch it back to '{branch}' (git switch {branch}) and run the merge again")
        if head.commit != old:
            raise TargetMoved(f"'{branch}' moved while merging (now {head.commit[:12]}, expected {old[:12]})",
                              hint="run the merge again")
        # A two-tree read-tree is the fast-forward `git merge --ff-only` does (local changes are
        # carried over, or it refuses, as checkout does) without merge's extra index refreshes:
        # half the time on a 100,000-file tree. Then the ref, compare-and-swap. Idempotent: if
        # the index is already at `new` (interrupted in between), read-tree keeps it.
        wt = git.at(worktree)
        writes = Writes.load(record, old, new)
        try:
            writes.update(git, worktree, old, new, lambda: wt.run("read-tree", "-m", "-u", old, new))
        except GitError as exc:
            # A run killed half-way through an earlier update (or a full disk now) leaves files of
            # `new` behind: put them back and try once more, then give up with the worktree as it was.
            if not wt.ok("diff-index", "--cached", "--quiet", old, "--"):
                raise
            kept = put_worktree_back(git, worktree, old, new, writes.written)
            try:
                writes.update(git, worktree, old, new, lambda: wt.run("read-tree", "-m", "-u", old, new))
            except GitError as again:
                kept = put_worktree_back(git, worktree, old, new, writes.written)
                raise _update_failed(worktree, again, kept) from exc
    # From the worktree that has it checked out, so that its HEAD's reflog records the move too.
    (git.at(worktree) if worktree else git).update_ref(branch_ref(branch), new, old, reason=reason)


Identity = list[int]  # (inode, size, mtime ns, ctime ns, mode) of a path, as lstat gives them


def identity(full: str) -> Identity | None:
    """What tells one file at `full` from another (any write changes it), or None when nothing is there."""
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode]


@dataclass
class Writes:
    """What the landings of one merge wrote into the target's worktree: path -> the file each left there.

    Each `read-tree -m -u` is bracketed: the paths it may write (the files that differ between
    `old` and `new`) are looked at just before it and, when it fails, just after; a path that
    changed in between was written (or removed) by it, and its file then is recorded. The record
    (JSON, next to the merge journal) is written before the next step, so a put-back after a
    failure, or after a later --continue or --abort, restores exactly these files, untouched
    since, and never a file the user saved meanwhile, whatever it holds. (When git itself is
    killed half-way, as at a reboot, nothing is recorded: the files it completed hold the task's
    version and are put back; the one it was writing is left, and named, for the user to decide.)
    """

    path: str | None
    old: str
    new: str
    written: dict[str, Identity | None] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | None, old: str, new: str) -> Writes:
        """The record kept at `path` for a landing from `old` to `new` (an empty one if none, or another's)."""
        import json

        if path is not None:
            try:
                with open(path, encoding="utf-8") as fh:
                    data = json.load(fh)
                if data.get("version") == 1 and data.get("old") == old and data.get("new") == new:
                    return cls(path, old, new, dict(data["written"]))
            except (OSError, ValueError, KeyError, TypeError):
                pass  # none yet (or unreadable: nothing was recorded as written)
        return cls(path, old, new)

    def update(self, git: Git, worktree: str, old: str, new: str, step: Callable[[], object]) -> None:
        """Run `step` (a read-tree); when it fails, record the files it changed before it stopped.

        (Once it succeeds the index is at `new`, and nothing is put back file by file.)
        """
        paths = list(_changed(git, old, new))
        before = {p: identity(os.path.join(worktree, p)) for p in paths}
        try:
            step()
        except BaseException:
            after = {p: identity(os.path.join(worktree, p)) for p in paths}
            changed = {p: after[p] for p in paths if after[p] != before[p]}
            if changed:
                self.written.update(changed)
                self._save()
            raise

    def _save(self) -> None:
        if self.path is None:
            return
        import json

        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "old": self.old, "new": self.new, "written": self.written}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


def in_the_way(git: Git, worktree: str, old: str, new: str) -> list[str]:
    """The paths that moving `worktree` from `old` to `new` would write and that differ there from `old`.

    A local change (or an untracked file) at such a path is the user's, made after the target was
    checked clean: landing would overwrite it, or fail half-way and leave it to be guessed about.
    """
    changes = _changed(git, old, new)
    return [p for p in _differing(git.at(worktree), list(changes)) if p in changes] if changes else []


def _update_failed(worktree: str, exc: GitError, kept: list[str]) -> AgentError:
    why = next((line for line in exc.stderr.splitlines() if line.strip()), f"exit status {exc.retcode}")
    for prefix in ("fatal: ", "error: "):
        why = why.removeprefix(prefix)
    where = (f"; left as they are (not written by this merge): {', '.join(kept)}" if kept
             else "; it is back as it was")
    return AgentError(f"could not update the worktree at {worktree}: {why}{where}",
                      hint="fix what stopped it (a full disk, a file in the way, another git holding a lock), "
                           "then: git agent-merge --continue\nor undo the run with: git agent-merge --abort")


@functools.lru_cache(maxsize=8)  # a landing asks again for the diff its plan looked at (commits do not change)
def _changed(git: Git, old: str, new: str) -> dict[str, tuple[bool, str]]:
    """Paths that differ between two commits: {path: (exists in old, blob id in new)}; do not modify it."""
    fields = git.run("diff-tree", "-r", "-z", "--no-renames", "--raw", old, new).out.split("\0")
    changes: dict[str, tuple[bool, str]] = {}
    i = 0
    while i < len(fields):
        if fields[i].startswith(":") and i + 1 < len(fields):  # ":<old mode> <new mode> <old id> <new id> <st>"
            meta = fields[i][1:].split()
            changes[fields[i + 1]] = (meta[0] != "000000", meta[3])
            i += 2
        else:
            i += 1
    return changes


def _differing(wt: Git, paths: list[str]) -> list[str]:
    """Those of `paths` whose worktree file differs from the index (changed, missing or untracked)."""
    found: list[str] = []
    for start in range(0, len(paths), 500):  # bounded command lines
        out = wt.run("--literal-pathspecs", "--no-optional-locks", "status", "--porcelain", "-z", "--no-renames",
                     "--untracked-files=all", "--ignored=no", "--", *paths[start:start + 500]).out
        found += [entry[3:] for entry in out.split("\0") if len(entry) > 3]
    return found


def put_worktree_back(git: Git, worktree: str, old: str, new: str,
                      written: dict[str, Identity | None] | None = None) -> list[str]:
    """Undo a partial `read-tree -m -u old new` in `worktree`, whose index is still at `old`.

    Each path the update touches is put back as `old` has it when the landing recorded writing
    the file there now (`written`, see `Writes`), when it holds
    exactly `new`'s version (which git keeps: nothing is lost), or nothing is there. Any other file was not written
    by the landing, or was changed since (the user's, whatever it holds) and is left alone.
    Returns those paths; raises AgentError when the worktree still differs afterwards (e.g.
    the disk is still full).
    """
    wt = git.at(worktree)
    changes = _changed(git, old, new)
    if not changes:
        return []
    written = written or {}
    kept: list[str] = []
    restore: list[str] = []
    removed: list[str] = []
    for path in _differing(wt, list(changes)):
        if path not in changes:
            continue
        in_old, new_blob = changes[path]
        full = os.path.join(worktree, path)
        now = identity(full)
        ours = now is None or (path in written and written[path] == now) or _is_blob(wt, path, full, new_blob)
        if not ours:
            kept.append(path)
            continue
        if now is not None and not os.path.isdir(full):
            os.unlink(full)
            removed.append(path)
        if in_old:
            restore.append(path)
    for path in removed:  # directories the update made for new files (only empty ones go)
        parent = os.path.dirname(path)
        while parent:
            try:
                os.rmdir(os.path.join(worktree, parent))
            except OSError:
                break
            parent = os.path.dirname(parent)
    if restore:
        wt.run("checkout-index", "-f", "-z", "--stdin", input="\0".join(restore) + "\0")
    # The rewritten files have new stat data: refresh it, or the next read-tree calls them "not uptodate".
    wt.run("update-index", "-q", "--refresh", ok=(0, 1))
    left = [p for p in _differing(wt, list(changes)) if p in changes and p not in kept]
    if left:
        raise AgentError(f"could not put the worktree at {worktree} back: {', '.join(left[:5])} still differ",
                         hint="free some space and run the same command again")
    return kept


def _is_blob(wt: Git, path: str, full: str, blob: str) -> bool:
    """Whether the regular file at `path` holds exactly `blob`, as git would check it out."""
    if os.path.islink(full) or os.path.isdir(full) or blob == "0" * len(blob):
        return False
    return bool(wt("hash-object", "--path", path, "--", path) == blob)
