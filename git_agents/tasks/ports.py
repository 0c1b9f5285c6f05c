"""Port block leases: each task holds a block of consecutive ports no other task holds.

A lease is the ref `refs/agents/ports/<first-port>`, pointing at a blob that names the task.
It is created only if absent (`create <ref> <blob>` in a `git update-ref --stdin` transaction),
git's atomic compare-and-swap, so of several processes leasing at the same moment exactly one
gets each block. Until then the ref `refs/agents/port-holds/<id>` keeps the blob from
`git gc --prune=now`; the transaction that makes the lease drops it. A lease costs four git
calls: reading the leases (with their blobs, and the task's hold), the blob, its hold, the
transaction; two when the hold exists already (`hold_for`: a pool claim for a task makes it in
the claim's own transaction). Before
taking a block every port in it is checked free by binding it. The block's number (1, 2, ...)
is the task's GIT_AGENT_INDEX. A lease whose task no longer exists (its metadata was removed
by hand) is taken back.
"""

from __future__ import annotations

import socket
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

from git_agents.core.errors import AgentError
from git_agents.core.git import decode
from git_agents.core.repo import Repo
from git_agents.tasks.store import Task, load_tasks, write_task, write_tasks

REF_PREFIX = "refs/agents/ports/"
HOLD_PREFIX = "refs/agents/port-holds/"  # keeps a lease's blob from gc until its lease ref exists


@dataclass(frozen=True)
class Lease:
    """A leased port block."""

    port: int  # the first port of the block
    index: int  # 1 for the first block of the range, 2 for the next, ...


def port_range(repo: Repo) -> tuple[int, int, int]:
    """(low, high, block size) from agent.portRange and agent.portBlock."""
    raw = repo.setting("agent.portRange")
    try:
        low, high = (int(p) for p in raw.replace(" ", "").split("-", 1))
        size = int(repo.setting("agent.portBlock"))
    except ValueError:
        low = high = size = 0
    if not (0 < low <= high < 65536 and 0 < size <= high - low + 1):
        raise AgentError(f"bad port range '{raw}' with blocks of '{repo.setting('agent.portBlock')}'",
                         hint="set e.g. git config agent.portRange 20000-29999 and agent.portBlock 10")
    return low, high, size


def ports_free(first: int, count: int) -> bool:
    """Whether nothing listens on any of the ports (checked by binding each one)."""
    for port in range(first, first + count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("", port))
            except OSError:
                return False
    return True


def hold_ref(task_id: str) -> str:
    """The ref that keeps a task's lease blob from gc until its lease exists."""
    return f"{HOLD_PREFIX}{task_id}"


def hold_text(task_id: str) -> str:
    """The text of a task's lease blob (what `_holders` reads back as its task)."""
    return f"task {task_id}\n"


def hold_for(repo: Repo, task: Task) -> tuple[str, str] | None:
    """(hold ref, blob text) of the hold `lease` will take the task's lease with, for a caller
    that makes the hold in a transaction of its own (a pool claim: one git process less for the
    blob, one for the ref); None when the port range is bad (`lease` then says so)."""
    try:
        port_range(repo)
    except AgentError:
        return None
    return hold_ref(task.id), hold_text(task.id)


def drop_hold(repo: Repo, task: Task) -> None:
    """Delete the task's hold (made by `hold_for`'s caller) when no lease will be taken with it."""
    repo.git.run("update-ref", "-d", hold_ref(task.id), ok=range(0, 256))


def _holders(repo: Repo, *also: str) -> dict[str, tuple[str, str]]:
    """ref -> (blob, task id) of every lease, and of the refs `also` (holds) that exist, read
    with one git call (`%(raw)`: each blob's text).

    A lease whose object is missing (a damaged repository) makes that call fail; the leases are
    then read as before %(raw), with `cat-file --batch`, which reports a missing object as such
    (its lease has no task, so it is taken back)."""
    res = repo.git.run("for-each-ref", "--format=%(objectname) %(refname) %(raw:size)%00%(raw)", REF_PREFIX,
                       *also, ok=range(0, 256))
    if res.code != 0:
        return _holders_by_batch(repo, *also)
    raw, pos, held = res.raw, 0, {}
    while pos < len(raw):
        end = raw.index(b"\0", pos)
        sha, ref, size = decode(raw[pos:end]).split(" ")
        body = raw[end + 1:end + 1 + int(size)]
        held[ref] = (sha, decode(body).strip().removeprefix("task "))
        pos = end + 1 + int(size) + 1  # and the newline after each entry
    return held


def _holders_by_batch(repo: Repo, *also: str) -> dict[str, tuple[str, str]]:
    """`_holders` with two git calls, for leases whose objects may be missing."""
    out = repo.git.run("for-each-ref", "--format=%(objectname) %(refname)", REF_PREFIX, *also).out
    refs = [tuple(line.split(" ", 1)) for line in out.splitlines()]
    if not refs:
        return {}
    bodies = repo.git.read_objects(sha for sha, _ in refs)
    return {ref: (sha, decode(body).strip().removeprefix("task ") if body is not None else "")
            for (sha, ref), body in zip(refs, bodies)}


def lease(repo: Repo, task: Task) -> Lease:
    """Lease a free port block for `task`, record it in the task's metadata, and return it."""
    low, high, size = port_range(repo)
    hold = hold_ref(task.id)
    holders = _holders(repo, hold)
    held = holders.pop(hold, None)  # made beforehand (hold_for), its blob kept from gc since
    blob = held[0] if held and held[1] == task.id else _held_blob(repo, hold, hold_text(task.id))
    taken: list[Lease] = []
    try:
        return _lease(repo, task, blob, hold, holders, low, high, size, taken)
    finally:
        if not taken:  # a new lease drops the hold in the same step that makes the lease
            repo.git.run("update-ref", "-d", hold, ok=range(0, 256))


def _held_blob(repo: Repo, hold: str, text: str) -> str:
    """Write the lease's blob and hold it with the ref `hold` at once.

    A fresh loose object that no ref reaches is fair game for `git gc --prune=now`; the ports are
    checked (bound one by one) before the lease ref is made, a long window. The hold closes it;
    the short one left between writing the object and the hold is covered by writing again.
    """
    for _ in range(5):
        blob = repo.git("hash-object", "-w", "--stdin", input=text)
        if repo.git.run("update-ref", hold, blob, ok=range(0, 256)).code == 0:
            return blob
    raise AgentError("cannot keep the port lease's object: something (git gc --prune=now?) prunes it at once",
                     hint="run the spawn again once the gc is over")


def _live_tasks(repo: Repo, holders: dict[str, tuple[str, str]], leasing: Collection[str]) -> set[str]:
    """The recorded tasks, as they are after the leases were read when a lease's task is not known
    (`leasing`: the ids of the tasks being leased for, known to exist).

    A task always exists before its lease is taken, so a lease is taken back only when its task
    is missing from a reading of the tasks made after the leases were read. The tasks this
    process read earlier serve when they name every lease's task (a task removed since then only
    keeps its lease until the next spawn); otherwise they are read again."""
    live = set(load_tasks(repo))
    if any(owner not in live and owner not in leasing for _, owner in holders.values()):
        repo.reload_config()
        live = set(load_tasks(repo))
    return live


def _blocks(low: int, high: int, size: int) -> Iterator[tuple[int, int]]:
    """The port blocks of the range, in order: (its number, from 1; its first port)."""
    return enumerate(range(low, high - size + 2, size), start=1)


def _lease(repo: Repo, task: Task, blob: str, hold: str, holders: dict[str, tuple[str, str]], low: int, high: int,
           size: int, taken: list[Lease]) -> Lease:
    live = _live_tasks(repo, holders, {task.id})
    for number, first in _blocks(low, high, size):
        ref = f"{REF_PREFIX}{first}"
        held = holders.get(ref)
        if held and held[1] == task.id:
            return _record(repo, task, Lease(first, number))
        if held and held[1] in live:
            continue
        if held:  # the task that held it is gone: take the lease back, unless someone else just did
            if repo.git.run("update-ref", "-d", ref, held[0], ok=range(0, 256)).code != 0:
                continue
        if not ports_free(first, size):
            continue
        # Create the lease only if it does not exist (compare-and-swap) and drop the hold, in one
        # transaction: both or neither.
        for _ in range(2):
            if repo.git.run("update-ref", "--stdin", input=f"create {ref} {blob}\ndelete {hold} {blob}\n",
                            ok=range(0, 256)).code == 0:
                taken.append(Lease(first, number))
                return _record(repo, task, taken[0])
            # A pool claim makes the hold before the task is recorded (hold_for): a clean's `sweep`
            # that read the tasks in between took it back. Make it again and try the block again.
            if repo.git.has_ref(hold):
                break
            blob = _held_blob(repo, hold, hold_text(task.id))
    raise AgentError(f"no free block of {size} ports left in {low}-{high}",
                     hint="clean finished tasks (git agent-clean --merged) or widen agent.portRange")


def lease_all(repo: Repo, tasks: Sequence[Task]) -> None:
    """Lease a port block for each of `tasks` (recorded, none holding one yet) at once, as `lease`
    does for one: four git calls for all of them instead of four each (spawn of many ids).

    Best effort: the tasks it leaves without a block (a bad range, none free, another process
    leasing the same blocks at the same moment: the transaction is all or nothing) keep
    `task.port` empty, and `lease` then leases each on its own and says why it cannot.
    """
    try:
        low, high, size = port_range(repo)
    except AgentError:
        return
    holds = {task.id: hold_ref(task.id) for task in tasks}
    blobs = _held_blobs(repo, holds)
    if blobs is None:
        return
    holders = _holders(repo)
    live = _live_tasks(repo, holders, holds)
    wanted = list(tasks)
    chosen: dict[str, Lease] = {}
    lines = []
    for number, first in _blocks(low, high, size):
        if not wanted:
            break
        ref = f"{REF_PREFIX}{first}"
        held = holders.get(ref)
        if held and held[1] in live or not ports_free(first, size):
            continue
        task = wanted.pop(0)
        # created only if absent, or taken back from a task that is gone only if still its (compare-and-swap)
        lines.append(f"update {ref} {blobs[task.id]} {held[0]}\n" if held else f"create {ref} {blobs[task.id]}\n")
        chosen[task.id] = Lease(first, number)
    lines += [f"delete {hold} {blobs[task_id]}\n" for task_id, hold in holds.items()]  # with the leases
    if repo.git.run("update-ref", "--stdin", input="".join(lines), ok=range(0, 256)).code != 0:
        repo.git.run("update-ref", "--stdin", input="".join(f"delete {hold}\n" for hold in holds.values()),
                     ok=range(0, 256))
        return
    for task in tasks:
        if task.id in chosen:
            task.port, task.index = str(chosen[task.id].port), str(chosen[task.id].index)
    write_tasks(repo, {task.id: {"port": task.port, "index": task.index} for task in tasks if task.id in chosen})


def _held_blobs(repo: Repo, holds: dict[str, str]) -> dict[str, str] | None:
    """`_held_blob` for many tasks at once ({task id: hold ref}): {task id: blob}, or None when the
    holds could not be made (the objects pruned meanwhile: `lease` then tries each again)."""
    blobs = {task_id: str(oid) for task_id, oid in zip(holds, repo.git.write_blobs(map(hold_text, holds)))}
    made = repo.git.run("update-ref", "--stdin", ok=range(0, 256),
                        input="".join(f"update {hold} {blobs[task_id]}\n" for task_id, hold in holds.items()))
    return blobs if made.code == 0 else None


def _record(repo: Repo, task: Task, held: Lease) -> Lease:
    task.port, task.index = str(held.port), str(held.index)
    write_task(repo, task.id, port=task.port, index=task.index)
    return held


def release(repo: Repo, task: Task) -> None:
    """Give the task's port block back (only if the task still holds it)."""
    release_all(repo, [task])


def release_all(repo: Repo, tasks: list[Task]) -> None:
    """Give the tasks' port blocks back (each only if its task still holds it) and drop their
    holds, reading the leases once: one call per task would read every lease each time.

    A block is found by the task its lease names, not by the port the task recorded: a lease
    killed between its transaction and the record, or before its transaction (its hold left),
    is taken back too."""
    if not tasks:
        return
    ids = {t.id for t in tasks}
    leases = [f"delete {ref} {sha}\n" for ref, (sha, owner) in _holders(repo).items() if owner in ids]
    _take_back(repo, leases + [f"delete {hold_ref(task_id)}\n" for task_id in sorted(ids)])


def sweep(repo: Repo) -> None:
    """Take back every lease and hold whose task is not recorded (its record removed without
    git agent-clean, or a lease killed midway for a task removed since): what `lease` would take
    back only when it reached that block, and a hold no lease of another id ever drops.

    The refs are read before the tasks: a task is recorded before its lease is made, so one
    missing from the later reading is gone (compare-and-swap on each ref as read). A hold may
    precede its task's record (a pool claim makes it with the claim: hold_for); `lease` makes
    one taken back so again."""
    refs = _holders(repo, HOLD_PREFIX)  # the leases and the holds, in one reading
    if not refs:
        return
    repo.reload_config()
    live = set(load_tasks(repo))
    # a lease belongs to the task its blob names, a hold to the task its name says
    _take_back(repo, [f"delete {ref} {sha}\n" for ref, (sha, owner) in refs.items()
                      if (ref.removeprefix(HOLD_PREFIX) if ref.startswith(HOLD_PREFIX) else owner) not in live])


def _take_back(repo: Repo, deletes: list[str]) -> None:
    """Delete these refs (`delete <ref> [<old>]` lines) in one transaction; if one moved meanwhile
    (the transaction is all or nothing), each on its own, leaving the one that moved."""
    if deletes and repo.git.run("update-ref", "--stdin", input="".join(deletes), ok=range(0, 256)).code != 0:
        for line in deletes:
            repo.git.run("update-ref", "--stdin", input=line, ok=range(0, 256))
