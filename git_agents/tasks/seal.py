"""A task worktree's state from when its agent exited, kept true by a watcher until it changes.

Merge and status must know whether a task's worktree holds uncommitted or untracked work.
`git status` answers that, but on a 100,000-file tree each answer costs a full index refresh
(0.1-0.3 s), and twenty of them cost more than the merges. Nothing cheaper is sound without
watching: a file edited in place changes only its own inode, not its directory.

So when an agent exits, its supervisor starts a watcher (in its own session, out of the
agent's process group). The watcher puts an inotify watch on every directory of the worktree
*first*, then runs the full check, and writes the result to `<task-dir>/seal` with its own
pid and start stamp. It then waits; the first event of any kind in the worktree (a file
written, created, removed, renamed, its attributes changed, the queue overflowing) removes the
seal and ends the watcher.

A seal is trusted only while all of this holds: it belongs to the task's current launch; its
watcher still runs (same pid and start stamp); the worktree's HEAD and its branch tip are
what they were; and its index file is unchanged (git's own commands change the index, which
lives outside the worktree, and are caught by that). Anything else — no seal, a killed
watcher, a reboot, too many watches (fs.inotify.max_user_watches) — means a full check, so
the seal only ever saves time. Removal (clean, pool release) never trusts a seal: it always
checks in full before it deletes anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from git_agents.core.procs import argvs, process_start

SEAL_FILE = "seal"
LIFETIME = 3 * 24 * 3600  # seconds a watcher waits at most; after that its seal lapses

# inotify(7)
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_IN_ONLYDIR = 0x01000000
_IN_DONT_FOLLOW = 0x02000000
# IN_MODIFY IN_ATTRIB IN_CLOSE_WRITE IN_MOVED_FROM IN_MOVED_TO IN_CREATE IN_DELETE IN_DELETE_SELF IN_MOVE_SELF
_MASK = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800

# What the watcher becomes once its seal is written (os.execv: the same pid and start stamp, so
# the seal still names it): a shell waiting, in dd, for one read of the inotify descriptor (fd 3)
# to return, holding nothing else (a few hundred kB where the Python that wrote the seal held
# ten MB); then it removes the seal, if the seal is still its own. $1: the seal; $2: seconds.
# Ended by SIGTERM (seal.forget), it takes its group (timeout and dd) with it.
_WAITER = r"""
trap 'trap - TERM; kill 0 2>/dev/null; exit 143' TERM
timeout --foreground "$2" dd bs=65536 count=1 <&3 >/dev/null 2>&1 &
wait $!
grep -q "\"pid\": $$," "$1" 2>/dev/null && rm -f "$1"
"""
WAITER_NAME = "git-agent-seal"  # its $0, as ps shows it


@dataclass(frozen=True)
class Seal:
    """A worktree's uncommitted-work entries as its watcher found them, and what must not change."""

    launch: str
    entries: tuple[str, ...]
    head: str  # the content of the worktree's HEAD file ("ref: refs/heads/x" or a commit id)
    tip: str  # the commit HEAD resolved to
    index: tuple[int, int, int, int]  # the index file's inode, size, mtime_ns, ctime_ns (0s: none)
    pid: int
    start: str


def seal_path(task_dir: str) -> str:
    """Where a task's seal is kept."""
    return os.path.join(task_dir, SEAL_FILE)


def _gitdir(worktree: str) -> str | None:
    """The worktree's own git directory, from its `.git` file (None for anything else)."""
    try:
        with open(os.path.join(worktree, ".git"), encoding="utf-8", errors="surrogateescape") as fh:
            line = fh.read().strip()
    except OSError:
        return None
    if not line.startswith("gitdir: "):
        return None
    path = line[len("gitdir: "):]
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(worktree, path))


def _head_and_index(worktree: str) -> tuple[str, tuple[int, int, int, int]] | None:
    gitdir = _gitdir(worktree)
    if gitdir is None:
        return None
    try:
        with open(os.path.join(gitdir, "HEAD"), encoding="utf-8", errors="surrogateescape") as fh:
            head = fh.read().strip()
    except OSError:
        return None
    try:
        st = os.stat(os.path.join(gitdir, "index"))
        index = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except FileNotFoundError:
        index = (0, 0, 0, 0)
    except OSError:
        return None
    return head, index


def read_seal(task_dir: str) -> Seal | None:
    """The task's seal as written, or None (no seal, or an unreadable one)."""
    try:
        with open(seal_path(task_dir), encoding="utf-8", errors="surrogateescape") as fh:
            data = json.load(fh)
        return Seal(str(data["launch"]), tuple(str(e) for e in data["entries"]), str(data["head"]),
                    str(data["tip"]), (int(data["index"][0]), int(data["index"][1]), int(data["index"][2]),
                                       int(data["index"][3])), int(data["pid"]), str(data["start"]))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def trusted_entries(task_dir: str, worktree: str, launch: str, tips: Mapping[str, str]) -> tuple[str, ...] | None:
    """The worktree's uncommitted-work entries as its live seal has them, or None: check in full.

    `tips` maps branch names to their commits, as the caller already read them
    (tasks.status.branch_tips); a HEAD on a branch missing from it is not trusted.
    """
    seal = read_seal(task_dir)
    if seal is None or not launch or seal.launch != launch:
        return None
    if process_start(seal.pid) != seal.start:
        return None
    now = _head_and_index(worktree)
    if now is None or now != (seal.head, seal.index):
        return None
    if seal.head.startswith("ref: "):
        ref = seal.head[len("ref: "):]
        tip = tips.get(ref[len("refs/heads/"):]) if ref.startswith("refs/heads/") else None
    else:
        tip = seal.head
    if tip != seal.tip:
        return None
    return seal.entries


def forget(task_dir: str) -> None:
    """End the task's watcher and drop its seal (a new launch is about to change the worktree)."""
    import signal

    seal = read_seal(task_dir)
    if seal is not None and process_start(seal.pid) == seal.start:
        try:
            os.kill(seal.pid, signal.SIGTERM)
        except OSError:
            pass
    try:
        os.unlink(seal_path(task_dir))
    except OSError:
        pass


# --- the watcher (a process of its own, started by the agent's supervisor) ---------------------

def _limit(name: str, default: int) -> int:
    try:
        with open(f"/proc/sys/fs/inotify/{name}", encoding="ascii") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return default


def _in_use() -> tuple[int, int]:
    """(watchers, watches) held by this user's live worktree watchers, from /proc and their seals."""
    watchers = watches = 0
    uid = os.getuid()
    for pid, argv in argvs():
        if WAITER_NAME.encode() not in argv[3:4] or len(argv) <= 4:
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
        except OSError:
            continue
        watchers += 1
        try:
            with open(argv[4], encoding="utf-8", errors="surrogateescape") as seal_fh:
                watches += int(json.load(seal_fh).get("watches", 0))
        except (OSError, ValueError, TypeError, AttributeError):
            pass
    return watchers, watches


def _arm(worktree: str, budget: int) -> tuple[int, int] | None:
    """An inotify descriptor watching every directory of `worktree` (not `.git` directories) and
    how many it watches, or None (more than `budget` directories, or the kernel refused). Each
    directory is watched before it is listed, so one made meanwhile is either listed or reported."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
    if fd < 0:
        return None
    stack = [os.fsencode(worktree)]
    added = 0
    while stack:
        path = stack.pop()
        added += 1
        if added > budget or libc.inotify_add_watch(fd, path, _MASK | _IN_ONLYDIR | _IN_DONT_FOLLOW) < 0:
            os.close(fd)  # e.g. ENOSPC: more directories than fs.inotify.max_user_watches
            return None
        try:
            with os.scandir(path) as it:
                for entry in it:
                    if entry.name != b".git" and entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            os.close(fd)
            return None
    return fd, added


def _drained(fd: int) -> bool:
    """Whether any event is waiting (read and dropped)."""
    seen = False
    while True:
        try:
            if not os.read(fd, 65536):
                return seen
            seen = True
        except BlockingIOError:
            return seen


def watch(worktree: str, task_dir: str, launch: str) -> int:
    """Seal `worktree` for `launch` and keep the seal true until the worktree changes (see the module)."""
    from git_agents.core.repo import Repo
    from git_agents.core.worktrees import unsaved_work

    try:
        os.setsid()  # `setsid -f` made a session already; without it, leave the agent's group now
    except OSError:
        pass
    os.chdir("/")
    # The kernel's inotify limits are per user and shared with every other program (editors,
    # file watchers of build tools): watchers take at most half of the instances and half of the
    # watches, and a worktree past that is simply not sealed.
    watchers, watches = _in_use()
    budget = _limit("max_user_watches", 8192) // 2 - watches
    if watchers >= _limit("max_user_instances", 128) // 2:
        return 1
    armed = _arm(worktree, budget)  # None past the budget
    if armed is None:
        return 1
    fd, dirs = armed
    try:
        repo = Repo.discover(worktree)
        for _ in range(3):
            before = _head_and_index(worktree)
            tip = repo.git.at(worktree).run("rev-parse", "--verify", "--quiet", "HEAD", ok=(0, 1)).out.strip()
            entries = unsaved_work(repo, worktree)
            if before is not None and not _drained(fd) and _head_and_index(worktree) == before:
                break
        else:
            return 1  # it keeps changing: no seal
    except Exception:
        return 1
    assert before is not None
    head, index = before
    start = process_start(os.getpid()) or ""
    record = {"launch": launch, "entries": entries, "head": head, "tip": tip, "index": list(index),
              "pid": os.getpid(), "start": start, "watches": dirs}
    path = seal_path(task_dir)
    try:
        with open(path + ".tmp", "w", encoding="utf-8", errors="surrogateescape") as fh:
            json.dump(record, fh)
        os.replace(path + ".tmp", path)
    except OSError:
        return 1
    if _drained(fd):  # changed while the seal was written
        forget_own(path)
        return 1
    os.set_blocking(fd, True)
    if fd != 3:
        os.dup2(fd, 3)  # the copy is inheritable
    else:
        os.set_inheritable(3, True)
    os.execv("/bin/sh", ["/bin/sh", "-c", _WAITER, WAITER_NAME, path, str(LIFETIME)])


def forget_own(path: str) -> None:
    """Remove the seal at `path` if this process wrote it."""
    try:
        with open(path, encoding="utf-8") as fh:
            if json.load(fh).get("pid") == os.getpid():
                os.unlink(path)
    except (OSError, ValueError):
        pass


def bootstrap() -> str:
    """The `python -c` program the supervisor runs to start a watcher: argv worktree, task dir, launch."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return (f"import sys; sys.path.insert(0, {root!r}); from git_agents.tasks.seal import watch; "
            "sys.exit(watch(*sys.argv[1:4]))")
