"""The worktree pool: warm worktrees `pool-1` … `pool-N` that tasks claim and release.

A slot is claimed by creating the ref `refs/agents/pool/<slot>` with
`git update-ref <ref> <claim> ""`, which git does only when the ref does not exist yet: of any
number of racing claimers exactly one wins. The ref points at a blob holding the claim's
details (a JSON object with a "version"), so a claim and who made it appear in one atomic
step; the ref is the only source of truth. Release resets the slot while the ref is still
held, then deletes the ref only if it still points at the same claim, so a slot is never
seen free while it is dirty and a claim is never dropped by someone who did not hold it.

A claim for a new task also creates the task's branch (and the hold of its port lease's blob)
in the same `git update-ref --stdin` transaction as the claim ref: a kill leaves all of them or
none. git 2.39 gives one reflog message to a whole transaction: it is the branch's (`branch:
Created from <commit>`, as `git branch` writes), and the claim ref, which git logs only with
core.logAllRefUpdates=always, gets the same.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from git_agents.core.errors import AgentError, ExitCode, GitError
from git_agents.core.lock import RepoLock
from git_agents.core.procs import process_start
from git_agents.core.refs import Oid, branch_ref
from git_agents.core.repo import Repo
from git_agents.core.worktrees import (
    add_worktree,
    describe_unsaved,
    detached_head,
    is_sparse,
    linked_worktrees,
    list_worktrees,
    prune_worktrees,
    remove_worktree,
    set_sparse,
    unsaved_work,
)
from git_agents.tasks import isolation
from git_agents.tasks.selection import branch_exists_error, resolve_base
from git_agents.tasks.store import Task, load_tasks, now_iso, write_config

REF_PREFIX = "refs/agents/pool/"
CLAIM_VERSION = 1
BASE_KEY = "agent-pool.base"  # the branch free slots are kept at (set by `create --base`)
_SLOT = re.compile(r"pool-([1-9][0-9]*)")


def _hostname() -> str:
    return os.uname().nodename


class PoolExhausted(AgentError):
    """No free slot (and the pool may not grow)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, code=ExitCode.FAILED)


@dataclass
class Claim:
    """Who holds a slot: the content of the blob its claim ref points at."""

    slot: str
    oid: str = ""
    task: str = ""
    pid: str = ""
    pid_start: str = ""
    claimed_at: str = ""
    host: str = ""
    commit: str = ""  # the slot's HEAD when claimed; its history is never "lost" by a release
    nonce: str = field(default_factory=lambda: os.urandom(8).hex())  # two claims never share a blob
    path: str = ""  # the slot's worktree (not stored in the blob)
    # (ref, value) created with the claim ref in its transaction (not stored in the blob)
    made: tuple[tuple[str, str], ...] = field(default=(), init=False)

    def payload(self) -> str:
        """The blob's text."""
        import json  # only commands that write or read claims pay for it

        return json.dumps({"version": CLAIM_VERSION, "slot": self.slot, "task": self.task, "pid": self.pid,
                           "pid_start": self.pid_start, "claimed_at": self.claimed_at, "host": self.host,
                           "commit": self.commit, "nonce": self.nonce}, sort_keys=True) + "\n"

    @classmethod
    def parse(cls, slot: str, oid: str, text: str) -> Claim:
        """A claim read back from its blob; unknown or damaged content gives a claim with no details."""
        import json

        try:
            data = json.loads(text)
        except ValueError:
            data = {}
        if not isinstance(data, dict) or data.get("version") != CLAIM_VERSION:
            return cls(slot, oid, nonce="")
        return cls(slot, oid, **{k: str(data.get(k, "")) for k in
                                 ("task", "pid", "pid_start", "claimed_at", "host", "commit", "nonce")})

    def alive(self) -> bool | None:
        """Whether the claiming process still runs; None when it ran on another host (unknowable)
        or when no process holds the claim (a task's, until its agent starts: see TASK_OWNER)."""
        if (self.host and self.host != _hostname()) or not self.pid:
            return None
        from git_agents.tasks import agent  # not at import: a claim never asks (start-up, issue 22)

        return agent.is_alive(self.pid, self.pid_start)


@dataclass
class Slot:
    """One slot: its worktree (if it exists) and its claim (if held)."""

    name: str
    path: str
    head: str = ""
    exists: bool = False  # a live worktree of this repository
    claim: Claim | None = None

    @property
    def number(self) -> int:
        """The slot's number (pool-3 -> 3)."""
        return int(self.name.split("-", 1)[1])


@dataclass
class PoolRequest:
    """How a task asks the pool for a worktree."""

    wait: float | None = None  # seconds to wait for a release (math.inf: forever); None: fail at once
    grow: int | None = None  # grow the pool by a slot when none is free, up to this many (0: no limit)
    sparse: tuple[str, ...] = ()  # a cone-mode sparse checkout of these directories (a grown slot is born sparse)


def ref_of(slot: str) -> str:
    """The claim ref of a slot."""
    return REF_PREFIX + slot


def slot_path(repo: Repo, slot: str) -> str:
    """Where a slot's worktree lives."""
    return os.path.join(repo.worktree_root, slot)


def resolve_slot(repo: Repo, spec: str) -> str:
    """The slot named by `spec`: a slot name (pool-3) or the path of a slot's worktree."""
    if _SLOT.fullmatch(spec):
        return spec
    path = os.path.realpath(spec)
    if _SLOT.fullmatch(os.path.basename(path)) and \
            os.path.dirname(path) == os.path.realpath(repo.worktree_root):
        return os.path.basename(path)
    raise AgentError(f"'{spec}' is not a pool slot",
                     hint="name a slot (pool-3) or its path; `git agent-pool list` shows them")


def pool_base(repo: Repo, base: str | None = None) -> tuple[str, str]:
    """(branch, commit) free slots are kept at: `base`, agent-pool.base, or the main worktree's branch."""
    return resolve_base(repo, base or repo.setting(BASE_KEY) or None)


def read_slots(repo: Repo, *, details: bool = False) -> dict[str, Slot]:
    """Every slot, by number: worktrees named pool-N under the worktree root, and claim refs.

    Without `details` a claim carries only its ref's value (enough to tell free from taken), and
    the worktrees are read from their files (core.worktrees.linked_worktrees, no git call), which
    give a slot's `head` only when it is detached, as a free slot is; with `details`, from git.
    """
    return _read_slots(repo, details=details)[0]


def _read_slots(repo: Repo, *, details: bool = False, also: Sequence[str] = ()) -> tuple[dict[str, Slot], set[str]]:
    """read_slots, and which of the full ref names `also` exist (asked in the same git call)."""
    root = os.path.realpath(repo.worktree_root)
    slots: dict[str, Slot] = {}
    for wt in list_worktrees(repo) if details else linked_worktrees(repo):
        name = os.path.basename(wt.path)
        if _SLOT.fullmatch(name) and os.path.dirname(os.path.realpath(wt.path)) == root:
            slots[name] = Slot(name, wt.path, wt.head, exists=not wt.prunable and os.path.isdir(wt.path))
    out = repo.git.run("for-each-ref", "--format=%(objectname) %(refname)", REF_PREFIX, *also).out
    found: set[str] = set()
    for line in out.splitlines():
        oid, _, ref = line.partition(" ")
        if not ref.startswith(REF_PREFIX):
            found.add(ref)
            continue
        name = ref[len(REF_PREFIX):]
        if not _SLOT.fullmatch(name):
            continue
        slot = slots.setdefault(name, Slot(name, slot_path(repo, name)))
        slot.claim = Claim(name, oid, nonce="", path=slot.path)
    if details:
        claimed = [s.claim for s in slots.values() if s.claim]
        for c, body in zip(claimed, repo.git.read_objects(c.oid for c in claimed)):  # None: missing
            parsed = Claim.parse(c.slot, c.oid, (body or b"").decode("utf-8", "replace"))
            parsed.path = c.path
            slots[c.slot].claim = parsed
    return {k: slots[k] for k in sorted(slots, key=lambda n: int(n.split("-", 1)[1]))}, found & set(also)


def default_owner() -> tuple[int, str]:
    """The process a claim belongs to: whoever ran `git agent-pool` (the git wrapper skipped)."""
    from git_agents.tasks import agent  # only a claim without --task or --pid needs it

    pid = os.getppid()
    if agent.program_name(pid) == "git":
        pid = agent.parent_pid(pid) or pid
    return pid, process_start(pid) or ""


def _write_claim(repo: Repo, claim: Claim, *also: str) -> tuple[Claim, list[Oid]]:
    """Write the claim's blob (and the blobs of `also`'s texts, in the same git process)."""
    claim.oid, *others = repo.git.write_blobs([claim.payload(), *also])
    return claim, others


class _With:
    """What a claim for a new task creates in the claim's own transaction (see the module's
    docstring). A plain class: a dataclass costs about half a millisecond at import."""

    __slots__ = ("branch", "commit", "hold", "hold_blob")

    def __init__(self, branch: str, commit: str, hold: tuple[str, str] | None) -> None:
        self.branch = branch  # the task's new branch, made at `commit` ("": none)
        self.commit = commit
        self.hold = hold  # (ref, text): a port lease's hold (tasks.ports.hold_for)
        self.hold_blob = ""  # its blob, once written (with the first claim's blob)


def _try_create(repo: Repo, claim: Claim, extra: _With | None = None) -> bool:
    """Create the claim ref only if it does not exist (git's compare-and-swap): True if we won.
    With `extra` its branch (only if absent too) and its hold are created in the same transaction
    (`claim.made` says what was); a branch in the way raises branch_exists_error.

    Decided by exit codes, not by git's (translated) messages: when the create fails and the ref
    now exists, another process won; when it does not exist, its creator may still hold the ref's
    lock, so try again briefly before calling it a real failure."""
    made = [(ref_of(claim.slot), claim.oid)]
    if extra is not None and extra.branch:
        made.append((branch_ref(extra.branch), extra.commit))
    lines = [f"create {ref} {value}\n" for ref, value in made]
    if extra is not None and extra.hold is not None:
        made.append((extra.hold[0], extra.hold_blob))
        lines.append(f"update {extra.hold[0]} {extra.hold_blob}\n")  # a leftover hold of the same id: replaced
    if len(made) == 1:
        args, data = ["update-ref", "-m", f"git-agents: claim {claim.slot}", ref_of(claim.slot), claim.oid, ""], None
    else:
        reason = f"branch: Created from {extra.commit}" if extra and extra.branch else f"git-agents: claim {claim.slot}"
        args, data = ["update-ref", "-m", reason, "--stdin"], "".join(lines)
    for _ in range(50):
        res = repo.git.run(*args, input=data, ok=range(0, 256))
        if res.code == 0:
            claim.made = tuple(made[1:])
            return True
        branch = extra.branch if extra is not None else ""
        asked = [ref_of(claim.slot), *([branch_ref(branch)] if branch else [])]
        existing = repo.git.run("for-each-ref", "--format=%(refname)", *asked).out.split()
        if branch and branch_ref(branch) in existing:
            raise branch_exists_error(branch)
        if asked[0] in existing:
            return False  # a lost race
        time.sleep(0.02)
    raise GitError(["git", *args], res.code, res.out, res.err)


def undo_claim(repo: Repo, claim: Claim) -> None:
    """Drop a claim that has not been used (its slot untouched), with what was created with it
    (the branch, only if still where it was made; the hold)."""
    drop_claim(repo, claim)
    forget_made(repo, claim)


def forget_made(repo: Repo, claim: Claim) -> None:
    """Delete what was created with the claim (`claim.made`), each only if it did not move."""
    if claim.made:
        repo.git.run("update-ref", "--stdin", input="".join(f"delete {ref} {value}\n" for ref, value in claim.made),
                     ok=range(0, 256))


# The owner of a claim that a task holds with no process yet (`git agent-pool claim --task`
# without --pid): the task holds the slot until it is cleaned, whatever process asked for it.
TASK_OWNER = (0, "")


def _new_claim(repo: Repo, slot: str, commit: str, task: str, owner: tuple[int, str],
               extra: _With | None = None) -> Claim:
    """A claim's blob written (with the blob of `extra`'s hold, when it has none yet)."""
    held, blobs = _write_claim(repo, Claim(slot, task=task, pid=str(owner[0]) if owner[0] else "",
                                           pid_start=owner[1], claimed_at=now_iso(), host=_hostname(), commit=commit),
                               *([extra.hold[1]] if extra and extra.hold and not extra.hold_blob else []))
    if blobs and extra is not None:
        extra.hold_blob = blobs[0]
    return held


def drop_claim(repo: Repo, claim: Claim) -> bool:
    """Delete a claim ref if it still holds `claim`; False when it no longer does."""
    for _ in range(50):
        res = repo.git.run("update-ref", "-d", ref_of(claim.slot), claim.oid, ok=range(0, 256))
        if res.code == 0:
            return True
        # Failed: either the claim changed (or is gone), or another process briefly holds the
        # ref's lock. Ask the ref, not git's (translated) message.
        now = repo.git.rev_parse(ref_of(claim.slot)) or ""
        if now != claim.oid:
            return False
        time.sleep(0.02)
    return False


def claim(repo: Repo, *, task: str = "", owner: tuple[int, str] | None = None, request: PoolRequest | None = None,
          base_commit: str = "", branch: str = "", make_branch: bool = False,
          hold: tuple[str, str] | None = None) -> Claim:
    """Claim a free slot (waiting or growing the pool as `request` allows); PoolExhausted if none.

    With `branch` (the new branch the slot is claimed for) an AgentError instead when that branch
    exists, checked with the git call that lists the slots. With `make_branch` the branch is
    created at `base_commit`, and with `hold` (ref, text: tasks.ports.hold_for) a port lease's
    hold is made, in the claim's own transaction (`Claim.made`; `undo_claim` takes them all back).
    """
    request = request or PoolRequest()
    extra = _With(branch if make_branch else "", base_commit, hold) if make_branch or hold else None
    owner = owner or default_owner()
    deadline = None if request.wait is None else time.monotonic() + request.wait
    delay = 0.02
    new_branch = [branch_ref(branch)] if branch else []
    while True:
        slots, existing = _read_slots(repo, also=new_branch)
        if existing:
            raise branch_exists_error(branch)
        free = [s for s in slots.values() if s.exists and s.claim is None]
        for slot in free:  # lowest number first; a lost race moves on to the next slot
            won = _new_claim(repo, slot.name, slot.head, task, owner, extra)
            if not _try_create(repo, won, extra):
                continue
            if not os.path.isdir(slot.path):
                undo_claim(repo, won)  # destroyed between listing and claiming
                continue
            won.path = slot.path
            # Released (and reset to a newer base) between listing and claiming? Record the real
            # HEAD, which no release moves now that we hold the slot: read from the slot's files
            # when it is detached, as a free slot is (no git call), else asked of git.
            head = detached_head(slot.path) or repo.git.at(slot.path).rev_parse("HEAD") or ""
            return won if head == won.commit else _replace(repo, won, commit=head)
        if request.grow is not None:
            grown = _grow(repo, request.grow, task, owner, base_commit or pool_base(repo)[1], request.sparse, extra)
            if grown is not None:
                return grown
        if deadline is None or time.monotonic() >= deadline:
            total = len(read_slots(repo)) if request.grow is not None else len(slots)  # growing changed it
            raise PoolExhausted(
                f"pool exhausted: all {total} slot(s) are claimed" if total else "pool exhausted: the pool is empty",
                hint=_exhausted_hint(request))
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.25)


def _exhausted_hint(request: PoolRequest) -> str:
    """What to do when no slot came free: what the caller did not try already."""
    release = "free slots with `git agent-pool release`"
    if request.grow is not None:  # spawn --pool, run with pool = true: no --wait there, but a limit
        return f"{release}, or allow more slots with --pool-max <n> (agent.poolMax; 0: no limit)"
    if request.wait:  # it waited already
        return (f"none was released within {request.wait:g} seconds: {release}, add some with "
                "`git agent-pool create <n>`, or wait until one is (--wait without a number)")
    return f"wait with --wait, {release}, or add some with `git agent-pool create <n>`"


def _grow(repo: Repo, limit: int, task: str, owner: tuple[int, str], base_commit: str,
          sparse: tuple[str, ...] = (), extra: _With | None = None) -> Claim | None:
    """Add one slot and claim it, unless the pool already has `limit` slots (0: no limit)."""
    with RepoLock(repo.common_dir, "pool"):  # the count and the new name must not race
        slots = read_slots(repo)
        if limit and len(slots) >= limit:
            return None
        number = 1
        while f"pool-{number}" in slots or os.path.lexists(slot_path(repo, f"pool-{number}")):
            number += 1
        new = _new_claim(repo, f"pool-{number}", base_commit, task, owner, extra)
        if not _try_create(repo, new, extra):
            return None
    new.path = slot_path(repo, new.slot)
    try:
        add_worktree(repo, new.path, None, base_commit, sparse=sparse)
    except BaseException:
        undo_claim(repo, new)
        raise
    return new


def _replace(repo: Repo, old: Claim, **changes: str) -> Claim:
    """Change the details of a claim we hold (compare-and-swap on its ref); the old claim if it moved on."""
    changed = dataclasses.replace(old, oid="", host=_hostname())
    for name, value in changes.items():
        setattr(changed, name, value)
    changed.made = old.made  # not an argument of Claim: dataclasses.replace leaves it out
    new = _write_claim(repo, changed)[0]
    res = repo.git.update_ref(ref_of(old.slot), new.oid, old.oid, reason=f"git-agents: update claim {old.slot}",
                              ok=range(0, 256))
    return new if res.code == 0 else old


def set_owner(repo: Repo, slot: str, task: str, pid: int, pid_start: str) -> bool:
    """Record that process `pid` (a task's agent) now holds the slot; False if `task` does not hold it."""
    current = read_slots(repo, details=True).get(slot)
    if current is None or current.claim is None or current.claim.task != task:
        return False
    return _replace(repo, current.claim, pid=str(pid), pid_start=pid_start) is not current.claim


def switch_to_branch(repo: Repo, held: Claim, branch: str, commit: str, *, sparse: tuple[str, ...] = ()) -> None:
    """Put a claimed (clean, detached) slot on a new branch at `commit` (with `sparse`: narrowed to
    those directories, cone mode; a slot grown for this claim is sparse already, and setting the
    same patterns again costs one call that changes nothing). A branch the claim made (its
    `make_branch`) is only checked out: HEAD attached to it, files written only when the slot was
    at another commit."""
    git = repo.git.at(held.path)
    if sparse:
        set_sparse(repo, held.path, sparse)
    if branch_ref(branch) in dict(held.made):  # made with the claim (claim's make_branch), at `commit`
        if held.commit != commit:
            git.run("checkout", "--quiet", "--no-recurse-submodules", branch, "--")
        else:
            git.run("symbolic-ref", "-m", f"checkout: moving from {commit} to {branch}", "HEAD", branch_ref(branch))
        return
    if held.commit != commit:
        git.run("checkout", "--quiet", "--no-recurse-submodules", "--no-track", "-b", branch, commit)
        return
    # Already at `commit`: create the branch and attach HEAD to it, as `checkout -b` would, without
    # git re-reading the index of every file (≈0.2 s on a 20,000-file repository).
    git.update_ref(branch_ref(branch), commit, "", reason=f"branch: Created from {commit}")
    git.run("symbolic-ref", "-m", f"checkout: moving from {commit} to {branch}", "HEAD", branch_ref(branch))


def clone_from_slot(repo: Repo, path: str, branch: str, commit: str, *, task: str, owner: tuple[int, str] | None,
                    request: PoolRequest, sparse: Sequence[str] = ()) -> None:
    """Make `path` a task's clone of its own on a new `branch` at `commit` (isolation.make_clone)
    out of a free slot's warm checkout, which costs a few git calls where a new clone writes every
    file. The slot is claimed (waiting or growing as `request` allows; PoolExhausted as `claim`),
    brought to `commit` and leaves the pool as the clone: its claim is dropped, and `create` or a
    growing claim makes a new slot. A clone is never given back to the pool (whatever the agent
    did to its git directory would reach the next task); cleaning the task removes it."""
    with _making_clone(repo, task):  # until the claim is dropped: repair_clone leaves it alone
        held = claim(repo, task=task, owner=owner, request=dataclasses.replace(request, sparse=()),
                     base_commit=commit, branch=branch)  # a full slot: the clone is narrowed itself
        try:
            if held.commit != commit:  # a free slot is clean and detached: only the files that differ are written
                repo.git.at(held.path).run("checkout", "--quiet", "--no-recurse-submodules", "--detach", commit)
            isolation.make_clone(repo, path, branch, commit, sparse=sparse, checkout=held.path)
        except BaseException:
            release(repo, held.slot, force=True, task=task)  # back to the pool, or forgotten once it was moved
            raise
        drop_claim(repo, held)


def _making_clone(repo: Repo, task: str, timeout: float = 120.0) -> RepoLock:
    """The lock a process holds while it makes task `task`'s clone from a slot (in the task's
    directory of records: it goes with the task). A kill releases it: what is left half-made then
    has no maker, and repair_clone may finish it."""
    return RepoLock(repo.common_dir, f"tasks/{task}/clone", timeout=timeout)


def repair_clone(repo: Repo, task: Task) -> None:
    """Finish a clone task's clone that a command killed inside clone_from_slot left half-made
    (the slot's directory moved to the task's, the clone's `.git` still aside), or give back the
    slot it had claimed and not yet moved; a warning on stderr says what was done.

    Only when no process is making it (a clone being made right now is left alone). Costs a
    directory listing when there is nothing to repair: the claims are read only when something
    was made aside or the task's directory is missing.
    """
    if not isolation.is_clone(task) or not task.worktree or \
            (os.path.isdir(os.path.join(task.worktree, ".git")) and not isolation.made_aside(task.worktree)):
        return
    making = _making_clone(repo, task.id, timeout=0)
    try:
        making.__enter__()
    except AgentError:  # its clone is being made right now: not half-made
        return
    try:
        _repair_clone(repo, task)
    finally:
        making.__exit__(None, None, None)


def _repair_clone(repo: Repo, task: Task) -> None:
    import sys

    held = [s.claim for s in read_slots(repo, details=True).values() if s.claim and s.claim.task == task.id]
    slots = ", ".join(c.slot for c in held)
    if isolation.finish_adoption(repo, task.worktree, task.branch):
        sys.stderr.write(f"warning: finished the clone of task {task.id} in {task.worktree}, which an interrupted"
                         f" command left half-made (its pool slot {slots or '?'} had been moved there)\n")
    elif held and os.path.isdir(task.worktree) and not os.path.isdir(os.path.join(task.worktree, ".git")):
        sys.stderr.write(f"warning: the clone of task {task.id} in {task.worktree} is half-made and its git"
                         " directory is not where it was being made; nothing was changed\n"
                         f"hint: look at {task.worktree}, then remove the task with: git agent-clean --force"
                         f" {task.id}\n")
        return  # its slot's claim is kept: the directory may still be that slot
    for c in held:  # moved into the clone (forgotten), or not yet touched (reset and freed)
        if release(repo, c.slot, force=True, task=task.id) and os.path.isdir(c.path):
            sys.stderr.write(f"warning: gave pool slot {c.slot} back to the pool: an interrupted command had"
                             f" claimed it for the clone of task {task.id}\n")


def what_would_be_lost(repo: Repo, slot: Slot) -> list[str]:
    """What releasing the slot would throw away (empty: nothing)."""
    reasons = []
    entries = unsaved_work(repo, slot.path)
    if entries:
        reasons.append(f"uncommitted or untracked work ({describe_unsaved(entries)})")
    count = unreachable_commits(repo, slot)
    if count:
        reasons.append(f"{count} commit(s) that no branch contains")
    return reasons


def unreachable_commits(repo: Repo, slot: Slot) -> int:
    """Commits of the slot's HEAD that no branch contains (and that were not there when it was claimed)."""
    keep = [slot.claim.commit] if slot.claim and slot.claim.commit else []
    res = repo.git.at(slot.path).run("rev-list", "--count", "HEAD", "--not", "--branches", *keep, "--",
                                     ok=(0, 128))
    return int(res.out.strip()) if res.code == 0 and res.out.strip().isdigit() else 0


def reset_slot(repo: Repo, path: str, commit: str) -> None:
    """Make a slot free-ready: detached at `commit`, no local changes, no untracked or ignored files."""
    git = repo.git.at(path)
    git.run("checkout", "--quiet", "--no-recurse-submodules", "--detach")  # first, so the reset below moves no branch
    git.run("reset", "--quiet", "--hard", "--no-recurse-submodules", commit)
    if is_sparse(repo, path):  # a free slot is a full checkout; a sparse claim narrows it again
        git.run("sparse-checkout", "disable")
    git.run("clean", "-ffdxq")


def release(repo: Repo, slot_name: str, *, force: bool = False, task: str | None = None) -> bool:
    """Reset a claimed slot to the pool's base and free it.

    Refuses (AgentError, exit 1) when work would be lost, unless `force`. Called for a task
    (`task` set, by clean), it releases only a slot that task holds and returns False otherwise.
    A user's release of a slot that a recorded task holds is refused: cleaning the task frees it.
    """
    with RepoLock(repo.common_dir, f"pool-{slot_name}"):  # one release of a slot at a time
        slot = read_slots(repo, details=True).get(slot_name)
        if slot is None or slot.claim is None:
            if task is not None:
                return False
            what = "does not exist" if slot is None else "is not claimed"
            raise AgentError(f"pool slot {slot_name} {what}", hint="`git agent-pool list` shows the slots",
                             code=ExitCode.FAILED)
        held = slot.claim
        if task is not None and held.task != task:
            return False
        if task is None and held.task and held.task in load_tasks(repo):
            raise AgentError(f"pool slot {slot_name} holds task {held.task}",
                             hint=f"remove the task with `git agent-clean {held.task}`; that releases the slot",
                             code=ExitCode.FAILED)
        if slot.exists:
            reasons = [] if force else what_would_be_lost(repo, slot)
            if not force and task is None and held.task and held.alive():
                # a task's agent (set_owner made it the claim's owner) whose record is gone
                reasons.insert(0, f"a running process of task {held.task} (pid {held.pid})")
            if reasons:
                raise AgentError(f"not releasing {slot_name}: it holds {'; '.join(reasons)}",
                                 hint=f"commit it to a branch or stash it in {slot.path},"
                                      " or pass --force to discard it", code=ExitCode.FAILED)
            reset_slot(repo, slot.path, _free_commit(repo, held))
        elif not os.path.isdir(slot.path):
            prune_worktrees(repo)
        if not drop_claim(repo, held):
            raise AgentError(f"pool slot {slot_name} was claimed again while it was being released")
    return True


def _free_commit(repo: Repo, held: Claim) -> str:
    """The commit a released slot goes back to: the base's tip (or, without a base, where it was claimed)."""
    try:
        return pool_base(repo)[1]
    except AgentError:
        if held.commit:
            return held.commit
        raise


def is_stale(held: Claim, task_ids: set[str]) -> bool:
    """A claim whose process is gone and that no recorded task holds."""
    return (held.alive() is False or bool(held.task and not held.pid)) and not (held.task and held.task in task_ids)


def create(repo: Repo, count: int, base: str | None = None) -> list[str]:
    """Top the pool up to slots pool-1 … pool-<count> at the base; return the slots added."""
    if base:
        write_config(repo, {BASE_KEY: pool_base(repo, base)[0]})
    _, commit = pool_base(repo)
    prune_worktrees(repo)
    slots = read_slots(repo)
    owner = (os.getpid(), process_start(os.getpid()) or "")
    added = []
    for number in range(1, count + 1):
        name = f"pool-{number}"
        if name in slots:  # exists, or someone else is creating it
            continue
        path = slot_path(repo, name)
        if os.path.lexists(path):
            raise AgentError(f"'{path}' exists but is not a worktree of this repository",
                             hint="move it away, then run the command again")
        hold = _new_claim(repo, name, commit, "", owner)
        if not _try_create(repo, hold):
            continue  # a concurrent create or grow took the name
        try:
            add_worktree(repo, path, None, commit)
        finally:
            drop_claim(repo, hold)
        added.append(name)
    return added


def shrink(repo: Repo, count: int) -> tuple[list[str], int]:
    """Remove free slots, highest-numbered first, until the pool has at most `count` slots.

    Claimed slots are never touched: each free slot is claimed (atomically, as a claimer would)
    before it is removed, so a racing claim wins or we do, never both. Returns (slots removed,
    slots the pool still has).
    """
    owner = (os.getpid(), process_start(os.getpid()) or "")
    slots = read_slots(repo)
    left = len(slots)
    removed = []
    for slot in reversed(list(slots.values())):
        if left <= count:
            break
        if slot.claim is not None:
            continue
        held = _new_claim(repo, slot.name, slot.head, "", owner)
        if not _try_create(repo, held):
            continue  # claimed meanwhile: it stays
        if slot.exists or os.path.lexists(slot.path):
            remove_worktree(repo, slot.path, force=True)  # free slots are clean: nothing of anyone's is lost
        drop_claim(repo, held)
        removed.append(slot.name)
        left -= 1
    prune_worktrees(repo)
    return removed, left


def destroy(repo: Repo, *, force: bool = False) -> tuple[list[str], list[str]]:
    """Remove free slots (and, with `force`, claimed ones); return (removed, kept because claimed)."""
    removed, kept = [], []
    owner = (os.getpid(), process_start(os.getpid()) or "")
    for slot in read_slots(repo).values():
        held = slot.claim
        if held is None:
            held = _new_claim(repo, slot.name, slot.head, "", owner)  # so nobody claims it meanwhile
            if not _try_create(repo, held):
                kept.append(slot.name)
                continue
        elif not force:
            kept.append(slot.name)
            continue
        if slot.exists or os.path.lexists(slot.path):
            remove_worktree(repo, slot.path, force=True)
        drop_claim(repo, held)
        removed.append(slot.name)
    prune_worktrees(repo)
    return removed, kept
