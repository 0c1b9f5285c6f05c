"""The merge journal: what an interrupted `git agent-merge` was doing, so it can be finished or undone.

`<common-dir>/agents/merge-journal` is a JSON document written (atomically, by rename) after
the merge commits exist but before the target branch moves, and removed only once every note
and task record is written. While it exists no new merge starts; `git agent-merge --continue`
finishes the recorded run (every step is idempotent) and `--abort` puts the target back.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from git_agents.core.errors import AgentError

JOURNAL_VERSION = 1
NAME = "merge-journal"


@dataclass
class Entry:
    """One task the run decided about: merged (with its commit and note) or not (with its new state)."""

    task_id: str
    status: str  # "merged", "conflict", "check-failed"
    commit: str = ""
    note: dict[str, str] = field(default_factory=dict)
    state: dict[str, str | None] = field(default_factory=dict)  # task keys to write
    before: dict[str, str | None] = field(default_factory=dict)  # the same keys as they were (for --abort)


@dataclass
class Journal:
    """One run's plan for one target branch."""

    target: str
    worktree: str  # where the target is checked out ("" when nowhere)
    old: str
    new: str
    entries: list[Entry]
    reason: str = ""  # reflog message of the move
    pending: list[str] = field(default_factory=list)  # tasks of later targets this run did not reach
    # --interactive: "resolving" while the user resolves `conflict` (its merge started in `worktree`
    # on top of `new`); `run_old` and `landed` cover the whole run, so --abort can undo all of it.
    phase: str = "landing"
    run_old: str = ""
    landed: list[Entry] = field(default_factory=list)
    conflict: Entry | None = None
    tip: str = ""
    message: str = ""
    options: dict[str, str] = field(default_factory=dict)
    version: int = JOURNAL_VERSION


def path(state_dir: str) -> str:
    """Where the journal lives."""
    return os.path.join(state_dir, NAME)


def write(state_dir: str, journal: Journal) -> None:
    """Write the journal atomically: a reader sees the old one, the new one, or none, never half of one."""
    os.makedirs(state_dir, exist_ok=True)
    final = path(state_dir)
    tmp = f"{final}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(asdict(journal), fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(state_dir)


def read(state_dir: str) -> Journal | None:
    """The journal of an interrupted run, or None."""
    try:
        with open(path(state_dir), encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AgentError(f"cannot read the merge journal {path(state_dir)}: {exc}",
                         hint="inspect it; remove it by hand only if the target branch is where you want it") from exc
    if data.get("version") != JOURNAL_VERSION:
        raise AgentError(f"the merge journal {path(state_dir)} has format version {data.get('version')!r}, "
                         f"this git-agents understands {JOURNAL_VERSION}",
                         hint="finish the merge with the git-agents version that started it")
    entries = [Entry(**e) for e in data.pop("entries")]
    landed = [Entry(**e) for e in data.pop("landed", [])]
    conflict = data.pop("conflict", None)
    return Journal(entries=entries, landed=landed, conflict=Entry(**conflict) if conflict else None, **data)


def writes_path(state_dir: str) -> str:
    """Where a landing records the files it wrote into the target's worktree (merging.inmemory.Writes)."""
    return os.path.join(state_dir, NAME + ".writes")


def remove(state_dir: str) -> None:
    """Delete the journal (the run is complete or undone), and its landing's record of what it wrote."""
    for name in (writes_path(state_dir), path(state_dir)):  # the journal last: it says a record may exist
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
    _fsync_dir(state_dir)


def _fsync_dir(directory: str) -> None:
    # The rename/unlink is durable only once the directory itself is flushed.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
