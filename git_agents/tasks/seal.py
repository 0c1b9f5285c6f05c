"""A task worktree's state from when its agent exited, kept true by a watcher until it changes.

Merge and status must know whether a task's worktree holds uncommitted or untracked work.
`git status` answers that, but on a 100,000-file tree each answer costs a full index refresh
(0.1-0.3 s), and twenty of them cost more than the merges. Nothing cheaper is sound without
watching: a file edited in place changes only its own inode, not its directory.

One watcher per repository (one inotify instance, a watch on every directory of every sealed
worktree) does the watching. When an agent exits, its supervisor asks for a seal: it drops a
request into `<state>/sealer/requests` and, if no watcher holds `<state>/sealer/lock`, becomes
the watcher itself (in its own session, out of the agent's process group). For each request
the watcher waits until no process of the agent's launch is left (one found by the launch id
in its environment) and no process holds a file of the worktree open for writing or mapped
shared and writable (writes through a mapping raise no inotify event); it refuses when a file
of the worktree has another hard link (an edit through a link outside the worktree raises no
event here). It then puts a watch on every directory of the worktree *first*, runs the full
check, and writes the result to `<task-dir>/seal` with its own pid and start stamp. The first
event of any kind in a sealed worktree (a file written, created, removed, renamed, its
attributes changed, the queue overflowing) removes the seal. A refusal is recorded, with
its reason, in `<task-dir>/unsealed`. With nothing left to watch, the watcher ends.

A reader trusts seals only after a round trip with the watcher: it drops a `sync` request and
waits for the watcher to remove it. inotify queues events in order, so by then every change
made before the request has removed its seal; a watcher that is stopped (SIGSTOP) or does not
answer within a few seconds is not trusted. A seal is then trusted only while all of this
holds: it belongs to the task's current launch; its watcher is the one that answered; the
worktree's HEAD and its branch tip are what they were; and its index file is unchanged (git's
own commands change the index, which lives outside the worktree, and are caught by that).
Anything else — no seal, a killed watcher, a reboot, too many watches
(fs.inotify.max_user_watches) — means a full check, so the seal only ever saves time. Removal
(clean, pool release) never trusts a seal: it always checks in full before it deletes
anything.

Not seen: a hard link to a worktree's file made, after its seal, by a program other than the
agent, and edited through that link (linking raises no event where the worktree is watched).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from git_agents.core.procs import argvs, process_start, stat_fields
from git_agents.core.refs import branch_name, is_branch_ref
from git_agents.core.worktrees import git_dir_of, git_file

SEAL_FILE = "seal"
UNSEALED_FILE = "unsealed"  # why the watcher did not seal the worktree (one line)
LIFETIME = 3 * 24 * 3600  # seconds a watcher runs at most; after that its seals lapse
NO_WATCHER = "no worktree watcher has run"
SYNC_TIMEOUT = 5.0  # seconds a reader waits for the watcher's answer before checking in full
LAUNCH_ENV = "GIT_AGENT_LAUNCH"  # in every process of an agent's launch (tasks/agent.py sets it)

# inotify(7)
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_IN_ONLYDIR = 0x01000000
_IN_DONT_FOLLOW = 0x02000000
_IN_CREATE, _IN_MOVED_TO, _IN_IGNORED, _IN_Q_OVERFLOW = 0x100, 0x80, 0x8000, 0x4000
# IN_MODIFY IN_ATTRIB IN_CLOSE_WRITE IN_MOVED_FROM IN_MOVED_TO IN_CREATE IN_DELETE IN_DELETE_SELF IN_MOVE_SELF
_MASK = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800


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


def unsealed_reason(task_dir: str) -> str | None:
    """Why the watcher did not seal the task's worktree (as it last recorded), or None (also
    when it waited for a process that has ended since: the seal is on its way)."""
    try:
        with open(os.path.join(task_dir, UNSEALED_FILE), encoding="utf-8", errors="replace") as fh:
            data = json.load(fh)
        why, pid = str(data["why"]), int(data.get("pid", 0))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return None if pid and process_start(pid) is None else why


def _sealer_dir(task_dir: str) -> str:
    """`<state>/sealer`, from a task directory `<state>/tasks/<id>`."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(task_dir))), "sealer")


def head_of(worktree: str) -> str | None:
    """The content of the worktree's HEAD file ("ref: refs/heads/x" or a commit id), or None."""
    return git_file(worktree, "HEAD")


def _head_and_index(worktree: str) -> tuple[str, tuple[int, int, int, int]] | None:
    gitdir = git_dir_of(worktree)
    head = head_of(worktree)
    if gitdir is None or head is None:
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


def why_unsealed(task_dir: str, launch: str, watcher: Watcher) -> str | None:
    """Why an exited agent's worktree (of launch `launch`) had no seal to trust, when known: its
    watcher could not be trusted, or it refused (a hard link, a process left, no inotify
    instance, ...). None when no reason is known (e.g. the seal is still on its way, or the
    worktree changed after it, as work does)."""
    seal = read_seal(task_dir)
    if seal is None or seal.launch != launch:
        why = unsealed_reason(task_dir)
        if why is not None:
            return why
    return watcher.why_not if watcher.why_not != NO_WATCHER and seal is not None else None


def _read_watcher(sealer: str) -> tuple[int, str] | None:
    try:
        with open(os.path.join(sealer, "watcher"), encoding="utf-8") as fh:
            data = json.load(fh)
        return int(data["pid"]), str(data["start"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Watcher:
    """The repository's watcher as a reader found it: who answered, or why seals cannot be trusted."""

    pid: int = 0
    start: str = ""
    why_not: str = ""  # empty when it answered


def sync(state_dir: str) -> Watcher:
    """Wait until the repository's watcher has handled every change made before this call.

    Only seals of the watcher returned (when it answered: `why_not` empty) may be trusted."""
    sealer = os.path.join(state_dir, "sealer")
    found = _read_watcher(sealer)
    if found is None:
        return Watcher(why_not=NO_WATCHER)
    pid, start = found
    if process_start(pid) != start:
        return Watcher(why_not="the worktree watcher has ended (killed?)")
    request = os.path.join(sealer, "requests", f"sync.{os.getpid()}.{os.urandom(4).hex()}")
    try:
        os.close(os.open(request, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        return Watcher(why_not="the worktree watcher's request directory is not writable")
    deadline = time.monotonic() + SYNC_TIMEOUT
    pause = 0.0005
    while os.path.exists(request):
        fields = stat_fields(pid)
        if fields is None or fields[19:20] != [start] or fields[0] in ("T", "t", "Z", "X"):
            why = "the worktree watcher is stopped" if fields and fields[0] in ("T", "t") else \
                "the worktree watcher has ended"
            break
        if time.monotonic() > deadline:
            why = f"the worktree watcher did not answer within {SYNC_TIMEOUT:g} s"
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.02)
    else:
        return Watcher(pid, start)
    try:
        os.unlink(request)
    except OSError:
        return Watcher(pid, start)  # it answered after all
    return Watcher(why_not=why)


def trusted_entries(task_dir: str, worktree: str, launch: str, tips: Mapping[str, str],
                    watcher: Watcher) -> tuple[str, ...] | None:
    """The worktree's uncommitted-work entries as its live seal has them, or None: check in full.

    `watcher`: what `sync` returned, called before this (once for any number of tasks).
    `tips` maps branch names to their commits, as the caller already read them
    (tasks.status.branch_tips); a HEAD on a branch missing from it is not trusted.
    """
    if watcher.why_not:
        return None
    seal = read_seal(task_dir)
    if seal is None or not launch or seal.launch != launch:
        return None
    if (seal.pid, seal.start) != (watcher.pid, watcher.start):
        return None
    now = _head_and_index(worktree)
    if now is None or now != (seal.head, seal.index):
        return None
    if seal.head.startswith("ref: "):
        ref = seal.head[len("ref: "):]
        tip = tips.get(branch_name(ref)) if is_branch_ref(ref) else None
    else:
        tip = seal.head
    if tip != seal.tip:
        return None
    return seal.entries


def _request(sealer: str, kind: str, data: dict[str, str]) -> None:
    """Drop a request for the watcher (atomically: written aside, renamed in)."""
    requests = os.path.join(sealer, "requests")
    os.makedirs(requests, exist_ok=True)
    name = f"{kind}.{time.time_ns():020d}.{os.getpid()}.{os.urandom(3).hex()}"
    tmp = os.path.join(sealer, name + ".tmp")
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as fh:
        json.dump(data, fh)
    os.replace(tmp, os.path.join(requests, name))


def forget(task_dir: str) -> None:
    """Drop the task's seal and its watches (a new launch is about to change the worktree)."""
    for name in (SEAL_FILE, UNSEALED_FILE):
        try:
            os.unlink(os.path.join(task_dir, name))
        except OSError:
            pass
    sealer = _sealer_dir(task_dir)
    found = _read_watcher(sealer)
    if found is not None and process_start(found[0]) == found[1]:
        try:
            _request(sealer, "forget", {"task_dir": os.path.abspath(task_dir)})
        except OSError:
            pass


# --- the watcher (a process of its own, started by the agent's supervisor) ---------------------

def _limit(name: str, default: int) -> int:
    try:
        with open(f"/proc/sys/fs/inotify/{name}", encoding="ascii") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return default


def _others_in_use() -> tuple[int, int]:
    """(watchers, watches) held by this user's other repositories' watchers, from /proc and their files."""
    watchers = watches = 0
    uid, me, program = os.getuid(), os.getpid(), bootstrap().encode()
    for pid, argv in argvs():
        if pid == me or program not in argv:
            continue
        at = argv.index(program)
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid or len(argv) < at + 3:
                continue
            with open(os.path.join(_sealer_dir(os.fsdecode(argv[at + 2])), "watcher"), encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue
        if data.get("pid") == pid:
            watchers += 1
            watches += int(data.get("watches", 0))
    return watchers, watches


def _busy(wanted: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, int]]:
    """For each key of `wanted` ({key: (worktree, launch id)}), why its worktree may still change
    unseen, and the process: one of the launch left, or one holding a file of the worktree open
    for writing or mapped shared and writable. Keys with nothing of that are left out. One look
    at /proc for all of them (a watcher may wait for many worktrees at once)."""
    markers = {f"{LAUNCH_ENV}={launch}".encode(): key for key, (_, launch) in wanted.items() if launch}
    roots = [(os.fsencode(os.path.realpath(worktree)) + b"/", key) for key, (worktree, _) in wanted.items()]
    found: dict[str, tuple[str, int]] = {}
    uid, me = os.getuid(), os.getpid()

    def inside(path: bytes) -> str | None:
        return next((key for root, key in roots if path.startswith(root) and key not in found), None)

    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me or len(found) == len(wanted):
            continue
        proc, pid = f"/proc/{name}", int(name)
        try:
            if os.stat(proc).st_uid != uid:
                continue
            with open(proc + "/environ", "rb") as fh:
                for var in fh.read().split(b"\0"):
                    key = markers.get(var)
                    if key is not None and key not in found:
                        found[key] = (f"process {name} of the agent's launch still runs", pid)
            with open(proc + "/maps", "rb") as fh:
                for line in fh:
                    fields = line.split(None, 5)
                    if len(fields) == 6 and fields[1][1:2] == b"w" and fields[1][3:4] == b"s":
                        key = inside(fields[5])
                        if key is not None:
                            found[key] = (f"process {name} has a file of the worktree mapped for writing", pid)
            for fd in os.listdir(proc + "/fd"):
                try:
                    key = inside(os.fsencode(os.readlink(f"{proc}/fd/{fd}")))
                    if key is None:
                        continue
                    with open(f"{proc}/fdinfo/{fd}", "rb") as fh:
                        flags = next(int(v.split()[1], 8) for v in fh if v.startswith(b"flags:"))
                except (OSError, StopIteration, ValueError, IndexError):
                    continue
                if flags & 3:  # O_WRONLY or O_RDWR
                    found[key] = (f"process {name} has a file of the worktree open for writing", pid)
        except OSError:
            continue
    return found


class _Server:
    """The repository's watcher: one inotify instance, the requests directory and every sealed worktree."""

    def __init__(self, sealer: str, lock_fd: int) -> None:
        import ctypes

        self.libc = ctypes.CDLL(None, use_errno=True)
        self.sealer = sealer
        self.requests = os.path.join(sealer, "requests")
        self.lock_fd = lock_fd
        self.fd = int(self.libc.inotify_init1(_IN_CLOEXEC))
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.req_wd = int(self.libc.inotify_add_watch(self.fd, os.fsencode(self.requests),
                                                       _IN_CREATE | _IN_MOVED_TO | _IN_ONLYDIR))
        if self.req_wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")
        self.owner: dict[int, set[str]] = {}  # watch -> task dirs armed or sealed through it
        self.wds: dict[str, set[int]] = {}  # task dir -> its watches
        self.sealed: set[str] = set()  # task dirs with a seal written
        self.changed: set[str] = set()  # armed task dirs whose worktree changed meanwhile
        self.pending: dict[str, dict[str, str]] = {}  # task dir -> seal request waiting for processes
        self.todo: list[str] = []  # request files to handle, in order
        self.watches = 0
        self.retries = 0
        self.start = process_start(os.getpid()) or ""
        self.born = time.monotonic()
        self._publish()

    def _publish(self) -> None:
        path = os.path.join(self.sealer, "watcher")
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump({"pid": os.getpid(), "start": self.start, "watches": self.watches}, fh)
        os.replace(path + ".tmp", path)

    # events -------------------------------------------------------------------------------
    def pump(self, timeout: float | None) -> None:
        """Read and handle the events waiting (waiting up to `timeout` s for the first)."""
        import select
        import struct

        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        wait_ms = -1 if timeout is None else int(timeout * 1000)
        while poller.poll(wait_ms):
            wait_ms = 0
            data = os.read(self.fd, 1 << 16)
            at = 0
            while at + 16 <= len(data):
                wd, mask, _cookie, size = struct.unpack_from("iIII", data, at)
                name = data[at + 16:at + 16 + size].rstrip(b"\0")
                at += 16 + size
                self._event(wd, mask, os.fsdecode(name))

    def _event(self, wd: int, mask: int, name: str) -> None:
        if mask & _IN_Q_OVERFLOW:
            for task_dir in list(self.wds):
                self._drop(task_dir)
            self.todo.extend(sorted(os.listdir(self.requests)))
            return
        if wd == self.req_wd:
            if name.startswith("sync."):
                _unlink(os.path.join(self.requests, name))  # the answer: everything before it is handled
            elif not mask & _IN_IGNORED:
                self.todo.append(name)
            return
        for task_dir in list(self.owner.get(wd, ())):
            self._drop(task_dir)
        if mask & _IN_IGNORED:
            self.owner.pop(wd, None)

    def _drop(self, task_dir: str) -> None:
        """The worktree changed (or its seal is no longer wanted): remove its seal and watches."""
        if task_dir in self.sealed:
            self.sealed.discard(task_dir)
            _unlink_if_ours(seal_path(task_dir))
        self.changed.add(task_dir)
        for wd in self.wds.pop(task_dir, set()):
            owners = self.owner.get(wd)
            if owners is not None:
                owners.discard(task_dir)
                if not owners:
                    del self.owner[wd]
                    self.libc.inotify_rm_watch(self.fd, wd)
                    self.watches -= 1

    # requests -----------------------------------------------------------------------------
    def handle(self, name: str) -> None:
        path = os.path.join(self.requests, name)
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                data = {str(k): str(v) for k, v in json.load(fh).items()}
        except (OSError, ValueError, AttributeError):
            return
        finally:
            _unlink(path)
        task_dir = data.get("task_dir", "")
        if name.startswith("forget."):
            self.pending.pop(task_dir, None)
            self._drop(task_dir)
        elif name.startswith("seal.") and task_dir:
            self._drop(task_dir)
            self.pending[task_dir] = data
            self.retries = 0

    def try_pending(self) -> None:
        busy = _busy({task_dir: (data["worktree"], data.get("launch", ""))
                      for task_dir, data in self.pending.items()})
        for task_dir, data in list(self.pending.items()):
            if task_dir in busy:
                _note(task_dir, *busy[task_dir])
                continue
            del self.pending[task_dir]
            why = self.seal(data["worktree"], task_dir, data.get("launch", ""))
            if why is not None:
                self._drop(task_dir)
                _note(task_dir, why)
            self.pump(0)

    def _arm(self, worktree: str, task_dir: str, budget: int) -> str | None:
        """Watch every directory of `worktree` (not `.git` directories) for `task_dir`, each before
        it is listed, so one made meanwhile is either listed or reported; None, or why not."""
        stack = [os.fsencode(worktree)]
        linked: list[bytes] = []
        mine = self.wds.setdefault(task_dir, set())
        while stack:
            path = stack.pop()
            if len(mine) >= budget:
                return "more directories than the inotify watches left (fs.inotify.max_user_watches)"
            wd = int(self.libc.inotify_add_watch(self.fd, path, _MASK | _IN_ONLYDIR | _IN_DONT_FOLLOW))
            if wd < 0:
                return "the kernel refused an inotify watch (fs.inotify.max_user_watches?)"
            if wd not in self.owner:
                self.owner[wd] = set()
                self.watches += 1
            self.owner[wd].add(task_dir)
            mine.add(wd)
            try:
                with os.scandir(path) as it:
                    for entry in it:
                        if entry.name == b".git":
                            continue
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.stat(follow_symlinks=False).st_nlink > 1:
                            linked.append(entry.path)
            except OSError:
                return "a directory of the worktree could not be read"
        if linked:
            return _linked_work(worktree, linked)
        return None

    def seal(self, worktree: str, task_dir: str, launch: str) -> str | None:
        """Seal `worktree` for `launch`; None, or why not."""
        from git_agents.core.repo import Repo
        from git_agents.core.worktrees import unsaved_work

        instances, others = _others_in_use()
        if instances + 1 > _limit("max_user_instances", 128) // 2:
            return "watchers of other repositories hold half of the inotify instances"
        budget = _limit("max_user_watches", 8192) // 2 - others - self.watches
        self.changed.discard(task_dir)
        why = self._arm(worktree, task_dir, budget)
        if why is not None:
            return why
        try:
            repo = Repo.discover(worktree)
            for _ in range(3):
                before = _head_and_index(worktree)
                tip = repo.git.at(worktree).rev_parse("HEAD") or ""
                entries = unsaved_work(repo, worktree)
                self.pump(0)
                if before is not None and task_dir not in self.changed and _head_and_index(worktree) == before:
                    break
                if task_dir in self.changed:
                    self.changed.discard(task_dir)
                    why = self._arm(worktree, task_dir, budget)
                    if why is not None:
                        return why
            else:
                return "the worktree kept changing while it was checked"
        except Exception as exc:  # noqa: BLE001 - any failure only means no seal
            return f"the check failed: {exc}"
        assert before is not None
        head, index = before
        record = {"launch": launch, "entries": entries, "head": head, "tip": tip, "index": list(index),
                  "pid": os.getpid(), "start": self.start, "watches": len(self.wds.get(task_dir, ()))}
        path = seal_path(task_dir)
        try:
            with open(path + ".tmp", "w", encoding="utf-8", errors="surrogateescape") as fh:
                json.dump(record, fh)
            os.replace(path + ".tmp", path)
        except OSError as exc:
            return f"the seal could not be written: {exc}"
        _unlink(os.path.join(task_dir, UNSEALED_FILE))
        self.sealed.add(task_dir)
        self._publish()
        return None

    def serve(self) -> int:
        """Handle requests and events until nothing is left to watch (or LIFETIME has passed)."""
        self.todo.extend(sorted(os.listdir(self.requests)))
        while True:
            while self.todo:
                name = self.todo.pop(0)
                if name.startswith("sync."):
                    _unlink(os.path.join(self.requests, name))
                else:
                    self.handle(name)
            if self.pending:
                self.try_pending()
            if time.monotonic() - self.born > LIFETIME:
                for task_dir in list(self.wds):
                    self._drop(task_dir)
                return 0
            if not self.sealed and not self.pending and not self.todo:
                if not self._hand_over():
                    return 0
                continue
            if self.todo:  # requests that came while sealing (seal's pump): handle them now, not in 60 s
                continue
            # A process of the launch usually ends within moments of the agent (its supervisor):
            # look again soon, then less often.
            self.pump(min(0.05 * 2 ** self.retries, 1.0) if self.pending else 60.0)
            self.retries = self.retries + 1 if self.pending else 0

    def _hand_over(self) -> bool:
        """Nothing to watch: release the lock, then look for a request that came meanwhile (its
        requester may have found the lock taken); True to go on serving it."""
        import fcntl

        _unlink(os.path.join(self.sealer, "watcher"))  # before the lock goes: a successor's stays
        fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        waiting = [n for n in os.listdir(self.requests) if n.startswith("seal.")]
        if not waiting:
            return False
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # another watcher took over
        self._publish()
        self.pump(0)
        self.todo.extend(sorted(n for n in os.listdir(self.requests) if n not in self.todo))
        return True


def _linked_work(worktree: str, linked: list[bytes]) -> str | None:
    """Why not to seal when a file with another hard link is tracked or untracked work (an
    ignored one is nobody's work), else None."""
    import subprocess

    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=worktree, capture_output=True, check=False).stdout
    listed = set(out.split(b"\0"))
    root = os.fsencode(worktree).rstrip(b"/") + b"/"
    for path in linked:
        rel = path[len(root):] if path.startswith(root) else path
        if rel in listed:
            return f"'{os.fsdecode(rel)}' has another hard link (an edit through it would not be seen)"
    return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _unlink_if_ours(path: str) -> None:
    """Remove the seal at `path` if this process wrote it."""
    try:
        with open(path, encoding="utf-8") as fh:
            if json.load(fh).get("pid") == os.getpid():
                os.unlink(path)
    except (OSError, ValueError, AttributeError):
        pass


def _note(task_dir: str, why: str, pid: int = 0) -> None:
    """Record why the task's worktree is not sealed (`pid`: the process it waits for, if any)."""
    try:
        with open(os.path.join(task_dir, UNSEALED_FILE + ".tmp"), "w", encoding="utf-8") as fh:
            json.dump({"why": why, "pid": pid}, fh)
        os.replace(os.path.join(task_dir, UNSEALED_FILE + ".tmp"), os.path.join(task_dir, UNSEALED_FILE))
    except OSError:
        pass


def watch(worktree: str, task_dir: str, launch: str) -> int:
    """Ask for `worktree` to be sealed for `launch`; become the repository's watcher when none runs."""
    import fcntl

    try:
        os.setsid()  # `setsid -f` made a session already; without it, leave the agent's group now
    except OSError:
        pass
    os.chdir("/")
    task_dir = os.path.abspath(task_dir)
    sealer = _sealer_dir(task_dir)
    try:
        _unlink(os.path.join(task_dir, UNSEALED_FILE))
        _request(sealer, "seal", {"worktree": os.path.abspath(worktree), "task_dir": task_dir, "launch": launch})
        lock_fd = os.open(os.path.join(sealer, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return 1
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # the running watcher takes the request
    try:
        server = _Server(sealer, lock_fd)
    except OSError:
        _note(task_dir, "no inotify instance left (fs.inotify.max_user_instances)")
        return 1
    return server.serve()


def bootstrap() -> str:
    """The `python -c` program the supervisor runs to start a watcher: argv worktree, task dir, launch."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return (f"import sys; sys.path.insert(0, {root!r}); from git_agents.tasks.seal import watch; "
            "sys.exit(watch(*sys.argv[1:4]))")
